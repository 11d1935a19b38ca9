//! The client front ends: `fetch` (one file, from one or more sources),
//! `fetch --package`, and `bench`. They parse what the user asked for and
//! report; the downloading is [`crate::transfer`]'s.

pub mod bench;
pub mod fetch;
pub mod fetch_error;
pub mod manifest_origin;
pub mod output;
pub mod package;
pub mod progress;
pub mod release;

/// The connection settings the front ends take from the command line.
pub use crate::transfer::{ClientError, ClientOptions, Protocol};
