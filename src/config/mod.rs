//! The configuration: TOML schema, validation with `file:line:col` errors,
//! and the immutable [`Config`] snapshot every request reads.
//!
//! Loading is all-or-nothing: a file that does not validate never produces a
//! `Config`, so a broken edit can never replace a good running config.

mod error;
mod observe;
mod origins;
mod raw;
pub mod upstream;

pub use error::{line_col, ConfigError};
pub use observe::{MetricsSettings, DEFAULT_METRICS_URL, MAX_RETENTION_DAYS};
pub use origins::{DEFAULT_CACHE_BYTES, DEFAULT_INTERVAL_SECS};
pub use upstream::{Upstream, Window};

use crate::audit::AuditSettings;
use crate::auth::{self, Directory, PrincipalRef};
use crate::integrity::{DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::logging::LogFormat;
use crate::tls::{TlsSettings, TlsVersion};
use crate::vpath::{Integrity, Verify, Vpath, VpathTable};
use raw::RawConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// One validated configuration snapshot. Immutable; swapped whole.
#[derive(Debug)]
pub struct Config {
    /// The file it came from (absolute).
    pub path: PathBuf,
    /// `[server]`
    pub server: ServerSettings,
    /// `[tls]`
    pub tls: TlsSettings,
    /// Users and groups.
    pub directory: Directory,
    /// The virtual paths.
    pub vpaths: VpathTable,
    /// Replica paths (`[vpath.upstream]`), by their configured URL.
    pub upstreams: BTreeMap<String, std::sync::Arc<Upstream>>,
    /// `[origins.BUCKET]`: how to reach each object-store bucket.
    pub origins: BTreeMap<String, crate::objstore::StoreSettings>,
    /// Files the origins' settings were read from (key files, CAs).
    pub origin_files: Vec<PathBuf>,
    /// `[metrics]`: served when present.
    pub metrics: Option<MetricsSettings>,
    /// `[audit]`: written when present.
    pub audit: Option<AuditSettings>,
    /// `[log] format`.
    pub log_format: LogFormat,
}

/// `[server]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Addresses to accept TLS connections on.
    pub listen: Vec<SocketAddr>,
    /// Folder for persisted state (absolute).
    pub state_dir: PathBuf,
    /// Timeouts and limits.
    pub limits: Limits,
    /// Restrict the process to what the config names (Landlock), after start-up.
    pub sandbox: bool,
    /// Hash the files of `integrity = "auto"` paths in the background, at
    /// start and when they appear or change, so first requests rarely wait.
    pub prehash: bool,
    /// `https://host[:port]` clients reach this server by (no trailing `/`);
    /// `None`: the first listener's address.
    pub public_url: Option<String>,
}

/// Connection timeouts and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed to receive a request's headers (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// Idle keep-alive connections are closed after this.
    pub idle_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// How long running transfers may go on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Failed Basic authentications per minute from one client (IPv6: one /64) before
    /// its Basic attempts are refused with `429` for a while; also, at one account from
    /// all clients, before clients that have failed may not try it for a while.
    pub auth_failures_per_minute: u32,
    /// The longest such lock-out; repeated lock-outs double up to this.
    pub auth_lockout_max: Duration,
    /// Bytes of verified chunks kept in memory for `verify = "cached"` (0: none).
    pub chunk_cache_bytes: u64,
    /// Bytes of file data that responses may hold in flight, server-wide.
    pub max_inflight_bytes: u64,
}

/// Default `chunk_cache_bytes`: an eighth of the machine's memory, between
/// 64 MiB and 4 GiB (64 MiB when the size cannot be read).
pub fn default_chunk_cache_bytes() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    (total / 8).clamp(64 << 20, 4 << 30)
}

/// Default `max_inflight_bytes`: 256 MiB.
pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 256 << 20;

