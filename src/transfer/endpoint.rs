//! Where a client talks to and as whom: URL parsing, TLS material from
//! files, Basic credentials. Shared by `fetch`, `bench` and the transfer
//! engine's HTTP sources.

use super::conn::{ClientError, Conn, Protocol, Tuning};
use crate::tls::{load_cert_chain, load_private_key};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::Empty;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::ClientConfig;
use rustls::RootCertStore;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The system CA bundle used when no `--cacert` is given (Debian layout).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A parsed `https://` URL with its resolved address.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given (for messages).
    pub url: String,
    /// First resolved socket address.
    pub addr: SocketAddr,
    /// The name the server certificate must carry.
    pub server_name: String,
    /// `host[:port]` for the `Host` header and HTTP/2 `:authority`.
    pub authority: String,
    /// Path and query, never empty (`/` at least).
    pub path_and_query: String,
}

impl Target {
    /// Parse an `https://` URL and resolve its host. Plain `http://` is refused:
    /// distpoint is TLS only.
    pub fn parse(url: &str) -> Result<Target, ClientError> {
        let uri: http::Uri = url.parse().map_err(|e| {
            ClientError::Settings(format!("invalid URL {url:?}"), Some(Box::new(e)))
        })?;
        if uri.scheme_str() != Some("https") {
            return Err(ClientError::settings(format!(
                "{url}: only https:// URLs are supported"
            )));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| ClientError::settings(format!("{url}: no host")))?
            .clone();
        let host = authority.host();
        // `[::1]` in a URL is `::1` for resolution and for the certificate name.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(443);
        let addr = (bare, port)
            .to_socket_addrs()
            .map_err(|e| ClientError::Io(std::io::Error::new(e.kind(), format!("{host}: {e}"))))?
            .next()
            .ok_or_else(|| ClientError::settings(format!("{host}: no address")))?;
        let path_and_query = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        Ok(Target {
            url: url.to_string(),
            addr,
            server_name: bare.to_string(),
            authority: authority.as_str().to_string(),
            path_and_query,
        })
    }

    /// The same server, another path and query (for `?manifest`).
    pub fn with_path(&self, path_and_query: &str) -> Target {
        let mut t = self.clone();
        t.path_and_query = path_and_query.to_string();
        t.url = format!("https://{}{}", self.authority, path_and_query);
        t
    }

    /// The path without its query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map(|(p, _)| p)
            .unwrap_or(&self.path_and_query)
    }
}

/// How to authenticate and what to trust, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// CA certificates to trust (PEM); the system bundle when `None`.
    pub cacert: Option<PathBuf>,
    /// Client certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    pub key: Option<PathBuf>,
    /// Basic-auth user name.
    pub user: Option<String>,
    /// Basic-auth password (from the environment, never the command line).
    pub password: Option<String>,
    /// Protocols to offer by ALPN, in preference order.
    pub protocols: Vec<Protocol>,
}

/// A ready client: TLS configuration plus the `Authorization` value, if any.
#[derive(Clone)]
pub struct Client {
    /// The TLS configuration every connection uses.
    pub tls: Arc<ClientConfig>,
    authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the credential.
        f.debug_struct("Client")
            .field("authorization", &self.authorization.as_ref().map(|_| "…"))
            .finish()
    }
}

fn load_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    load_cert_chain(path).map_err(settings_file)
}

fn settings_file(e: crate::tls::TlsError) -> ClientError {
    ClientError::Settings(e.to_string(), Some(Box::new(e)))
}

/// Build a rustls client configuration trusting `roots`, optionally
/// presenting a client certificate, offering `protocols` by ALPN.
pub fn client_config(
    roots: &[CertificateDer<'static>],
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    protocols: &[Protocol],
) -> Result<Arc<ClientConfig>, ClientError> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store
            .add(r.clone())
            .map_err(|e| ClientError::TlsConfig("unusable CA certificate".into(), e))?;
    }
    let builder = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::TlsConfig("protocol versions".into(), e))?
        .with_root_certificates(store);
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| ClientError::TlsConfig("client certificate".into(), e))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = protocols.iter().map(|p| p.alpn().to_vec()).collect();
    Ok(Arc::new(config))
}

