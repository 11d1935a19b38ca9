//! The `distpoint` command line. It only parses arguments; each subcommand's
//! handler lives in `cli/`.
#![forbid(unsafe_code)]

mod cli;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "distpoint",
    version,
    about = "A secure software-distribution point"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(cli::serve::ConfigArg),
    /// Validate a config file and its TLS files; print who may read each path.
    CheckConfig(cli::serve::ConfigArg),
    /// Print an argon2id hash for `password_hash` (asks twice on a terminal; else reads one line).
    HashPassword,
    /// Download a file, verifying every chunk against its manifest; resumable.
    Fetch(cli::fetch::FetchArgs),
    /// Benchmark transfers from a distribution point: throughput, requests/s, latency.
    Bench(cli::bench::BenchArgs),
    /// Hash a package folder and write DIR/.distpoint/manifest.json (and its
    /// signature with --key); print the package hash and each file's root.
    Publish(cli::publish::PublishArgs),
    /// Ask the running server to sync its replicas (or one) now; wait for the result.
    Sync(cli::sync::SyncArgs),
    /// Show each replica of the running server: package served, last sync, next sync.
    Status(cli::status::StatusArgs),
    /// Certificate helpers.
    Certs {
        #[command(subcommand)]
        command: cli::certs::CertsCommand,
    },
    /// Print a shell completion script.
    Completions(cli::docs::CompletionsArgs),
    /// Write man pages (distpoint.1 and one per subcommand) into a folder.
    Man(cli::docs::ManArgs),
}

fn main() -> ExitCode {
    let command = match Cli::try_parse() {
        Ok(cli) => cli.command,
        Err(e) => return cli::usage_error(e),
    };
    cli::exit(match command {
        Command::Serve(args) => cli::serve::run(args),
        Command::CheckConfig(args) => cli::check_config::run(args),
        Command::HashPassword => cli::hash_password::run(),
        Command::Fetch(args) => cli::fetch::run(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::Publish(args) => cli::publish::run(args),
        Command::Sync(args) => cli::sync::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Certs { command } => cli::certs::run(command),
        Command::Completions(args) => cli::docs::completions(args, Cli::command()),
        Command::Man(args) => cli::docs::man(args, Cli::command()),
    })
}
