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
}

/// Why a client operation failed.
#[derive(Debug)]
pub enum ClientError {
    /// TCP connect or I/O.
    Io(std::io::Error),
    /// TLS configuration or handshake.
    Tls(String),
    /// HTTP protocol error.
    Http(hyper::Error),
    /// Bad client settings: URL, certificate files, credentials.
    Config(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "connection failed: {e}"),
            ClientError::Tls(e) => write!(f, "TLS: {e}"),
            ClientError::Http(e) => write!(f, "HTTP: {e}"),
            ClientError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

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
        let tcp = TcpStream::connect(addr).await.map_err(ClientError::Io)?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| ClientError::Tls(format!("invalid server name {server_name:?}: {e}")))?;
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        if h2 {
            let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                // Large windows: the server, not flow control, should set the pace.
                .initial_stream_window_size(16 << 20)
                .initial_connection_window_size(64 << 20)
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
