//! `distpoint publish DIR [--to s3://BUCKET/PREFIX]` and `distpoint publish --gen-key FILE`.

use super::{keyfile, runtime, Failure};
use distpoint::config::Config;
use distpoint::integrity::{hex, keys, publish, upload};
use distpoint::objstore::{self, Patience, Store, StoreSettings, StoreUrl};
use std::path::PathBuf;

/// Hash a package folder and write DIR/.distpoint/manifest.json (and its
/// signature with --key); print the package hash and each file's root.
#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    /// The package folder.
    #[arg(required_unless_present = "gen_key")]
    pub dir: Option<PathBuf>,
    /// Chunk size in bytes.
    #[arg(long, default_value_t = distpoint::integrity::DEFAULT_CHUNK_SIZE)]
    pub chunk_size: u64,
    /// Ed25519 private key (PKCS#8 PEM) to sign the manifest with.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Release number written into the manifest (default: the Unix time);
    /// a replica never takes a lower one.
    #[arg(long, value_name = "N")]
    pub sequence: Option<u64>,
    /// Expiry written into the manifest: a duration from now (`30d`,
    /// `12h`) or an RFC 3339 time; replicas and fetch refuse it afterwards.
    #[arg(long, value_name = "DURATION_OR_RFC3339")]
    pub expires: Option<String>,
    /// Then upload the package to an object store, so that PREFIX holds
    /// exactly what a distpoint path serves (only files that changed; the
    /// manifest last). Credentials: [origins.BUCKET] of --config, else the
    /// AWS_* environment or the AWS profile files.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub to: Option<String>,
    /// With --to: the S3-compatible store's https:// URL (not for AWS).
    #[arg(long, value_name = "URL", requires = "to")]
    pub endpoint: Option<String>,
    /// With --to: the store's region.
    #[arg(long, value_name = "REGION", requires = "to")]
    pub region: Option<String>,
    /// With --to: take the bucket's settings from this config's [origins.BUCKET].
    #[arg(long, value_name = "FILE", requires = "to")]
    pub config: Option<PathBuf>,
    /// Make a key pair instead: FILE (private) and FILE.pub (public).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dir", "key", "to"])]
    pub gen_key: Option<PathBuf>,
}

/// Publish a folder, or make a key pair.
pub fn run(args: PublishArgs) -> Result<(), Failure> {
    if let Some(path) = args.gen_key {
        let public =
            keys::generate_key_files(&path).map_err(|e| Failure::usage(format!("gen-key: {e}")))?;
        println!("wrote {} (private key)", path.display());
        println!("wrote {} (public key)", public.display());
        return Ok(());
    }
    let dir = args
        .dir
        .clone()
        .ok_or_else(|| Failure::usage("publish: DIR is required"))?;
    let key = args
        .key
        .as_deref()
        .map(|p| keyfile::private_key("publish: --key", p))
        .transpose()?;
    // Everything about the store is checked before anything is hashed.
    let store = args
        .to
        .as_deref()
        .map(|to| store_of(to, &args))
        .transpose()?;
    let release = publish::Release {
        sequence: args.sequence,
        expires: args.expires.as_deref().map(expiry).transpose()?,
    };
    let p = publish::publish(&dir, args.chunk_size, key.as_ref(), &release)
        .map_err(|e| Failure::usage(format!("publish: {e}")))?;
    println!("package {}", hex(&p.package_hash));
    println!("sequence {}", p.sequence);
    for (rel, root) in &p.roots {
        println!("{}  {rel}", hex(root));
    }
    if let Some(store) = store {
        let done = runtime()?
            .block_on(upload::upload(&dir, &store))
            .map_err(|e| Failure::network(format!("publish --to: {e}")))?;
        println!(
            "uploaded {} file(s), {} bytes, to {}; {} unchanged; {} stale object(s) removed",
            done.files.len(),
            done.bytes,
            store.url(),
            done.unchanged,
            done.removed.len()
        );
    }
    Ok(())
}

/// The store behind `--to`, with settings from `--config`'s
/// `[origins.BUCKET]` or the environment, then `--endpoint` and `--region`.
fn store_of(to: &str, args: &PublishArgs) -> Result<Store, Failure> {
    let usage =
        |what: &str, e: &dyn std::fmt::Display| Failure::usage(format!("publish {what}: {e}"));
    let url = StoreUrl::parse(to).map_err(|e| usage("--to", &e))?;
    let from_config = match &args.config {
        Some(path) => {
            let config = Config::load(path).map_err(|e| usage("--config", &e))?;
            config.origins.get(&url.bucket).cloned()
        }
        None => None,
    };
    let mut settings = match from_config {
        Some(s) => s,
        None => StoreSettings::from_env().map_err(|e| usage("--to", &e))?,
    };
    if let Some(e) = &args.endpoint {
        settings.endpoint = Some(objstore::check_endpoint(e).map_err(|e| usage("--endpoint", &e))?);
    }
    if let Some(r) = &args.region {
        settings.region = Some(r.clone());
    }
    Store::new(&url, &settings, Patience::Patient).map_err(|e| usage("--to", &e))
}

/// `--expires`: a duration from now or an RFC 3339 time.
fn expiry(text: &str) -> Result<std::time::SystemTime, Failure> {
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(std::time::SystemTime::now() + d);
    }
    humantime::parse_rfc3339_weak(text).map_err(|_| {
        Failure::usage(format!(
            "publish: --expires {text:?}: not a duration (30d, 12h) nor an RFC 3339 time"
        ))
    })
}
