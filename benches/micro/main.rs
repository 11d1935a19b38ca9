//! Micro-benchmarks of the request hot paths (divan): `cargo bench --bench micro`.
//!
//! Each module measures one layer through its public API, so that a regression
//! shows here before it shows in the end-to-end comparison (`benches/compare.sh`).
//! `cargo bench --bench micro -- http` runs only the benchmarks whose path
//! contains "http".

mod auth;
mod http;
mod integrity;
mod resolve;

fn main() {
    divan::main();
}
