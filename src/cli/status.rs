//! `distpoint status [--config FILE] [--json]`: each replica of the running
//! server, asked over its control socket (`STATE_DIR/control.sock`).

use super::serve::ConfigArg;
use super::{runtime, Failure};
use distpoint::config::Config;
use distpoint::replica::control::{self, Request};
use serde_json::Value;

/// Show every replica's state.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the server's JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Ask the server whose config this is; print what it says.
pub fn run(args: StatusArgs) -> Result<(), Failure> {
    let answer = ask(args.config, &Request::Status)?;
    print(&answer, args.json);
    Ok(())
}

/// Send `request` to the server of the chosen config (exit 1 when none answers).
pub fn ask(config: ConfigArg, request: &Request) -> Result<Value, Failure> {
    let choice = config.choose()?;
    let config = Config::load(&choice.path).map_err(|e| Failure::usage(e.to_string()))?;
    let rt = runtime()?;
    let answer = rt
        .block_on(control::ask(&config.server.state_dir, request))
        .map_err(|e| Failure::usage(format!("cannot reach the server: {e}")))?;
    if answer["ok"] != Value::Bool(true) {
        let why = answer["error"]
            .as_str()
            .unwrap_or("the server refused the request");
        return Err(Failure::usage(why.to_string()));
    }
    Ok(answer)
}

/// The answer as text (one block per replica) or as it came.
pub fn print(answer: &Value, json: bool) {
    if json {
        println!("{answer}");
        return;
    }
    let replicas = answer["replicas"].as_array().cloned().unwrap_or_default();
    if replicas.is_empty() {
        println!("no replica paths");
    }
    for r in &replicas {
        println!("{}", text(r));
    }
}

fn text(r: &Value) -> String {
    let s = |k: &str| match &r[k] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let syncing = if r["syncing"] == Value::Bool(true) {
        " (syncing now)"
    } else {
        ""
    };
    format!(
        "{url}{syncing}\n  package:      {hash} (sequence {seq})\n  last attempt: {att}: {res} ({msg})\n  \
         last success: {ok}\n  last sync:    {fetched} bytes fetched, {reused} bytes reused\n  \
         next attempt: {next}",
        url = s("url"),
        hash = s("package_hash"),
        seq = s("sequence"),
        att = s("last_attempt"),
        res = s("last_result"),
        msg = s("last_message"),
        ok = s("last_success"),
        fetched = s("bytes_fetched"),
        reused = s("bytes_reused"),
        next = s("next_attempt"),
    )
}
