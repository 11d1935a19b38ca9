//! `distpoint serve`.

use super::config_file::{self, ConfigChoice};
use super::{runtime, Failure};
use std::path::PathBuf;

/// Where the config comes from; shared by `serve` and `check-config`.
#[derive(clap::Args, Debug)]
pub struct ConfigArg {
    /// Config file. Default: the first of config/distpoint.toml,
    /// ../etc/distpoint/distpoint.toml beside the binary's install, and
    /// /etc/distpoint/distpoint.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// The config file to use.
    pub fn choose(self) -> Result<ConfigChoice, Failure> {
        config_file::choose(self.config)
    }
}

/// Run the server until SIGTERM or SIGINT.
pub fn run(args: ConfigArg) -> Result<(), Failure> {
    distpoint::logging::init();
    let choice = args.choose()?;
    // Before the runtime starts its threads: the sandbox covers them all.
    let sandbox = distpoint::server::prepare(&choice.path, &choice.describe())
        .map_err(|e| Failure::usage(e.to_string()))?;
    let rt = runtime()?;
    rt.block_on(distpoint::server::run(&choice.path, sandbox))
        .map_err(|e| Failure::usage(e.to_string()))
}
