//! `[metrics]`, `[audit]` and `[log]`: what operating the server needs.

use super::raw::{RawAudit, RawLog, RawMetrics};
use super::{ConfigError, Validator};
use crate::audit::{AuditSettings, DEFAULT_RETENTION_DAYS};
use crate::auth::{Directory, PrincipalRef};
use crate::logging::LogFormat;
use crate::vpath::VpathTable;
use std::path::Path;
use toml::Spanned;

/// Default `[metrics] url`.
pub const DEFAULT_METRICS_URL: &str = "/.well-known/distpoint/metrics";

/// Longest `[audit] retention_days` (ten years).
pub const MAX_RETENTION_DAYS: u64 = 3650;

/// `[metrics]`, validated: who may read the metrics, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// The URL path, matched exactly (no query, no escapes).
    pub url: String,
    /// Readable without credentials.
    pub anonymous: bool,
    /// Principals that may read when credentials are given.
    pub allow: Vec<PrincipalRef>,
}

/// Characters a metrics URL may hold: it is matched against the request
/// path exactly as sent, so nothing that a client might escape differently.
fn plain_url_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/-._~!$&'()*+,;=:@".contains(c)
}

impl Validator<'_> {
    /// An allow list of typed principals that name only known users and groups.
    pub(super) fn allow_list(
        &self,
        raw: &[Spanned<String>],
        dir: &Directory,
    ) -> Result<Vec<PrincipalRef>, ConfigError> {
        let mut allow = Vec::new();
        for a in raw {
            let r: PrincipalRef = a
                .get_ref()
                .parse()
                .map_err(|e| self.err(a.span(), format!("{e}")))?;
            match &r {
                PrincipalRef::User(u) if !dir.has_user(u) => {
                    return Err(self.err(a.span(), format!("allow names unknown user {u:?}")))
                }
                PrincipalRef::Group(g) if !dir.has_group(g) => {
                    return Err(self.err(a.span(), format!("allow names unknown group {g:?}")))
                }
                _ => {}
            }
            allow.push(r);
        }
        Ok(allow)
    }

    pub(super) fn metrics(
        &self,
        raw: Option<Spanned<RawMetrics>>,
        dir: &Directory,
        vpaths: &VpathTable,
    ) -> Result<Option<MetricsSettings>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let span = raw.span();
        let raw = raw.into_inner();
        let (url, url_span) = match &raw.url {
            Some(u) => (u.get_ref().clone(), u.span()),
            None => (DEFAULT_METRICS_URL.to_string(), span),
        };
        let segments: Vec<&str> = url.split('/').skip(1).collect();
        let safe = url.starts_with('/')
            && url.chars().all(plain_url_char)
            && segments
                .iter()
                .all(|s| !s.is_empty() && *s != "." && *s != "..");
        if !safe {
            return Err(self.err(
                url_span,
                format!(
                    "metrics url {url:?} must be an absolute path of plain segments \
                     (no query, escapes, empty, '.' or '..' segments)"
                ),
            ));
        }
        if vpaths.get(&url).is_some() {
            return Err(self.err(url_span, format!("metrics url {url:?} is also a vpath url")));
        }
        Ok(Some(MetricsSettings {
            url,
            anonymous: raw.anonymous,
            allow: self.allow_list(&raw.allow, dir)?,
        }))
    }

    pub(super) fn audit(
        &self,
        raw: Option<Spanned<RawAudit>>,
        state_dir: &Path,
    ) -> Result<Option<AuditSettings>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let raw = raw.into_inner();
        let dir = match &raw.dir {
            Some(d) if d.get_ref().is_empty() => {
                return Err(self.err(d.span(), "path must not be empty"))
            }
            // `join` keeps an absolute `dir` as it is.
            Some(d) => state_dir.join(d.get_ref()),
            None => state_dir.join("audit"),
        };
        let retention_days = match &raw.retention_days {
            None => DEFAULT_RETENTION_DAYS,
            Some(d) if (1..=MAX_RETENTION_DAYS).contains(d.get_ref()) => *d.get_ref() as u32,
            Some(d) => {
                return Err(self.err(
                    d.span(),
                    format!("retention_days must be between 1 and {MAX_RETENTION_DAYS}"),
                ))
            }
        };
        Ok(Some(AuditSettings {
            dir,
            retention_days,
        }))
    }

    pub(super) fn log(&self, raw: Option<Spanned<RawLog>>) -> Result<LogFormat, ConfigError> {
        let Some(raw) = raw else {
            return Ok(LogFormat::default());
        };
        let raw = raw.into_inner();
        self.choice(&raw.format, "format", LogFormat::ALL, LogFormat::as_str)
    }
}
