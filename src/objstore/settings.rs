//! How to reach a bucket: endpoint, region, credentials and trust.
//!
//! From `[origins.BUCKET]` in a config, or from the environment the AWS
//! tools use: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION` (or `AWS_DEFAULT_REGION`),
//! `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`), `AWS_CA_BUNDLE`, and the
//! shared profile files (`AWS_SHARED_CREDENTIALS_FILE`, default
//! `~/.aws/credentials`; `AWS_CONFIG_FILE`, default `~/.aws/config`;
//! profile `AWS_PROFILE`, default `default`).
//!
//! The profile files are read here because `object_store` reads only the
//! environment; they are plain INI, and the AWS SDK's own loader would bring
//! the whole SDK in for a dozen lines.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A credential: compared and cloned like a string, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a credential.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The credential itself, for the request signer only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Connection settings for one bucket. Anything left `None` falls back to
/// what `object_store` finds itself (for AWS: instance or container roles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSettings {
    /// `https://HOST[:PORT]` of an S3-compatible store; `None` for AWS.
    pub endpoint: Option<String>,
    /// The region (S3-compatible stores often want a fixed name).
    pub region: Option<String>,
    /// Access key id.
    pub access_key: Option<Secret>,
    /// Secret access key.
    pub secret_key: Option<Secret>,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// Extra trusted CA certificates for the endpoint (PEM bytes).
    pub ca_pem: Option<Vec<u8>>,
}

/// Why settings could not be made.
#[derive(Debug)]
pub enum SettingsError {
    /// The endpoint is not an acceptable URL.
    Endpoint {
        /// The endpoint given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key, CA or profile file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file holds no key.
    Empty(PathBuf),
    /// Only one of the access key and the secret key was given.
    HalfCredentials,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Endpoint { url, reason } => write!(f, "endpoint {url:?}: {reason}"),
            SettingsError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            SettingsError::Empty(p) => write!(f, "{} is empty", p.display()),
            SettingsError::HalfCredentials => {
                f.write_str("an access key needs its secret key, and the other way round")
            }
        }
    }
}

impl std::error::Error for SettingsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SettingsError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `https://HOST[:PORT]`, or `http://` to a loopback address only (a store
/// on the same machine); no path, query or credentials. The manifest and
/// its signature protect the content, not the credentials' confidentiality
/// nor the manifest of an unsigned package: plaintext across a network is
/// refused.
pub fn check_endpoint(url: &str) -> Result<String, SettingsError> {
    let bad = |reason| SettingsError::Endpoint {
        url: url.to_string(),
        reason,
    };
    let trimmed = url.trim_end_matches('/');
    let (plain, authority) = match (
        trimmed.strip_prefix("https://"),
        trimmed.strip_prefix("http://"),
    ) {
        (Some(a), _) => (false, a),
        (None, Some(a)) => (true, a),
        _ => return Err(bad("must be https://HOST[:PORT]")),
    };
    let parsed: http::uri::Authority = authority
        .parse()
        .map_err(|_| bad("must be https://HOST[:PORT] with no path"))?;
    if authority.is_empty() || parsed.as_str() != authority || authority.contains('@') {
        return Err(bad(
            "must be https://HOST[:PORT] with no path or credentials",
        ));
    }
    if plain && !is_loopback(parsed.host()) {
        return Err(bad(
            "plain http:// is allowed only to a loopback address (127.0.0.1, ::1, localhost)",
        ));
    }
    Ok(trimmed.to_string())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The first line of a key file, trimmed.
pub fn read_key_file(path: &Path) -> Result<Secret, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let key = text.lines().next().unwrap_or("").trim();
    if key.is_empty() {
        return Err(SettingsError::Empty(path.to_path_buf()));
    }
    Ok(Secret::new(key))
}

/// A PEM file of CA certificates.
pub fn read_ca(path: &Path) -> Result<Vec<u8>, SettingsError> {
    std::fs::read(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl StoreSettings {
    /// Settings from the environment and the AWS profile files, as the AWS
    /// command-line tools find them. `get` reads a variable (the process
    /// environment in real use).
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let var = |k: &str| get(k).filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let file = |var_name: &str, default: &str| {
            var(var_name)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(default)))
        };
        let creds = read_ini(file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"))?;
        let config = read_ini(file("AWS_CONFIG_FILE", ".aws/config"))?;
        let from_creds = |k: &str| creds.get(&(profile.clone(), k.to_string())).cloned();
        // In ~/.aws/config, profiles other than "default" are "[profile NAME]".
        let config_section = if profile == "default" {
            profile.clone()
        } else {
            format!("profile {profile}")
        };
        let from_config = |k: &str| {
            config
                .get(&(config_section.clone(), k.to_string()))
                .cloned()
        };
        let (access_key, secret_key, session_token) =
            match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                (Some(a), Some(s)) => (Some(a), Some(s), var("AWS_SESSION_TOKEN")),
                (None, None) => (
                    from_creds("aws_access_key_id"),
                    from_creds("aws_secret_access_key"),
                    from_creds("aws_session_token"),
                ),
                _ => return Err(SettingsError::HalfCredentials),
            };
        if access_key.is_some() != secret_key.is_some() {
            return Err(SettingsError::HalfCredentials);
        }
        let endpoint = var("AWS_ENDPOINT_URL_S3")
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .or_else(|| from_config("endpoint_url"))
            .map(|e| check_endpoint(&e))
            .transpose()?;
        let ca_pem = var("AWS_CA_BUNDLE")
            .or_else(|| from_config("ca_bundle"))
            .map(|p| read_ca(Path::new(&p)))
            .transpose()?;
        Ok(StoreSettings {
            endpoint,
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .or_else(|| from_config("region")),
            access_key: access_key.map(Secret::new),
            secret_key: secret_key.map(Secret::new),
            session_token: session_token.map(Secret::new),
            ca_pem,
        })
    }

    /// [`StoreSettings::from_env_with`] the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// The files [`StoreSettings::from_env`] may read (they need not exist).
    pub fn profile_files() -> Vec<PathBuf> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let mut out = Vec::new();
        for (name, default) in [
            ("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            ("AWS_CONFIG_FILE", ".aws/config"),
        ] {
            if let Some(p) = var(name)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(default)))
            {
                out.push(p);
            }
        }
        out.extend(var("AWS_CA_BUNDLE").map(PathBuf::from));
        out
    }
}

