//! One client connection over TLS, HTTP/1.1 or HTTP/2 as ALPN decides.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// An HTTP version offered by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1
    Http1,
    /// HTTP/2
    Http2,
}

impl Protocol {
    /// The ALPN identifier.
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Protocol::Http1 => b"http/1.1",
            Protocol::Http2 => b"h2",
        }
    }

    /// The name reports use: `HTTP/1.1` or `HTTP/2`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
        }
    }
}

/// Why a client operation failed. Each variant keeps its cause as `source()`.
#[derive(Debug)]
pub enum ClientError {
    /// TCP connect or I/O.
    Io(std::io::Error),
    /// The TLS handshake failed (an untrusted certificate, no common version…).
    Handshake(std::io::Error),
    /// rustls refused the client configuration (a CA or client certificate it cannot use).
    TlsConfig(String, rustls::Error),
    /// The URL's host is not a name a certificate can carry.
    ServerName(String),
    /// HTTP protocol error.
    Http(hyper::Error),
    /// A request could not be built from the settings.
    Request(http::Error),
    /// A response body larger than the caller accepts.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Bad client settings: URL, certificate files, credentials. The message
    /// names the thing at fault.
    Settings(String, Option<Box<dyn std::error::Error + Send + Sync>>),
}

impl ClientError {
    /// A settings error without an underlying cause.
    pub fn settings(message: impl Into<String>) -> ClientError {
        ClientError::Settings(message.into(), None)
    }

    /// True for errors of the user's settings (exit 1), not of the network.
    pub fn is_settings(&self) -> bool {
        matches!(
            self,
            ClientError::Settings(..) | ClientError::TlsConfig(..) | ClientError::Request(_)
        )
    }

    /// True for TLS failures: retrying will not make a certificate trusted.
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientError::Handshake(_) | ClientError::ServerName(_))
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "connection failed: {e}"),
            ClientError::Handshake(e) => write!(f, "TLS: {e}"),
            ClientError::TlsConfig(what, e) => write!(f, "TLS: {what}: {e}"),
            ClientError::ServerName(name) => {
                write!(f, "TLS: invalid server name {name:?}")
            }
            ClientError::Http(e) => write!(f, "HTTP: {e}"),
            ClientError::Request(e) => write!(f, "cannot build request: {e}"),
            ClientError::TooLarge { limit } => write!(f, "response larger than {limit} bytes"),
            ClientError::Settings(m, _) => f.write_str(m),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) | ClientError::Handshake(e) => Some(e),
            ClientError::TlsConfig(_, e) => Some(e),
            ClientError::Http(e) => Some(e),
            ClientError::Request(e) => Some(e),
            ClientError::Settings(_, Some(e)) => Some(e.as_ref()),
            ClientError::Settings(_, None)
            | ClientError::ServerName(_)
            | ClientError::TooLarge { .. } => None,
        }
    }
}

/// Flow-control settings of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// HTTP/2 stream window, bytes.
    pub h2_stream_window: u32,
    /// HTTP/2 connection window, bytes.
    pub h2_connection_window: u32,
}

impl Default for Tuning {
    /// Large windows: the server, not flow control, should set the pace.
    fn default() -> Tuning {
        Tuning {
            h2_stream_window: 16 << 20,
            h2_connection_window: 64 << 20,
        }
    }
}

impl Tuning {
    /// Windows small enough that a rate limit of `bytes_per_s` also holds
    /// at the sender: about a tenth of a second's worth, at least 64 KiB.
    pub fn for_rate(bytes_per_s: u64) -> Tuning {
        let w = (bytes_per_s / 10).clamp(64 << 10, 16 << 20) as u32;
        Tuning {
            h2_stream_window: w,
            h2_connection_window: w,
        }
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

/// An open connection that sends requests without bodies.
pub struct Conn {
    sender: Sender,
    /// The protocol the server chose.
    pub protocol: Protocol,
}

impl Conn {
    /// Connect to `addr`, verify the server as `server_name`, and start HTTP.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        tls: Arc<ClientConfig>,
    ) -> Result<Conn, ClientError> {
        Conn::connect_tuned(addr, server_name, tls, Tuning::default()).await
    }

    /// [`Conn::connect`] with explicit flow-control settings.
    pub async fn connect_tuned(
        addr: SocketAddr,
        server_name: &str,
        tls: Arc<ClientConfig>,
        tuning: Tuning,
    ) -> Result<Conn, ClientError> {
        let tcp = TcpStream::connect(addr).await.map_err(ClientError::Io)?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|_| ClientError::ServerName(server_name.to_string()))?;
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(ClientError::Handshake)?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        if h2 {
            let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(tuning.h2_stream_window)
                .initial_connection_window_size(tuning.h2_connection_window)
                .handshake(io)
                .await
                .map_err(ClientError::Http)?;
            tokio::spawn(conn);
            Ok(Conn {
                sender: Sender::H2(sender),
                protocol: Protocol::Http2,
            })
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(ClientError::Http)?;
            tokio::spawn(conn);
            Ok(Conn {
                sender: Sender::H1(sender),
                protocol: Protocol::Http1,
            })
        }
    }

    /// True once the connection is closed (by either side).
    pub fn is_closed(&self) -> bool {
        match &self.sender {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// Send one request and wait for the response head.
    pub async fn send(
        &mut self,
        req: Request<Empty<Bytes>>,
    ) -> Result<Response<Incoming>, ClientError> {
        match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await.map_err(ClientError::Http)?;
                s.send_request(req).await.map_err(ClientError::Http)
            }
            Sender::H2(s) => {
                s.ready().await.map_err(ClientError::Http)?;
                s.send_request(req).await.map_err(ClientError::Http)
            }
        }
    }
}
