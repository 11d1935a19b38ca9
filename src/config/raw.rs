//! The TOML schema exactly as an operator writes it, with source spans.
//!
//! Every table denies unknown keys so that a typo (`anonymus = true`) is an
//! error with a position instead of a silently ignored setting.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[server]`
    pub server: Spanned<RawServer>,
    /// `[tls]`
    pub tls: Spanned<RawTls>,
    /// `[users.NAME]`
    #[serde(default)]
    pub users: BTreeMap<String, Spanned<RawUser>>,
    /// `[groups]`: group name → members.
    #[serde(default)]
    pub groups: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    /// `[[vpath]]`
    #[serde(default)]
    pub vpath: Vec<Spanned<RawVpath>>,
    /// `[metrics]`
    #[serde(default)]
    pub metrics: Option<Spanned<RawMetrics>>,
    /// `[audit]`
    #[serde(default)]
    pub audit: Option<Spanned<RawAudit>>,
    /// `[log]`
    #[serde(default)]
    pub log: Option<Spanned<RawLog>>,
    /// `[origins.BUCKET]`: how to reach each object-store bucket.
    #[serde(default)]
    pub origins: BTreeMap<String, Spanned<RawOrigin>>,
}

/// `[origins.BUCKET]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    /// `https://HOST[:PORT]` of an S3-compatible store (omit for AWS).
    #[serde(default)]
    pub endpoint: Option<Spanned<String>>,
    /// The store's region name.
    #[serde(default)]
    pub region: Option<Spanned<String>>,
    /// File holding the access key id.
    #[serde(default)]
    pub access_key_file: Option<Spanned<String>>,
    /// File holding the secret access key.
    #[serde(default)]
    pub secret_key_file: Option<Spanned<String>>,
    /// PEM CA certificates to trust for the endpoint.
    #[serde(default)]
    pub ca: Option<Spanned<String>>,
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Socket addresses to accept TLS on.
    pub listen: Spanned<Vec<Spanned<String>>>,
    /// Folder for cached manifests and quarantine records.
    #[serde(default)]
    pub state_dir: Option<Spanned<String>>,
    /// Seconds a client has to finish the TLS handshake.
    #[serde(default)]
    pub handshake_timeout_secs: Option<Spanned<u64>>,
    /// Seconds a client has to send a request's headers (HTTP/1.1).
    #[serde(default)]
    pub header_read_timeout_secs: Option<Spanned<u64>>,
    /// Seconds an idle keep-alive connection is kept open.
    #[serde(default)]
    pub idle_timeout_secs: Option<Spanned<u64>>,
    /// Largest request head accepted, in bytes.
    #[serde(default)]
    pub max_header_bytes: Option<Spanned<u64>>,
    /// Most connections open at once; further clients wait in the backlog.
    #[serde(default)]
    pub max_connections: Option<Spanned<u64>>,
    /// Most concurrent HTTP/2 streams per connection.
    #[serde(default)]
    pub h2_max_concurrent_streams: Option<Spanned<u64>>,
    /// Seconds running transfers may go on after SIGTERM/SIGINT.
    #[serde(default)]
    pub shutdown_grace_secs: Option<Spanned<u64>>,
    /// Failed Basic authentications per minute from one client before it is locked out
    /// (and at one account before clients that have failed may not try it).
    #[serde(default)]
    pub auth_failures_per_minute: Option<Spanned<u64>>,
    /// Longest lock-out, in seconds, of a client over `auth_failures_per_minute`.
    #[serde(default)]
    pub auth_lockout_max_secs: Option<Spanned<u64>>,
    /// The server's public `https://host[:port]`, for URLs it writes (Metalink).
    #[serde(default)]
    pub public_url: Option<Spanned<String>>,
    /// Restrict the server to the files its config names (Landlock).
    #[serde(default)]
    pub sandbox: Option<bool>,
    /// Hash `auto` paths' files in the background (at start and on change).
    #[serde(default)]
    pub prehash: Option<bool>,
    /// Bytes of verified chunks kept in memory (`verify = "cached"`).
    #[serde(default)]
    pub chunk_cache_bytes: Option<Spanned<u64>>,
    /// Bytes of file data all responses together may hold in flight.
    #[serde(default)]
    pub max_inflight_bytes: Option<Spanned<u64>>,
}