impl Limits {
    /// The authenticator's failure-throttling settings.
    pub fn auth_throttle(&self) -> auth::ThrottleSettings {
        auth::ThrottleSettings {
            failures_per_minute: self.auth_failures_per_minute,
            lockout_max: self.auth_lockout_max,
            ..auth::ThrottleSettings::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            max_connections: 10_000,
            h2_max_concurrent_streams: 128,
            shutdown_grace: Duration::from_secs(30),
            auth_failures_per_minute: auth::DEFAULT_FAILURES_PER_MINUTE,
            auth_lockout_max: auth::DEFAULT_LOCKOUT_MAX,
            chunk_cache_bytes: default_chunk_cache_bytes(),
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
        }
    }
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let path = std::path::absolute(path)
            .map_err(|e| ConfigError::whole_file(path, format!("cannot resolve path: {e}")))?;
        let source = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::whole_file(&path, format!("cannot read config: {e}")))?;
        Self::parse(&path, &source)
    }

    /// Parse and validate config text that came from `path`.
    pub fn parse(path: &Path, source: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(source).map_err(|e| {
            let message = e.message().trim().to_string();
            match e.span() {
                Some(span) => ConfigError::at(path, source, span, message),
                None => ConfigError::whole_file(path, message),
            }
        })?;
        Validator {
            path,
            source,
            base: path.parent().unwrap_or(Path::new("/")),
        }
        .validate(raw)
    }
}

impl Config {
    /// What `check-config` prints: each effective path and who may read it.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "{}: OK", self.path.display());
        let listen: Vec<String> = self.server.listen.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(out, "listen: {} (TLS only)", listen.join(", "));
        for vp in self.vpaths.iter() {
            let (integrity, verify) = (vp.integrity.as_str(), vp.verify.as_str());
            match &vp.origin {
                Some(o) => {
                    let _ = writeln!(
                        out,
                        "{} -> {} (serve-through, integrity {integrity}, verify {verify}; \
                         cache {} up to {} bytes; manifest checked every {} s)",
                        vp.url,
                        o.url,
                        vp.dir.display(),
                        o.cache_bytes,
                        o.interval.as_secs()
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{} -> {} (integrity {integrity}, verify {verify}, chunk {} bytes)",
                        vp.url,
                        vp.dir.display(),
                        vp.chunk_size
                    );
                }
            }
            if let Some(u) = self.upstreams.get(&vp.url) {
                let _ = writeln!(
                    out,
                    "  replica of: {} (every {} s)",
                    u.sources.join(", "),
                    u.interval.as_secs()
                );
            }
            let _ = writeln!(
                out,
                "  readable by: {}",
                self.readers(vp.anonymous, &vp.allow)
            );
        }
        if let Some(m) = &self.metrics {
            let _ = writeln!(out, "metrics: {}", m.url);
            let _ = writeln!(
                out,
                "  readable by: {}",
                self.readers(m.anonymous, &m.allow)
            );
        }
        if let Some(a) = &self.audit {
            let _ = writeln!(
                out,
                "audit log: {} (kept {} days)",
                a.dir.display(),
                a.retention_days
            );
        }
        let _ = writeln!(out, "log format: {}", self.log_format.as_str());
        if self.tls.dev_certs_missing() {
            let _ = writeln!(
                out,
                "note: TLS files are missing; `serve` will create development certificates"
            );
        }
        out
    }
}

impl Config {
    /// Who may read a path with these rules, in words.
    fn readers(&self, anonymous: bool, allow: &[PrincipalRef]) -> String {
        if anonymous {
            return "anyone (anonymous = true)".into();
        }
        let who: Vec<String> = self
            .directory
            .expand(allow)
            .iter()
            .map(|p| p.to_string())
            .collect();
        if who.is_empty() {
            "nobody (allow is empty)".to_string()
        } else {
            who.join(", ")
        }
    }

