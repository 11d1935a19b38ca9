//! `distpoint check-config`: refuse what `serve` would refuse at start, warn
//! about what would fail later, print who may read each path.

use super::serve::ConfigArg;
use super::Failure;
use distpoint::config::Config;
use distpoint::integrity::published::PackageStore;
use distpoint::tls::{self, TlsSettings};
use distpoint::vpath::Integrity;

/// Validate the config, check its TLS files as `serve` will, print the paths.
pub fn run(args: ConfigArg) -> Result<(), Failure> {
    let choice = args.choose()?;
    if !choice.explicit {
        eprintln!("distpoint: {}", choice.describe());
    }
    let config = Config::load(&choice.path).map_err(|e| Failure::usage(e.to_string()))?;
    if !config.tls.dev_certs_missing() {
        check_tls(&config.tls)?;
    }
    print!("{}", config.describe());
    for warning in config
        .warnings()
        .into_iter()
        .chain(published_warnings(&config))
    {
        eprintln!("distpoint: warning: {warning}");
    }
    Ok(())
}

/// What `serve` checks before it listens: the key belongs to the certificate,
/// and rustls accepts the whole TLS configuration.
fn check_tls(t: &TlsSettings) -> Result<(), Failure> {
    let fail = |e: tls::TlsError| Failure::usage(format!("{e}; `serve` would refuse to start"));
    tls::certified_key(t).map_err(fail)?;
    tls::server_config(t).map_err(fail)?;
    Ok(())
}

/// Each `published` path whose manifest cannot be read, parsed or verified:
/// `serve` starts, but that path answers 503 until it is published.
fn published_warnings(config: &Config) -> Vec<String> {
    let packages = PackageStore::default();
    config
        .vpaths
        .iter()
        .filter(|vp| vp.integrity == Integrity::Published)
        // A replica fills itself from its upstream.
        .filter(|vp| !config.upstreams.contains_key(&vp.url))
        .filter_map(|vp| {
            if vp.origin.is_some() {
                return origin_warning(vp);
            }
            let why = packages.get(vp).err()?;
            Some(format!(
                "{}: integrity = \"published\" but {why}; the path answers 503 until \
                 `distpoint publish {}` is run",
                vp.url,
                vp.dir.display()
            ))
        })
        .collect()
}

/// A serve-through path whose store has no usable manifest (or cannot be
/// reached): `serve` starts, and the path answers 503 until it has one.
fn origin_warning(vp: &std::sync::Arc<distpoint::vpath::Vpath>) -> Option<String> {
    let rt = super::runtime().ok()?;
    let why = rt.block_on(distpoint::integrity::origin::probe(vp)).err()?;
    let url = vp
        .origin
        .as_ref()
        .map(|o| o.url.to_string())
        .unwrap_or_default();
    Some(format!(
        "{}: origin {url}: {why}; the path answers 503 until `distpoint publish DIR --to {url}` is run",
        vp.url
    ))
}