/// `[tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain.
    pub cert: Spanned<String>,
    /// PEM private key.
    pub key: Spanned<String>,
    /// PEM CA certificates that client certificates must chain to.
    #[serde(default)]
    pub client_ca: Option<Spanned<String>>,
    /// "1.2" or "1.3".
    #[serde(default)]
    pub min_version: Option<Spanned<String>>,
    /// Make development certificates when the files are missing.
    #[serde(default)]
    pub dev_certs: bool,
}

/// `[users.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    /// argon2id PHC string.
    pub password_hash: Spanned<String>,
}

/// `[[vpath]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVpath {
    /// URL prefix.
    pub url: Spanned<String>,
    /// Folder served under it (absent with `origin`).
    #[serde(default)]
    pub dir: Option<Spanned<String>>,
    /// `s3://BUCKET/PREFIX`: serve through from an object store instead of `dir`.
    #[serde(default)]
    pub origin: Option<Spanned<String>>,
    /// With `origin`: the folder verified chunks are kept in.
    #[serde(default)]
    pub cache_dir: Option<Spanned<String>>,
    /// With `origin`: the most chunk bytes `cache_dir` holds.
    #[serde(default)]
    pub cache_bytes: Option<Spanned<u64>>,
    /// With `origin`: seconds between checks of the store's manifest.
    #[serde(default)]
    pub interval_secs: Option<Spanned<u64>>,
    /// Serve without credentials.
    #[serde(default)]
    pub anonymous: bool,
    /// Principals that may read.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Integrity chunk size in bytes.
    #[serde(default)]
    pub chunk_size: Option<Spanned<u64>>,
    /// "auto" or "published".
    #[serde(default)]
    pub integrity: Option<Spanned<String>>,
    /// "cached" or "always".
    #[serde(default)]
    pub verify: Option<Spanned<String>>,
    /// Ed25519 public key files (SubjectPublicKeyInfo PEM).
    #[serde(default)]
    pub publisher_keys: Vec<Spanned<String>>,
    /// `[vpath.upstream]`: this path is a replica of a package elsewhere.
    #[serde(default)]
    pub upstream: Option<Spanned<RawUpstream>>,
}

/// `[vpath.upstream]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Package URL prefixes, in priority order.
    pub sources: Spanned<Vec<Spanned<String>>>,
    /// The package hash (hex SHA-256 of `manifest.json`).
    #[serde(default)]
    pub expect: Option<Spanned<String>>,
    /// Seconds between looks for a new version.
    #[serde(default)]
    pub interval_secs: Option<Spanned<u64>>,
    /// PEM CA certificates the sources must chain to.
    #[serde(default)]
    pub ca: Option<Spanned<String>>,
    /// PEM client certificate chain shown to the sources.
    #[serde(default)]
    pub client_cert: Option<Spanned<String>>,
    /// Its private key.
    #[serde(default)]
    pub client_key: Option<Spanned<String>>,
    /// Basic user name at the sources.
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    /// File holding that user's password.
    #[serde(default)]
    pub password_file: Option<Spanned<String>>,
    /// Bytes per second for all of the replica's traffic.
    #[serde(default)]
    pub rate_limit: Option<Spanned<u64>>,
    /// Local-time windows `"HH:MM-HH:MM"` in which replication traffic may start.
    #[serde(default)]
    pub windows: Vec<Spanned<String>>,
    /// A prestaged copy of the package (removable media).
    #[serde(default)]
    pub seed: Option<Spanned<String>>,
}

/// `[metrics]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// The URL the metrics are served at.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// Principals that may read them.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Serve them without credentials.
    #[serde(default)]
    pub anonymous: bool,
}

/// `[audit]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Folder of the daily files, relative to `state_dir` unless absolute.
    #[serde(default)]
    pub dir: Option<Spanned<String>>,
    /// Days a file is kept.
    #[serde(default)]
    pub retention_days: Option<Spanned<u64>>,
}

/// `[log]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// "text" or "json".
    #[serde(default)]
    pub format: Option<Spanned<String>>,
}
