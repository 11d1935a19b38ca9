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
    /// Hash a package folder and write DIR/.distpoint/manifest.json (and its
    /// signature with --key); print the package hash and each file's root.
    Publish {
        /// The package folder.
        #[arg(required_unless_present = "gen_key")]
        dir: Option<PathBuf>,
        /// Chunk size in bytes.
        #[arg(long, default_value_t = distpoint::config::DEFAULT_CHUNK_SIZE)]
        chunk_size: u64,
        /// Ed25519 private key (PKCS#8 PEM) to sign the manifest with.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Make a key pair instead: FILE (private) and FILE.pub (public).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["dir", "key"])]
        gen_key: Option<PathBuf>,
    },
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
        Command::Publish {
            dir,
            chunk_size,
            key,
            gen_key,
        } => publish(dir, chunk_size, key, gen_key),
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

fn publish(
    dir: Option<PathBuf>,
    chunk_size: u64,
    key: Option<PathBuf>,
    gen_key: Option<PathBuf>,
) -> ExitCode {
    use distpoint::integrity::{hex, keys, publish};
    if let Some(path) = gen_key {
        return match keys::generate_key_files(&path) {
            Ok(public) => {
                println!("wrote {} (private key)", path.display());
                println!("wrote {} (public key)", public.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("gen-key: {e}")),
        };
    }
    let Some(dir) = dir else {
        return fail("publish: DIR is required".into());
    };
    let key = match key.as_deref().map(keys::PrivateKey::load).transpose() {
        Ok(k) => k,
        Err(e) => return fail(format!("publish: signing key: {e}")),
    };
    match publish::publish(&dir, chunk_size, key.as_ref()) {
        Ok(p) => {
            println!("package {}", hex(&p.package_hash));
            for (rel, root) in &p.roots {
                println!("{}  {rel}", hex(root));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("publish: {e}")),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("distpoint: {message}");
    ExitCode::FAILURE
}
