//! Virtual paths: the only URLs that exist.
//!
//! A request's decoded path segments are matched against each configured
//! prefix on whole segments (`/pub` never matches `/pub-private`), and the
//! longest prefix wins. Everything else is `404`.

use crate::auth::PrincipalRef;
use crate::objstore::{StoreSettings, StoreUrl};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How a path's content is trusted (README "Integrity").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// The server's disk is trusted; the server hashes files itself.
    Auto,
    /// The server's disk is not trusted; a published manifest is the truth.
    Published,
}

impl Integrity {
    /// Every value, in the order the config documents them.
    pub const ALL: &'static [Integrity] = &[Integrity::Auto, Integrity::Published];

    /// The config spelling (the only place it is written).
    pub fn as_str(self) -> &'static str {
        match self {
            Integrity::Auto => "auto",
            Integrity::Published => "published",
        }
    }
}

/// When chunks are re-hashed before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Skip chunks already verified for the same file identity.
    Cached,
    /// Hash every chunk on every send.
    Always,
}

impl Verify {
    /// Every value, in the order the config documents them.
    pub const ALL: &'static [Verify] = &[Verify::Cached, Verify::Always];

    /// The config spelling (the only place it is written).
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::Cached => "cached",
            Verify::Always => "always",
        }
    }
}

/// Where a serve-through path's content lives: a package in an object
/// store, read chunk by chunk on demand and kept in a bounded local cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `s3://BUCKET/PREFIX`, holding what `publish --to` uploaded.
    pub url: StoreUrl,
    /// How to reach the bucket (`[origins.BUCKET]` or the environment).
    pub settings: StoreSettings,
    /// Upper bound of the chunk bytes kept in the path's `dir` (its `cache_dir`).
    pub cache_bytes: u64,
    /// How often the store's manifest is checked for a new version.
    pub interval: Duration,
}

/// One `[[vpath]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpath {
    /// The URL prefix as configured, e.g. `/SMS_DP_SMSPKG$/PKG00001`.
    pub url: String,
    /// Its decoded segments; empty for `/`.
    pub segments: Vec<String>,
    /// The folder served under it (absolute). For a serve-through path
    /// (`origin`), its `cache_dir`: verified chunks kept there, never served
    /// as files.
    pub dir: PathBuf,
    /// Whether requests without credentials may read.
    pub anonymous: bool,
    /// Who may read when credentials are given.
    pub allow: Vec<PrincipalRef>,
    /// Integrity chunk size in bytes.
    pub chunk_size: u64,
    /// Integrity mode.
    pub integrity: Integrity,
    /// Verification policy.
    pub verify: Verify,
    /// Publisher public key files (absolute).
    pub publisher_keys: Vec<PathBuf>,
    /// For a serve-through path: the object store it reads from.
    pub origin: Option<Origin>,
}

/// The routing table of one config snapshot.
#[derive(Debug, Clone, Default)]
pub struct VpathTable {
    /// Sorted longest prefix first, so the first match is the longest.
    paths: Vec<Arc<Vpath>>,
}

impl VpathTable {
    /// Build a table; the caller has rejected duplicate URLs.
    pub fn new(mut paths: Vec<Vpath>) -> Self {
        paths.sort_by(|a, b| {
            b.segments
                .len()
                .cmp(&a.segments.len())
                .then(a.url.cmp(&b.url))
        });
        VpathTable {
            paths: paths.into_iter().map(Arc::new).collect(),
        }
    }

    /// The vpath a request falls under, and the segments that remain below it.
    pub fn route<'a>(&self, segments: &'a [String]) -> Option<(&Arc<Vpath>, &'a [String])> {
        self.paths.iter().find_map(|vp| {
            let n = vp.segments.len();
            (segments.len() >= n && segments[..n] == vp.segments[..]).then(|| (vp, &segments[n..]))
        })
    }

    /// All paths, in configuration-independent order (by URL).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Vpath>> {
        let mut v: Vec<_> = self.paths.iter().collect();
        v.sort_by(|a, b| a.url.cmp(&b.url));
        v.into_iter()
    }

    /// Look a path up by its configured URL.
    pub fn get(&self, url: &str) -> Option<&Arc<Vpath>> {
        self.paths.iter().find(|vp| vp.url == url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vp(url: &str) -> Vpath {
        Vpath {
            url: url.into(),
            segments: url
                .split('/')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            dir: PathBuf::from("/x"),
            anonymous: false,
            allow: vec![],
            chunk_size: 1 << 20,
            integrity: Integrity::Auto,
            verify: Verify::Cached,
            publisher_keys: vec![],
            origin: None,
        }
    }

    fn segs(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn whole_segments_only() {
        let t = VpathTable::new(vec![vp("/pub")]);
        assert!(t.route(&segs("/pub-private/a")).is_none());
        assert!(t.route(&segs("/pubx")).is_none());
        let s = segs("/pub/a/b");
        let (v, rest) = t.route(&s).unwrap();
        assert_eq!(v.url, "/pub");
        assert_eq!(rest, &segs("a/b")[..]);
    }

    #[test]
    fn longest_prefix_wins() {
        let t = VpathTable::new(vec![vp("/"), vp("/a"), vp("/a/b")]);
        let s = segs("/a/b/c");
        assert_eq!(t.route(&s).unwrap().0.url, "/a/b");
        let s = segs("/a/x");
        assert_eq!(t.route(&s).unwrap().0.url, "/a");
        let s = segs("/z");
        assert_eq!(t.route(&s).unwrap().0.url, "/");
    }

    #[test]
    fn nothing_configured_nothing_served() {
        let t = VpathTable::new(vec![]);
        assert!(t.route(&segs("/a")).is_none());
    }
}
