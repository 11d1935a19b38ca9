//! `distpoint sync [--config FILE] [URL_PREFIX] [--json]`: ask the running
//! server to sync its replicas (or one) now, and wait for the result.
//! Exit 0 when each is current, 2 when a package was refused (integrity),
//! 3 when a sync failed otherwise, 1 when no server answers.

use super::serve::ConfigArg;
use super::status;
use super::Failure;
use distpoint::replica::control::Request;

/// Sync now and wait.
#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// The replica's URL prefix (default: every replica).
    #[arg(value_name = "URL_PREFIX")]
    pub url: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the server's JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Ask, wait, print, and exit by the worst result.
pub fn run(args: SyncArgs) -> Result<(), Failure> {
    let answer = status::ask(args.config, &Request::Sync { url: args.url })?;
    status::print(&answer, args.json);
    let results: Vec<&str> = answer["replicas"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["last_result"].as_str()).collect())
        .unwrap_or_default();
    let code = if results.contains(&"refused") {
        2
    } else if results.iter().any(|r| !matches!(*r, "ok" | "unchanged")) {
        3
    } else {
        return Ok(());
    };
    Err(Failure {
        code,
        message: String::new(),
    })
}