    /// What the server needs once it runs: read beneath every served folder,
    /// the config's and the TLS files' folders and the publisher keys, plus
    /// the few system files name and memory lookups read; write beneath
    /// `state_dir` and the audit folder.
    pub fn sandbox_rules(&self) -> crate::sandbox::Rules {
        let parent = |p: &Path| p.parent().map(Path::to_path_buf);
        let t = &self.tls;
        let mut read: Vec<PathBuf> = [
            Some(&self.path),
            Some(&t.cert),
            Some(&t.key),
            t.client_ca.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|p| parent(p))
        .collect();
        let mut write = vec![self.server.state_dir.clone()];
        for vp in self.vpaths.iter() {
            read.push(vp.dir.clone());
            read.extend(vp.publisher_keys.iter().cloned());
            if vp.origin.is_some() {
                // A serve-through path keeps its verified chunks there.
                write.push(vp.dir.clone());
            }
        }
        for (url, u) in &self.upstreams {
            // A replica writes its versions beneath its own dir.
            if let Some(vp) = self.vpaths.get(url) {
                write.push(vp.dir.clone());
            }
            read.extend(u.ca.iter().cloned());
            read.extend(u.seed.iter().cloned());
            if let Some((c, k)) = &u.client_cert {
                read.extend([c.clone(), k.clone()]);
            }
            read.extend(u.user.iter().map(|(_, p)| p.clone()));
        }
        if !self.upstreams.is_empty() {
            // Replica windows are local time: the time zone database.
            read.extend(["/etc/localtime", "/usr/share/zoneinfo"].map(PathBuf::from));
        }
        // Read again on each reload.
        read.extend(self.origin_files.iter().cloned());
        read.extend(crate::objstore::StoreSettings::profile_files());
        // /proc/meminfo: the default chunk_cache_bytes, read at each reload.
        // The rest: trust anchors and name lookups for outbound connections.
        for system in [
            "/proc/meminfo",
            "/etc/ssl",
            "/etc/pki",
            "/usr/share/ca-certificates",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/nsswitch.conf",
            "/etc/gai.conf",
        ] {
            read.push(PathBuf::from(system));
        }
        read.sort();
        read.dedup();
        if let Some(a) = &self.audit {
            write.push(a.dir.clone());
        }
        crate::sandbox::Rules { read, write }
    }

    /// What validates but is probably not what the operator meant: a
    /// protected folder that an anonymous path also serves, the whole file
    /// system served, an `allow` list on an anonymous path.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for vp in self.vpaths.iter() {
            if vp.dir == Path::new("/") {
                out.push(format!(
                    "{}: dir = \"/\" serves the whole file system",
                    vp.url
                ));
            }
            if vp.anonymous && !vp.allow.is_empty() {
                out.push(format!(
                    "{}: anonymous = true, so its allow list has no effect: anyone may read",
                    vp.url
                ));
            }
            if vp.anonymous {
                continue;
            }
            for open in self.vpaths.iter().filter(|o| o.anonymous) {
                if vp.dir.starts_with(&open.dir) {
                    out.push(format!(
                        "{}: its folder {} is inside {}, which {} serves anonymously: \
                         its files are readable without credentials there",
                        vp.url,
                        vp.dir.display(),
                        open.dir.display(),
                        open.url
                    ));
                }
            }
        }
        match &self.metrics {
            Some(m) if m.anonymous => out.push(format!(
                "{}: metrics are anonymous: anyone who reaches the port can read them",
                m.url
            )),
            Some(m) if m.allow.is_empty() => out.push(format!(
                "{}: metrics have an empty allow list: nobody can read them",
                m.url
            )),
            _ => {}
        }
        out
    }
}

/// Turns the raw schema into a [`Config`], failing at the first problem.
struct Validator<'a> {
    path: &'a Path,
    source: &'a str,
    base: &'a Path,
}

