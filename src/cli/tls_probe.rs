//! Why a connection to a server fails, in plain words and with what to do
//! about it: one fresh TCP connection and TLS handshake with the same client
//! settings, whose typed rustls error is explained.
//!
//! The fetch engine and the bench workers report a handshake failure as text;
//! rather than parse that text, the front end repeats the handshake once, after
//! the failure, and reads the error's type.

use distpoint::transfer::{Client, ClientOptions, Target};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError};
use std::path::Path;
use std::time::Duration;

/// What the probe found.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// The TLS handshake failed; the explanation names what to change.
    Tls(String),
    /// No TCP connection could be made.
    Connect(String),
}

impl Problem {
    /// The explanation.
    pub fn text(&self) -> &str {
        match self {
            Problem::Tls(t) | Problem::Connect(t) => t,
        }
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect to `url` as `opts` says and shake hands. `None` when the handshake
/// succeeds (or the settings themselves cannot be used: that error was
/// reported already).
pub async fn probe(opts: &ClientOptions, url: &str) -> Option<Problem> {
    let target = Target::parse(url).ok()?;
    let client = Client::new(opts).ok()?;
    let connect = tokio::net::TcpStream::connect(target.addr);
    let tcp = match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Some(Problem::Connect(format!("{}: {e}", target.addr))),
        Err(_) => {
            return Some(Problem::Connect(format!(
                "{}: connect timed out",
                target.addr
            )))
        }
    };
    let name = ServerName::try_from(target.server_name.clone()).ok()?;
    let handshake = tokio_rustls::TlsConnector::from(client.tls.clone()).connect(name, tcp);
    let err = match tokio::time::timeout(PROBE_TIMEOUT, handshake).await {
        Ok(Ok(_)) => return None,
        Ok(Err(e)) => e,
        Err(_) => return Some(Problem::Tls("the TLS handshake timed out".into())),
    };
    let text = match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => explain(tls, opts.cacert.as_deref())
            .unwrap_or_else(|| format!("TLS handshake failed: {tls}")),
        None => format!("TLS handshake failed: {err}"),
    };
    Some(Problem::Tls(text))
}

/// Plain words for the handshake errors a user can fix, naming the option
/// that fixes each.
pub fn explain(e: &rustls::Error, cacert: Option<&Path>) -> Option<String> {
    use CertificateError as C;
    let text = match e {
        rustls::Error::InvalidCertificate(c) => {
            match c {
                C::UnknownIssuer => match cacert {
                    None => "the server's certificate is not issued by a CA in the system bundle; \
                         to trust a private CA (such as the one `distpoint certs dev` makes), \
                         pass its certificate with --cacert FILE"
                        .to_string(),
                    Some(f) => format!(
                        "the server's certificate is not issued by the CA in {} \
                     (--cacert); pass the CA certificate that issued it",
                        f.display()
                    ),
                },
                C::Expired | C::ExpiredContext { .. } => {
                    format!("the server's certificate has expired ({c}); it must be renewed on the server")
                }
                C::NotValidYet | C::NotValidYetContext { .. } => format!(
                    "the server's certificate is not valid yet ({c}); check this machine's clock"
                ),
                C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                    "the server's certificate does not name the host in the URL ({c}); \
                 use a host name the certificate lists"
                ),
                C::Revoked => "the server's certificate has been revoked".to_string(),
                _ => return None,
            }
        }
        rustls::Error::AlertReceived(
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateRequired
            | AlertDescription::CertificateUnknown,
        ) => "the server refused the client certificate (--cert): it must be issued by \
              the CA in the server's tls.client_ca"
            .to_string(),
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_issuer_says_how_to_trust_a_private_ca() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let text = explain(&e, None).unwrap();
        assert!(text.contains("--cacert FILE"), "{text}");
        let text = explain(&e, Some(Path::new("/tmp/ca.crt"))).unwrap();
        assert!(text.contains("/tmp/ca.crt"), "{text}");
    }

    #[test]
    fn a_refused_client_certificate_names_client_ca() {
        let e = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
        assert!(explain(&e, None).unwrap().contains("client_ca"));
        let other = rustls::Error::AlertReceived(AlertDescription::HandshakeFailure);
        assert_eq!(explain(&other, None), None);
    }
}
