//! `[vpath.upstream]`: a path that is a replica of a published package
//! elsewhere (README "Branch distribution point"). Validated here with
//! `file:line:col` errors; the replication itself is `crate::replica`'s.

use super::{raw, ConfigError, Validator};
use crate::integrity::{parse_digest, Digest};
use crate::vpath::Integrity;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// Default `interval_secs`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// Shortest `interval_secs`: failures are never retried more often than this either.
pub const MIN_INTERVAL_SECS: u64 = 10;

/// A validated `[vpath.upstream]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Package URL prefixes, in priority order, without a trailing `/`.
    pub sources: Vec<String>,
    /// The package hash the manifest must have, if pinned.
    pub expect: Option<Digest>,
    /// How often to look for a new version.
    pub interval: Duration,
    /// CA certificates for the sources (`None`: the system roots).
    pub ca: Option<PathBuf>,
    /// Client certificate chain and key shown to the sources.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Basic user at the sources, and the file holding the password.
    pub user: Option<(String, PathBuf)>,
    /// Bytes per second for all of this replica's traffic.
    pub rate_limit: Option<u64>,
    /// Local-time windows in which new requests may start (empty: always).
    pub windows: Vec<Window>,
    /// A prestaged copy whose chunks are verified and reused.
    pub seed: Option<PathBuf>,
}

/// A daily local-time window `[start, end)` in minutes after midnight; it
/// wraps past midnight when `end <= start` (`22:00-06:00`), and
/// `00:00-00:00` is the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First minute inside.
    pub start: u16,
    /// First minute outside.
    pub end: u16,
}