impl Client {
    /// Build the client from options: read CA, certificate and key files.
    pub fn new(opts: &ClientOptions) -> Result<Client, ClientError> {
        let roots = match &opts.cacert {
            Some(p) => load_roots(p)?,
            None if Path::new(SYSTEM_CA_BUNDLE).exists() => {
                load_roots(Path::new(SYSTEM_CA_BUNDLE))?
            }
            None => {
                return Err(ClientError::settings(
                    "no --cacert given and no system CA bundle found",
                ))
            }
        };
        let identity = match (&opts.cert, &opts.key) {
            (Some(c), Some(k)) => Some((
                load_cert_chain(c).map_err(settings_file)?,
                load_private_key(k).map_err(settings_file)?,
            )),
            (None, None) => None,
            _ => {
                return Err(ClientError::settings(
                    "--cert and --key must be given together",
                ))
            }
        };
        let authorization = match &opts.user {
            Some(user) => {
                let password = opts.password.as_deref().ok_or_else(|| {
                    ClientError::settings(format!(
                        "--user {user} needs the password in the environment variable DISTPOINT_PASSWORD"
                    ))
                })?;
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                let mut v = HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|_| ClientError::settings("user name is not a valid header"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let protocols = if opts.protocols.is_empty() {
            vec![Protocol::Http2, Protocol::Http1]
        } else {
            opts.protocols.clone()
        };
        Ok(Client {
            tls: client_config(&roots, identity, &protocols)?,
            authorization,
        })
    }

    /// The same trust and client certificate, without the Basic
    /// credentials: for servers other than the one the user logs in to
    /// (a mirror must not learn the password).
    pub fn without_credentials(&self) -> Client {
        Client {
            tls: self.tls.clone(),
            authorization: None,
        }
    }

    /// Open a connection to the target's server.
    pub async fn connect(&self, target: &Target) -> Result<Conn, ClientError> {
        Conn::connect(target.addr, &target.server_name, self.tls.clone()).await
    }

    /// Open a connection with explicit flow-control settings.
    pub async fn connect_tuned(
        &self,
        target: &Target,
        tuning: Tuning,
    ) -> Result<Conn, ClientError> {
        Conn::connect_tuned(target.addr, &target.server_name, self.tls.clone(), tuning).await
    }

    /// A GET request for `target` on a connection speaking `protocol`.
    pub fn get(&self, target: &Target, protocol: Protocol) -> http::request::Builder {
        self.request(http::Method::GET, target, protocol)
    }

    /// A request with any method for `target` on a connection speaking `protocol`.
    pub fn request(
        &self,
        method: http::Method,
        target: &Target,
        protocol: Protocol,
    ) -> http::request::Builder {
        // HTTP/1.1 wants origin-form plus Host; HTTP/2 takes the authority
        // from an absolute URI.
        let uri = match protocol {
            Protocol::Http1 => target.path_and_query.clone(),
            Protocol::Http2 => format!("https://{}{}", target.authority, target.path_and_query),
        };
        let mut b = Request::builder().method(method).uri(uri);
        if protocol == Protocol::Http1 {
            b = b.header(http::header::HOST, target.authority.as_str());
        }
        if let Some(a) = &self.authorization {
            b = b.header(http::header::AUTHORIZATION, a.clone());
        }
        b
    }

    /// Finish a request builder with an empty body.
    pub fn build(b: http::request::Builder) -> Result<Request<Empty<Bytes>>, ClientError> {
        b.body(Empty::new()).map_err(ClientError::Request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_https_urls_and_refuses_plain_http() {
        let t = Target::parse("https://127.0.0.1:8443/a/b.bin?x").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(t.server_name, "127.0.0.1");
        assert_eq!(t.authority, "127.0.0.1:8443");
        assert_eq!(t.path_and_query, "/a/b.bin?x");
        assert_eq!(t.path(), "/a/b.bin");
        let m = t.with_path("/a/b.bin?manifest");
        assert_eq!(m.url, "https://127.0.0.1:8443/a/b.bin?manifest");
        let t6 = Target::parse("https://[::1]:9/").unwrap();
        assert_eq!(t6.server_name, "::1");
        assert!(Target::parse("http://127.0.0.1/x").is_err());
        assert!(Target::parse("not a url").is_err());
    }
}
