//! Connection options shared by `fetch` and `bench`: trust, identity, protocol.

use distpoint::client::{ClientOptions, Protocol};
use std::path::PathBuf;

/// `--cacert`, `--cert`/`--key`, `--user`, `--http1`/`--http2`.
#[derive(clap::Args, Debug)]
pub struct ConnArgs {
    /// Offer HTTP/1.1 only.
    #[arg(long, conflicts_with = "http2")]
    pub http1: bool,
    /// Offer HTTP/2 only.
    #[arg(long)]
    pub http2: bool,
    /// CA certificate(s) to trust, PEM (default: the system bundle). A
    /// server with a private CA needs its CA certificate here.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Client certificate chain, PEM.
    #[arg(long, requires = "key", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Client private key, PEM.
    #[arg(long, requires = "cert", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// HTTP Basic user; the password comes from DISTPOINT_PASSWORD.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

impl ConnArgs {
    /// The client settings these flags ask for (the ALPN list follows --http1/--http2).
    pub fn options(self) -> ClientOptions {
        let protocols = match (self.http1, self.http2) {
            (true, _) => vec![Protocol::Http1],
            (_, true) => vec![Protocol::Http2],
            _ => vec![Protocol::Http2, Protocol::Http1],
        };
        ClientOptions {
            cacert: self.cacert,
            cert: self.cert,
            key: self.key,
            password: self
                .user
                .as_ref()
                .and_then(|_| std::env::var("DISTPOINT_PASSWORD").ok()),
            user: self.user,
            protocols,
        }
    }
}