impl Window {
    /// Parse `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Option<Window> {
        let (a, b) = text.split_once('-')?;
        Some(Window {
            start: minutes(a.trim())?,
            end: minutes(b.trim())?,
        })
    }

    /// True when `minute` (after local midnight) lies inside.
    pub fn contains(&self, minute: u16) -> bool {
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Less => (self.start..self.end).contains(&minute),
            std::cmp::Ordering::Greater => minute >= self.start || minute < self.end,
            std::cmp::Ordering::Equal => true,
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

fn minutes(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Validator<'_> {
    /// Validate the upstream table of a path whose integrity and publisher
    /// keys are already known.
    pub(super) fn upstream(
        &self,
        raw: &Spanned<raw::RawUpstream>,
        integrity: Integrity,
        has_keys: bool,
    ) -> Result<Upstream, ConfigError> {
        let span = raw.span();
        let u = raw.get_ref();
        if integrity != Integrity::Published {
            return Err(self.err(
                span,
                "a replica ([vpath.upstream]) needs integrity = \"published\" on its path",
            ));
        }
        let expect =
            match &u.expect {
                Some(e) => Some(parse_digest(&e.get_ref().to_ascii_lowercase()).ok_or_else(
                    || self.err(e.span(), "expect must be a 64-digit hex package hash"),
                )?),
                None => None,
            };
        if expect.is_none() && !has_keys {
            return Err(self.err(
                span,
                "a replica needs upstream.expect or the path's publisher_keys (or both): \
                 otherwise nothing vouches for what it pulls",
            ));
        }
        Ok(Upstream {
            sources: self.sources(&u.sources)?,
            expect,
            interval: match &u.interval_secs {
                None => DEFAULT_INTERVAL,
                Some(s) if (MIN_INTERVAL_SECS..=7 * 86_400).contains(s.get_ref()) => {
                    Duration::from_secs(*s.get_ref())
                }
                Some(s) => {
                    return Err(self.err(
                        s.span(),
                        format!("interval_secs must be between {MIN_INTERVAL_SECS} and 604800"),
                    ))
                }
            },
            ca: self.ca(&u.ca)?,
            client_cert: self.identity(span.clone(), &u.client_cert, &u.client_key)?,
            user: self.basic(span, &u.user, &u.password_file)?,
            rate_limit: match &u.rate_limit {
                None => None,
                Some(r) if *r.get_ref() >= 1024 => Some(*r.get_ref()),
                Some(r) => {
                    return Err(self.err(r.span(), "rate_limit must be at least 1024 bytes/s"))
                }
            },
            windows: u
                .windows
                .iter()
                .map(|w| {
                    Window::parse(w.get_ref()).ok_or_else(|| {
                        self.err(
                            w.span(),
                            format!("window {:?} must be \"HH:MM-HH:MM\"", w.get_ref()),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            seed: u.seed.as_ref().map(|s| self.path_of(s)).transpose()?,
        })
    }

    fn sources(&self, raw: &Spanned<Vec<Spanned<String>>>) -> Result<Vec<String>, ConfigError> {
        if raw.get_ref().is_empty() {
            return Err(self.err(raw.span(), "sources needs at least one package URL prefix"));
        }
        raw.get_ref()
            .iter()
            .map(|s| {
                let text = s.get_ref().trim_end_matches('/');
                if crate::objstore::StoreUrl::is_store_url(text) {
                    // A package published to a bucket (`publish --to`).
                    return crate::objstore::StoreUrl::parse(text)
                        .map(|_| text.to_string())
                        .map_err(|e| self.err(s.span(), format!("source: {e}")));
                }
                let ok = text.parse::<http::Uri>().is_ok_and(|u| {
                    u.scheme_str() == Some("https")
                        && u.authority().is_some()
                        && u.query().is_none()
                });
                if ok {
                    Ok(text.to_string())
                } else {
                    Err(self.err(
                        s.span(),
                        format!(
                            "source {:?} must be an https:// package URL prefix or an s3://BUCKET/PREFIX",
                            s.get_ref()
                        ),
                    ))
                }
            })
            .collect()
    }

    fn ca(&self, raw: &Option<Spanned<String>>) -> Result<Option<PathBuf>, ConfigError> {
        let Some(c) = raw else { return Ok(None) };
        let path = self.path_of(c)?;
        crate::tls::load_cert_chain(&path).map_err(|e| self.err(c.span(), e.to_string()))?;
        Ok(Some(path))
    }

    fn identity(
        &self,
        span: std::ops::Range<usize>,
        cert: &Option<Spanned<String>>,
        key: &Option<Spanned<String>>,
    ) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(c), Some(k)) => {
                let (cp, kp) = (self.path_of(c)?, self.path_of(k)?);
                crate::tls::load_cert_chain(&cp).map_err(|e| self.err(c.span(), e.to_string()))?;
                crate::tls::load_private_key(&kp).map_err(|e| self.err(k.span(), e.to_string()))?;
                Ok(Some((cp, kp)))
            }
            _ => Err(self.err(span, "client_cert and client_key go together")),
        }
    }

    fn basic(
        &self,
        span: std::ops::Range<usize>,
        user: &Option<Spanned<String>>,
        password_file: &Option<Spanned<String>>,
    ) -> Result<Option<(String, PathBuf)>, ConfigError> {
        match (user, password_file) {
            (None, None) => Ok(None),
            (Some(u), Some(p)) => {
                if u.get_ref().is_empty() || u.get_ref().contains(':') {
                    return Err(self.err(u.span(), "user must be non-empty without ':'"));
                }
                let path = self.path_of(p)?;
                std::fs::metadata(&path)
                    .map_err(|e| self.err(p.span(), format!("{}: {e}", path.display())))?;
                Ok(Some((u.get_ref().clone(), path)))
            }
            _ => Err(self.err(span, "user and password_file go together")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_wrap_past_midnight() {
        let night = Window::parse("22:00-06:00").unwrap();
        assert!(night.contains(23 * 60) && night.contains(0) && night.contains(5 * 60 + 59));
        assert!(!night.contains(6 * 60) && !night.contains(12 * 60));
        let day = Window::parse("09:30-17:00").unwrap();
        assert!(day.contains(9 * 60 + 30) && !day.contains(17 * 60) && !day.contains(0));
        assert!(Window::parse("00:00-00:00").unwrap().contains(777));
        assert_eq!(night.to_string(), "22:00-06:00");
        for bad in ["22-06", "24:00-01:00", "1:00-2:00", "10:60-11:00", "x"] {
            assert_eq!(Window::parse(bad), None, "{bad}");
        }
    }
}
