//! The subcommand handlers behind `main.rs`: each file owns one subcommand's
//! arguments and the function that runs it. Exit codes follow the README:
//! 0 success, 1 usage or config error, 2 integrity failure, 3 network/HTTP.

pub mod bench;
pub mod certs;
pub mod check_config;
pub mod config_file;
pub mod conn_args;
pub mod docs;
pub mod fetch;
pub mod hash_password;
pub mod keyfile;
pub mod publish;
pub mod serve;
pub mod status;
pub mod sync;
pub mod tls_probe;

use std::fmt;
use std::process::ExitCode;

/// Why a subcommand failed: the exit code and the one line naming what is at fault.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// The message, without the `distpoint: ` prefix.
    pub message: String,
}

impl Failure {
    /// A usage or configuration error (exit 1).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    /// A network or HTTP failure (exit 3).
    pub fn network(message: impl Into<String>) -> Failure {
        Failure {
            code: 3,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A handler's result as the process exit code; a failure is printed first.
pub fn exit(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("distpoint: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

/// clap's verdict on a command line it could not parse. clap exits 2 for
/// usage errors, the code `fetch` uses for an integrity failure; here every
/// usage error exits 1, while `--help` and `--version` (printed on stdout)
/// still exit 0.
pub fn usage_error(e: clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The one tokio runtime of the process, for the subcommands that need one.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the runtime: {e}")))
}
