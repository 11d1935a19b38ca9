//! `distpoint certs dev`.

use super::Failure;
use distpoint::devcerts::{self, DevFiles};
use std::path::PathBuf;

/// Certificate helpers.
#[derive(clap::Subcommand, Debug)]
pub enum CertsCommand {
    /// Make a development CA, server certificate (localhost, 127.0.0.1, ::1) and client certificate.
    Dev(DevArgs),
}

/// `certs dev` options.
#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// Output folder.
    #[arg(long, default_value = "certs", value_name = "DIR")]
    pub out: PathBuf,
    /// Replace files that already exist (a running server may be using them).
    #[arg(long)]
    pub force: bool,
}

/// Run a `certs` subcommand.
pub fn run(command: CertsCommand) -> Result<(), Failure> {
    match command {
        CertsCommand::Dev(args) => dev(args),
    }
}

fn dev(args: DevArgs) -> Result<(), Failure> {
    let files = DevFiles::in_folder(&args.out);
    let present: Vec<String> = files
        .all()
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !present.is_empty() && !args.force {
        // A server or clients may rely on this CA: replacing it silently
        // would lock every client out.
        return Err(Failure::usage(format!(
            "certs dev: refusing to overwrite {} (use --force to replace, or --out DIR for a new folder)",
            present.join(", ")
        )));
    }
    devcerts::write_dev_files(&files).map_err(|e| Failure::usage(format!("certs dev: {e}")))?;
    for p in files.all() {
        println!("wrote {}", p.display());
    }
    Ok(())
}