/// `(section, key) → value` of an INI file; a missing file is empty.
fn read_ini(path: Option<PathBuf>) -> Result<HashMap<(String, String), String>, SettingsError> {
    let mut out = HashMap::new();
    let Some(path) = path else { return Ok(out) };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(SettingsError::Read { path, source }),
    };
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(
                (section.clone(), k.trim().to_ascii_lowercase()),
                v.trim().to_string(),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_https_or_loopback_http() {
        assert_eq!(
            check_endpoint("https://s3.example:3900/").unwrap(),
            "https://s3.example:3900"
        );
        assert!(check_endpoint("http://127.0.0.1:3900").is_ok());
        assert!(check_endpoint("http://[::1]:3900").is_ok());
        assert!(check_endpoint("http://localhost:3900").is_ok());
        for bad in [
            "http://10.0.0.5:3900",
            "ftp://h",
            "https://h/path",
            "https://user@h",
            "https://",
            "s3.example",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_first_then_profile_files_and_secrets_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = sdef\n\
             [ci]\naws_access_key_id=AKCI\naws_secret_access_key=sci\n",
        )
        .unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "[profile ci]\nregion = garage\nendpoint_url = http://127.0.0.1:3900\n",
        )
        .unwrap();
        let env = |pairs: Vec<(&'static str, String)>| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let files = vec![
            ("AWS_SHARED_CREDENTIALS_FILE", creds.display().to_string()),
            ("AWS_CONFIG_FILE", config.display().to_string()),
        ];
        let mut ci = files.clone();
        ci.push(("AWS_PROFILE", "ci".into()));
        let s = StoreSettings::from_env_with(env(ci)).unwrap();
        assert_eq!(s.access_key, Some(Secret::new("AKCI")));
        assert_eq!(s.region.as_deref(), Some("garage"));
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert!(!format!("{s:?}").contains("sci"), "{s:?}");
        let mut over = files.clone();
        over.push(("AWS_ACCESS_KEY_ID", "AKENV".into()));
        over.push(("AWS_SECRET_ACCESS_KEY", "senv".into()));
        let s = StoreSettings::from_env_with(env(over)).unwrap();
        assert_eq!(s.secret_key, Some(Secret::new("senv")));
        assert_eq!(s.endpoint, None, "the default profile has no endpoint");
        let half = vec![("AWS_ACCESS_KEY_ID", "AK".to_string())];
        assert!(matches!(
            StoreSettings::from_env_with(env(half)),
            Err(SettingsError::HalfCredentials)
        ));
    }
}