impl Validator<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, self.source, span, message)
    }

    /// One of a fixed set of spellings (`all[0]` when absent); the error lists them all.
    fn choice<T: Copy>(
        &self,
        raw: &Option<Spanned<String>>,
        key: &str,
        all: &[T],
        spelling: fn(T) -> &'static str,
    ) -> Result<T, ConfigError> {
        let Some(raw) = raw else { return Ok(all[0]) };
        if let Some(v) = all.iter().find(|v| spelling(**v) == raw.get_ref()) {
            return Ok(*v);
        }
        let names: Vec<String> = all.iter().map(|v| format!("{:?}", spelling(*v))).collect();
        Err(self.err(
            raw.span(),
            format!(
                "{key} must be {}, not {:?}",
                names.join(" or "),
                raw.get_ref()
            ),
        ))
    }

    /// `https://host[:port]`, nothing after it: the scheme is fixed (TLS only)
    /// and paths come from the request.
    fn public_url(&self, s: &Spanned<String>) -> Result<String, ConfigError> {
        let text = s.get_ref().trim_end_matches('/');
        let bad = || {
            self.err(
                s.span(),
                format!(
                    "public_url {:?} must be https://HOST[:PORT] with no path",
                    s.get_ref()
                ),
            )
        };
        let authority = text.strip_prefix("https://").ok_or_else(bad)?;
        match authority.parse::<http::uri::Authority>() {
            Ok(a)
                if !authority.is_empty() && a.as_str() == authority && !authority.contains('@') =>
            {
                Ok(text.to_string())
            }
            _ => Err(bad()),
        }
    }

    fn path_of(&self, s: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        if s.get_ref().is_empty() {
            return Err(self.err(s.span(), "path must not be empty"));
        }
        Ok(self.base.join(s.get_ref()))
    }

    /// A `dir` that must exist and be a folder.
    fn served_dir(&self, d: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        let dir_path = self.path_of(d)?;
        match std::fs::metadata(&dir_path) {
            Ok(m) if m.is_dir() => Ok(dir_path),
            Ok(_) => Err(self.err(
                d.span(),
                format!("dir {} is not a folder", dir_path.display()),
            )),
            Err(e) => Err(self.err(d.span(), format!("dir {}: {e}", dir_path.display()))),
        }
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let server = self.server(raw.server)?;
        let tls = self.tls(raw.tls)?;
        let directory = self.directory(&raw.users, &raw.groups)?;
        let origins = self.origins(&raw.origins)?;
        let (vpaths, upstreams) = self.vpaths(&raw.vpath, &directory, &origins, &server)?;
        let metrics = self.metrics(raw.metrics, &directory, &vpaths)?;
        let audit = self.audit(raw.audit, &server.state_dir)?;
        let log_format = self.log(raw.log)?;
        Ok(Config {
            path: self.path.to_path_buf(),
            server,
            tls,
            directory,
            vpaths,
            upstreams,
            origins: origins.settings,
            origin_files: origins.files,
            metrics,
            audit,
            log_format,
        })
    }

    fn server(&self, raw: Spanned<raw::RawServer>) -> Result<ServerSettings, ConfigError> {
        let span = raw.span();
        let raw = raw.into_inner();
        if raw.listen.get_ref().is_empty() {
            return Err(self.err(raw.listen.span(), "listen needs at least one address"));
        }
        let mut listen = Vec::new();
        for a in raw.listen.get_ref() {
            let addr: SocketAddr = a.get_ref().parse().map_err(|_| {
                self.err(
                    a.span(),
                    format!(
                        "invalid listen address {:?}: expected IP:PORT or [IPv6]:PORT",
                        a.get_ref()
                    ),
                )
            })?;
            if listen.contains(&addr) {
                return Err(self.err(a.span(), format!("listen address {addr} appears twice")));
            }
            listen.push(addr);
        }
        let state_dir = match &raw.state_dir {
            Some(s) => self.path_of(s)?,
            None => self.base.join("state"),
        };
        let d = Limits::default();
        let secs = |v: &Option<Spanned<u64>>,
                    default: Duration,
                    max: u64|
         -> Result<Duration, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) if (1..=max).contains(s.get_ref()) => Ok(Duration::from_secs(*s.get_ref())),
                Some(s) => Err(self.err(s.span(), format!("must be between 1 and {max} seconds"))),
            }
        };
        let num = |v: &Option<Spanned<u64>>,
                   default: u64,
                   min: u64,
                   max: u64|
         -> Result<u64, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) if (min..=max).contains(s.get_ref()) => Ok(*s.get_ref()),
                Some(s) => Err(self.err(s.span(), format!("must be between {min} and {max}"))),
            }
        };
        let _ = span;
        let limits = Limits {
            handshake_timeout: secs(&raw.handshake_timeout_secs, d.handshake_timeout, 300)?,
            header_read_timeout: secs(&raw.header_read_timeout_secs, d.header_read_timeout, 300)?,
            idle_timeout: secs(&raw.idle_timeout_secs, d.idle_timeout, 3600)?,
            max_header_bytes: num(
                &raw.max_header_bytes,
                d.max_header_bytes as u64,
                8192,
                1 << 20,
            )? as usize,
            max_connections: num(&raw.max_connections, d.max_connections as u64, 1, 1_000_000)?
                as usize,
            h2_max_concurrent_streams: num(
                &raw.h2_max_concurrent_streams,
                d.h2_max_concurrent_streams.into(),
                1,
                10_000,
            )? as u32,
            shutdown_grace: secs(&raw.shutdown_grace_secs, d.shutdown_grace, 3600)?,
            auth_failures_per_minute: num(
                &raw.auth_failures_per_minute,
                d.auth_failures_per_minute.into(),
                1,
                10_000,
            )? as u32,
            auth_lockout_max: secs(&raw.auth_lockout_max_secs, d.auth_lockout_max, 86_400)?,
            chunk_cache_bytes: num(&raw.chunk_cache_bytes, d.chunk_cache_bytes, 0, 1 << 40)?,
            // At least one chunk of the largest size, so that any response can start.
            max_inflight_bytes: num(
                &raw.max_inflight_bytes,
                d.max_inflight_bytes,
                MAX_CHUNK_SIZE,
                1 << 40,
            )?,
        };
        Ok(ServerSettings {
            listen,
            state_dir,
            limits,
            sandbox: raw.sandbox.unwrap_or(true),
            prehash: raw.prehash.unwrap_or(true),
            public_url: raw
                .public_url
                .as_ref()
                .map(|u| self.public_url(u))
                .transpose()?,
        })
    }

    fn tls(&self, raw: Spanned<raw::RawTls>) -> Result<TlsSettings, ConfigError> {
        let raw = raw.into_inner();
        let min_version = self.choice(
            &raw.min_version,
            "min_version",
            TlsVersion::ALL,
            TlsVersion::as_str,
        )?;
        let settings = TlsSettings {
            cert: self.path_of(&raw.cert)?,
            key: self.path_of(&raw.key)?,
            client_ca: raw
                .client_ca
                .as_ref()
                .map(|c| self.path_of(c))
                .transpose()?,
            min_version,
            dev_certs: raw.dev_certs,
        };
        if settings.dev_certs_missing() {
            // `serve` creates them before building the TLS config; nothing to check yet.
            return Ok(settings);
        }
        crate::tls::load_cert_chain(&settings.cert)
            .map_err(|e| self.err(raw.cert.span(), e.to_string()))?;
        crate::tls::load_private_key(&settings.key)
            .map_err(|e| self.err(raw.key.span(), e.to_string()))?;
        if let (Some(ca), Some(span)) = (
            &settings.client_ca,
            raw.client_ca.as_ref().map(|c| c.span()),
        ) {
            crate::tls::load_client_roots(ca).map_err(|e| self.err(span, e.to_string()))?;
        }
        Ok(settings)
    }

    fn directory(
        &self,
        users: &BTreeMap<String, Spanned<raw::RawUser>>,
        groups: &BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    ) -> Result<Directory, ConfigError> {
        let mut hashes = BTreeMap::new();
        for (name, user) in users {
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
                return Err(self.err(
                    user.span(),
                    format!("invalid user name {name:?}: it must be non-empty without ':'"),
                ));
            }
            let phc = &user.get_ref().password_hash;
            auth::check_password_hash(phc.get_ref())
                .map_err(|e| self.err(phc.span(), format!("user {name}: password_hash: {e}")))?;
            hashes.insert(name.clone(), phc.get_ref().clone());
        }
        let mut members = BTreeMap::new();
        for (name, list) in groups {
            if name.is_empty() || name.contains(':') {
                return Err(self.err(list.span(), format!("invalid group name {name:?}")));
            }
            let mut refs = Vec::new();
            for m in list.get_ref() {
                let r: PrincipalRef = m
                    .get_ref()
                    .parse()
                    .map_err(|e| self.err(m.span(), format!("{e}")))?;
                match &r {
                    PrincipalRef::User(u) if !hashes.contains_key(u) => {
                        return Err(self.err(m.span(), format!("group {name}: unknown user {u:?}")))
                    }
                    PrincipalRef::Group(_) => {
                        return Err(self.err(
                            m.span(),
                            format!("group {name}: groups cannot contain groups"),
                        ))
                    }
                    _ => {}
                }
                refs.push(r);
            }
            members.insert(name.clone(), refs);
        }
        Ok(Directory::new(hashes, members))
    }

    fn vpaths(
        &self,
        raw: &[Spanned<raw::RawVpath>],
        dir: &Directory,
        origins: &origins::Origins,
        server: &ServerSettings,
    ) -> Result<(VpathTable, BTreeMap<String, std::sync::Arc<Upstream>>), ConfigError> {
        let mut seen = BTreeSet::new();
        let mut caches = BTreeSet::new();
        let mut out = Vec::new();
        let mut upstreams = BTreeMap::new();
        for spanned in raw {
            let v = spanned.get_ref();
            let url = v.url.get_ref();
            if !url.starts_with('/') || url.contains('?') || url.contains('#') {
                return Err(self.err(
                    v.url.span(),
                    format!("url {url:?} must start with '/' and have no query"),
                ));
            }
            let trimmed = url.trim_end_matches('/');
            let segments = if trimmed.is_empty() {
                Vec::new()
            } else {
                crate::resolve::decode_segments(&trimmed[1..]).map_err(|e| {
                    self.err(v.url.span(), format!("url {url:?} is not a safe path: {e}"))
                })?
            };
            if !seen.insert(segments.clone()) {
                return Err(self.err(v.url.span(), format!("url {url:?} is configured twice")));
            }
            let integrity =
                self.choice(&v.integrity, "integrity", Integrity::ALL, Integrity::as_str)?;
            let (dir_path, origin) = match (&v.dir, &v.origin) {
                (Some(d), None) => {
                    self.no_origin_keys(v)?;
                    (self.served_dir(d)?, None)
                }
                (None, Some(o)) => {
                    let (dir, origin) = self.serve_through(spanned, o, integrity, origins)?;
                    if dir == server.state_dir || !caches.insert(dir.clone()) {
                        let span = v.cache_dir.as_ref().map_or(o.span(), |c| c.span());
                        return Err(self.err(
                            span,
                            format!(
                                "cache_dir {} is already used (by another path or as state_dir)",
                                dir.display()
                            ),
                        ));
                    }
                    (dir, Some(origin))
                }
                (Some(d), Some(_)) => {
                    return Err(self.err(
                        d.span(),
                        "dir and origin exclude each other: a serve-through path has no dir",
                    ))
                }
                (None, None) => {
                    return Err(self.err(
                        spanned.span(),
                        "a [[vpath]] needs dir (or origin = \"s3://BUCKET/PREFIX\" to serve through from a store)",
                    ))
                }
            };
            let allow = self.allow_list(&v.allow, dir)?;
            let chunk_size = match &v.chunk_size {
                None => DEFAULT_CHUNK_SIZE,
                Some(c) if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(c.get_ref()) => *c.get_ref(),
                Some(c) => {
                    return Err(self.err(
                        c.span(),
                        format!(
                        "chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes"
                    ),
                    ))
                }
            };
            let verify = self.choice(&v.verify, "verify", Verify::ALL, Verify::as_str)?;
            if !v.publisher_keys.is_empty() && integrity != Integrity::Published {
                return Err(self.err(
                    v.publisher_keys[0].span(),
                    "publisher_keys needs integrity = \"published\"",
                ));
            }
            if origin.is_some() && v.publisher_keys.is_empty() {
                return Err(self.err(
                    v.origin.as_ref().map_or(spanned.span(), |o| o.span()),
                    "a path with origin needs publisher_keys: the store is not trusted, \
                     so its manifest must be signed",
                ));
            }
            let mut publisher_keys = Vec::new();
            for k in &v.publisher_keys {
                let path = self.path_of(k)?;
                // A key that does not parse is a config error here, not a
                // surprise 503 on the first request.
                use crate::integrity::keys::{KeyError, PublicKey};
                PublicKey::load(&path).map_err(|e| {
                    let why = match e {
                        KeyError::Io(_, io) => format!("cannot read: {io}"),
                        other => other.to_string(),
                    };
                    self.err(k.span(), format!("publisher key {}: {why}", path.display()))
                })?;
                publisher_keys.push(path);
            }
            let url = if trimmed.is_empty() {
                "/".to_string()
            } else {
                trimmed.to_string()
            };
            if let Some(u) = &v.upstream {
                if origin.is_some() {
                    return Err(self.err(
                        u.span(),
                        "a replica ([vpath.upstream]) fills a dir of its own: \
                         it cannot also serve through from an origin",
                    ));
                }
                let upstream = self.upstream(u, integrity, !publisher_keys.is_empty())?;
                upstreams.insert(url.clone(), std::sync::Arc::new(upstream));
            }
            out.push(Vpath {
                url,
                segments,
                dir: dir_path,
                anonymous: v.anonymous,
                allow,
                chunk_size,
                integrity,
                verify,
                publisher_keys,
                origin,
            });
        }
        Ok((VpathTable::new(out), upstreams))
    }
}

#[cfg(test)]
mod tests;
