//! `distpoint publish DIR` and `distpoint publish --gen-key FILE`.

use super::{keyfile, Failure};
use distpoint::integrity::{hex, keys, publish};
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
    /// Make a key pair instead: FILE (private) and FILE.pub (public).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dir", "key"])]
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
        .ok_or_else(|| Failure::usage("publish: DIR is required"))?;
    let key = args
        .key
        .as_deref()
        .map(|p| keyfile::private_key("publish: --key", p))
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
    Ok(())
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
