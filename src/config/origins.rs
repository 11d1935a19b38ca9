//! `[origins.BUCKET]` and serve-through paths (`origin = "s3://…"`), validated
//! with `file:line:col` errors like the rest of the file.

use super::raw::{RawOrigin, RawVpath};
use super::{ConfigError, Validator};
use crate::objstore::{self, StoreSettings, StoreUrl};
use crate::vpath::{Integrity, Origin};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// Default `cache_bytes`: 1 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;
/// Default `interval_secs`.
pub const DEFAULT_INTERVAL_SECS: u64 = 60;

/// The validated `[origins]` tables: settings per bucket, and the files
/// they were read from (a reload reads them again, so the sandbox must
/// leave them readable).
pub(super) struct Origins {
    pub settings: BTreeMap<String, StoreSettings>,
    pub files: Vec<PathBuf>,
}

impl Validator<'_> {
    pub(super) fn origins(
        &self,
        raw: &BTreeMap<String, Spanned<RawOrigin>>,
    ) -> Result<Origins, ConfigError> {
        let mut out = Origins {
            settings: BTreeMap::new(),
            files: Vec::new(),
        };
        for (name, table) in raw {
            StoreUrl::parse(&format!("{}{name}", objstore::SCHEME))
                .map_err(|e| self.err(table.span(), format!("[origins.{name}]: {}", e.reason)))?;
            let o = table.get_ref();
            let endpoint = o
                .endpoint
                .as_ref()
                .map(|e| {
                    objstore::check_endpoint(e.get_ref())
                        .map_err(|why| self.err(e.span(), why.to_string()))
                })
                .transpose()?;
            let mut key = |f: &Option<Spanned<String>>| -> Result<_, ConfigError> {
                let Some(f) = f else { return Ok(None) };
                let path = self.path_of(f)?;
                let secret = objstore::read_key_file(&path)
                    .map_err(|why| self.err(f.span(), why.to_string()))?;
                out.files.push(path);
                Ok(Some(secret))
            };
            let access_key = key(&o.access_key_file)?;
            let secret_key = key(&o.secret_key_file)?;
            if access_key.is_some() != secret_key.is_some() {
                return Err(self.err(
                    table.span(),
                    format!("[origins.{name}]: access_key_file and secret_key_file go together"),
                ));
            }
            let ca_pem = match &o.ca {
                Some(c) => {
                    let path = self.path_of(c)?;
                    crate::tls::load_client_roots(&path)
                        .map_err(|e| self.err(c.span(), e.to_string()))?;
                    let pem = objstore::read_ca(&path)
                        .map_err(|why| self.err(c.span(), why.to_string()))?;
                    out.files.push(path);
                    Some(pem)
                }
                None => None,
            };
            let mut settings = match access_key {
                Some(_) => StoreSettings::default(),
                // No keys in the table: the environment's (and profile's).
                None => StoreSettings::from_env()
                    .map_err(|why| self.err(table.span(), format!("[origins.{name}]: {why}")))?,
            };
            settings.endpoint = endpoint.or(settings.endpoint);
            settings.region = o
                .region
                .as_ref()
                .map(|r| r.get_ref().clone())
                .or(settings.region);
            if access_key.is_some() {
                settings.access_key = access_key;
                settings.secret_key = secret_key;
            }
            settings.ca_pem = ca_pem.or(settings.ca_pem);
            out.settings.insert(name.clone(), settings);
        }
        Ok(out)
    }

    /// Keys that only a serve-through path may have.
    pub(super) fn no_origin_keys(&self, v: &RawVpath) -> Result<(), ConfigError> {
        let span = v
            .cache_dir
            .as_ref()
            .map(|s| s.span())
            .or(v.cache_bytes.as_ref().map(|s| s.span()))
            .or(v.interval_secs.as_ref().map(|s| s.span()));
        match span {
            Some(span) => Err(self.err(
                span,
                "cache_dir, cache_bytes and interval_secs need origin = \"s3://BUCKET/PREFIX\"",
            )),
            None => Ok(()),
        }
    }

    /// A serve-through path's cache folder (its `dir`) and origin.
    pub(super) fn serve_through(
        &self,
        v: &Spanned<RawVpath>,
        origin: &Spanned<String>,
        integrity: Integrity,
        origins: &Origins,
    ) -> Result<(PathBuf, Origin), ConfigError> {
        let raw = v.get_ref();
        let url = StoreUrl::parse(origin.get_ref())
            .map_err(|e| self.err(origin.span(), e.to_string()))?;
        if integrity != Integrity::Published {
            let span = raw.integrity.as_ref().map_or(origin.span(), |i| i.span());
            return Err(self.err(
                span,
                "a path with origin needs integrity = \"published\" (the store is not trusted)",
            ));
        }
        let cache_dir = raw.cache_dir.as_ref().ok_or_else(|| {
            self.err(
                origin.span(),
                "a path with origin needs cache_dir (the folder its verified chunks are kept in)",
            )
        })?;
        let dir = self.path_of(cache_dir)?;
        if let Ok(m) = std::fs::metadata(&dir) {
            if !m.is_dir() {
                return Err(self.err(
                    cache_dir.span(),
                    format!("cache_dir {} is not a folder", dir.display()),
                ));
            }
        }
        let cache_bytes = match &raw.cache_bytes {
            None => DEFAULT_CACHE_BYTES,
            Some(b) if (crate::integrity::MIN_CHUNK_SIZE..=1 << 50).contains(b.get_ref()) => {
                *b.get_ref()
            }
            Some(b) => {
                return Err(self.err(
                    b.span(),
                    format!(
                        "cache_bytes must be between {} and 2^50 (chunks larger than it are not cached)",
                        crate::integrity::MIN_CHUNK_SIZE
                    ),
                ))
            }
        };
        let interval = match &raw.interval_secs {
            None => DEFAULT_INTERVAL_SECS,
            Some(i) if (1..=86_400).contains(i.get_ref()) => *i.get_ref(),
            Some(i) => return Err(self.err(i.span(), "interval_secs must be between 1 and 86400")),
        };
        let settings = match origins.settings.get(&url.bucket) {
            Some(s) => s.clone(),
            None => StoreSettings::from_env().map_err(|why| {
                self.err(
                    origin.span(),
                    format!("no [origins.{}], and the environment: {why}", url.bucket),
                )
            })?,
        };
        Ok((
            dir,
            Origin {
                url,
                settings,
                cache_bytes,
                interval: Duration::from_secs(interval),
            },
        ))
    }
}

#[cfg(test)]
#[path = "origins_tests.rs"]
mod tests;
