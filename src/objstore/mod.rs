//! Object-store access: the `s3://BUCKET/PREFIX` locations a package can be
//! published to, served through from, and fetched from.
//!
//! A thin layer over the `object_store` crate (its S3 client: request
//! signing, ranged reads, retries with backoff, multipart uploads), so that
//! distpoint never speaks S3 itself. What it adds is distpoint's view:
//!
//! - [`StoreUrl`]: an `s3://BUCKET/PREFIX` location, parsed once.
//! - [`StoreSettings`]: how to reach a bucket (endpoint, region, credentials,
//!   trust), from `[origins.BUCKET]` or from the usual `AWS_*` environment and
//!   profile file.
//! - [`Store`]: one bucket and prefix, with the few operations distpoint
//!   needs (ranged and whole reads, metadata, listing, uploads, deletes),
//!   each failure sorted into a [`StoreErrorKind`] that callers decide on.
//!
//! A primitive (layer 1): `integrity` (serve-through paths, `publish --to`)
//! and `transfer` (`s3://` sources) both build on it. Nothing read through
//! it is trusted: every byte is checked against a manifest above.

mod settings;
mod store;

pub use settings::{check_endpoint, read_ca, read_key_file, Secret, SettingsError, StoreSettings};
pub use store::{ObjectInfo, Patience, Store, StoreError, StoreErrorKind};

use std::fmt;

/// The URL scheme of an object-store location.
pub const SCHEME: &str = "s3://";

/// An `s3://BUCKET/PREFIX` location: a bucket and a key prefix without
/// leading or trailing `/` (empty for the bucket's root).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreUrl {
    /// The bucket name.
    pub bucket: String,
    /// The key prefix, `a/b` (no leading or trailing slash; may be empty).
    pub prefix: String,
}

/// Why a text is not an `s3://BUCKET/PREFIX` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an s3://BUCKET/PREFIX location: {}",
            self.text, self.reason
        )
    }
}

impl std::error::Error for UrlError {}

impl StoreUrl {
    /// True when `text` names an object-store location (it may still be invalid).
    pub fn is_store_url(text: &str) -> bool {
        text.starts_with(SCHEME)
    }

    /// Parse `s3://BUCKET[/PREFIX][/]`. Bucket names follow S3's rules
    /// (3–63 characters: lower-case letters, digits, `.` and `-`); the
    /// prefix may not contain empty, `.` or `..` segments.
    pub fn parse(text: &str) -> Result<StoreUrl, UrlError> {
        let bad = |reason| UrlError {
            text: text.to_string(),
            reason,
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it must start with s3://"))?;
        if rest.contains(['?', '#', '\\']) || rest.chars().any(char::is_control) {
            return Err(bad("no query, fragment, backslash or control character"));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && !bucket.starts_with(['.', '-'])
            && !bucket.ends_with(['.', '-']);
        if !bucket_ok {
            return Err(bad(
                "the bucket name must be 3-63 lower-case letters, digits, '.' or '-'",
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(bad("the prefix may not have empty, '.' or '..' segments"));
        }
        Ok(StoreUrl {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The object key of `rel` (a `/`-separated path below the prefix).
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// The location of `rel` below this one, as a URL (for messages and
    /// quarantine records).
    pub fn join(&self, rel: &str) -> String {
        format!("{SCHEME}{}/{}", self.bucket, self.key(rel))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "{SCHEME}{}", self.bucket)
        } else {
            write!(f, "{SCHEME}{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        let u = StoreUrl::parse("s3://packages/PKG00001/").unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("packages", "PKG00001")
        );
        assert_eq!(u.key("a/b.bin"), "PKG00001/a/b.bin");
        assert_eq!(u.join("x"), "s3://packages/PKG00001/x");
        assert_eq!(u.to_string(), "s3://packages/PKG00001");
        let root = StoreUrl::parse("s3://my-bucket.v2").unwrap();
        assert_eq!(root.prefix, "");
        assert_eq!(root.key("f"), "f");
        assert_eq!(root.to_string(), "s3://my-bucket.v2");
        for bad in [
            "https://b/p",
            "s3://",
            "s3://ab/p",
            "s3://Upper/p",
            "s3://b_b_b/p",
            "s3://-bucket/p",
            "s3://bucket/a//b",
            "s3://bucket/a/../b",
            "s3://bucket/p?x",
            "s3://bucket/a\\b",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(StoreUrl::is_store_url("s3://x") && !StoreUrl::is_store_url("https://x"));
    }
}
