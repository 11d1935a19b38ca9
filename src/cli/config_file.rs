//! Which config file `serve` and `check-config` use when `--config` is not given.
//!
//! The first of these that exists, in this order:
//!
//! 1. `config/distpoint.toml` under the current folder (a checkout, or a
//!    folder prepared by hand: what `cargo run -- serve` finds);
//! 2. `../etc/distpoint/distpoint.toml` next to the binary's install
//!    (`/usr/local/bin/distpoint` reads `/usr/local/etc/distpoint/`,
//!    `/opt/distpoint/bin/distpoint` reads `/opt/distpoint/etc/distpoint/`);
//! 3. `/etc/distpoint/distpoint.toml`.
//!
//! The path used is always said, with how it was found.

use super::Failure;
use std::path::{Path, PathBuf};

/// The config file chosen, and how.
#[derive(Debug, Clone)]
pub struct ConfigChoice {
    /// The file.
    pub path: PathBuf,
    /// True when it came from `--config`, false when the default search found it.
    pub explicit: bool,
}

impl ConfigChoice {
    /// One line saying which file is used and why.
    pub fn describe(&self) -> String {
        if self.explicit {
            format!("using config {} (--config)", self.path.display())
        } else {
            format!(
                "using config {} (first found of: {})",
                self.path.display(),
                list(&candidates())
            )
        }
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The default places, in search order, without duplicates.
pub fn candidates() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("config/distpoint.toml")];
    let beside_install = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
        .map(|prefix| prefix.join("etc/distpoint/distpoint.toml"));
    out.extend(beside_install);
    out.push(PathBuf::from("/etc/distpoint/distpoint.toml"));
    let mut seen = Vec::new();
    out.retain(|p| {
        let fresh = !seen.contains(p);
        seen.push(p.clone());
        fresh
    });
    out
}

/// `--config` if given, else the first default place that exists.
pub fn choose(explicit: Option<PathBuf>) -> Result<ConfigChoice, Failure> {
    if let Some(path) = explicit {
        return Ok(ConfigChoice {
            path,
            explicit: true,
        });
    }
    let places = candidates();
    places
        .iter()
        .find(|p| p.is_file())
        .map(|p| ConfigChoice {
            path: p.clone(),
            explicit: false,
        })
        .ok_or_else(|| {
            Failure::usage(format!(
                "no config file given and none found at {} (pass --config FILE)",
                list(&places)
            ))
        })
}
