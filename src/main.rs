//! The `distpoint` command line. It only parses arguments and calls the library.

use clap::{Parser, Subcommand};
use std::io::BufRead;
use std::path::PathBuf;
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
    Serve {
        /// Config file.
        #[arg(long, default_value = "config/distpoint.toml")]
        config: PathBuf,
    },
    /// Validate a config file and print who may read each path.
    CheckConfig {
        /// Config file.
        #[arg(long, default_value = "config/distpoint.toml")]
        config: PathBuf,
    },
    /// Read a password from stdin and print an argon2id hash for `password_hash`.
    HashPassword,
    /// Certificate helpers.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Make a development CA, server certificate (localhost, 127.0.0.1, ::1) and client certificate.
    Dev {
        /// Output folder.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            distpoint::logging::init();
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(format!("cannot start the runtime: {e}")),
            };
            match rt.block_on(distpoint::server::run(&config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e.to_string()),
            }
        }
        Command::CheckConfig { config } => match distpoint::config::Config::load(&config) {
            Ok(c) => {
                print!("{}", c.describe());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e.to_string()),
        },
        Command::HashPassword => {
            let mut line = String::new();
            if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
                return fail(format!("cannot read the password from stdin: {e}"));
            }
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password);
            match distpoint::auth::hash_password(password) {
                Ok(phc) => {
                    println!("{phc}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("hash-password: {e}")),
            }
        }
        Command::Certs {
            command: CertsCommand::Dev { out },
        } => match distpoint::devcerts::write_dev_certs(&out) {
            Ok(files) => {
                for p in files.all() {
                    println!("wrote {}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e.to_string()),
        },
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("distpoint: {message}");
    ExitCode::FAILURE
}
