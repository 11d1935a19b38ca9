//! The local control socket, `STATE_DIR/control.sock` (a unix socket the
//! owner alone may use: mode 0600), through which `distpoint sync` and
//! `distpoint status` talk to the running server. One JSON object per line
//! each way:
//!
//! - `{"cmd":"status"}` → `{"ok":true,"replicas":[STATUS…]}`
//! - `{"cmd":"sync","url":null|"/PREFIX"}` → the same, once the syncs asked
//!   for are over (`ok` false with `error` for an unknown prefix).

use super::Replication;
use crate::state::replicas::ReplicaStatus;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The socket's file name beneath `state_dir`.
pub const SOCKET: &str = "control.sock";

/// The control socket of a server whose state is in `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET)
}

/// What a client asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// Every replica's status.
    Status,
    /// Sync one replica (by URL prefix) or all, and wait for the result.
    Sync {
        /// The URL prefix; `None`: every replica.
        url: Option<String>,
    },
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct Response {
    /// False when the request could not be carried out.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The replicas concerned.
    pub replicas: Vec<ReplicaStatus>,
}

/// Listen on the socket until `shutdown`. A stale socket file (from a
/// process that is gone) is replaced.
pub fn serve(replication: Arc<Replication>, state_dir: &Path, shutdown: CancellationToken) {
    let path = socket_path(state_dir);
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            warn!(socket = %path.display(), "replica control socket unavailable: {e}");
            return;
        }
    };
    use std::os::unix::fs::PermissionsExt as _;
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        warn!(socket = %path.display(), "cannot restrict the control socket: {e}");
        return;
    }
    info!(socket = %path.display(), "replica control socket listening");
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => { warn!("control socket: accept failed: {e}"); continue; }
                },
            };
            tokio::spawn(answer(replication.clone(), stream));
        }
        let _ = std::fs::remove_file(&path);
    });
}

async fn answer(replication: Arc<Replication>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Status) => Response {
                ok: true,
                error: None,
                replicas: replication.statuses(),
            },
            Ok(Request::Sync { url }) => match replication.sync(url.as_deref()).await {
                Ok(replicas) => Response {
                    ok: true,
                    error: None,
                    replicas,
                },
                Err(error) => Response {
                    ok: false,
                    error: Some(error.to_string()),
                    replicas: Vec::new(),
                },
            },
            Err(e) => Response {
                ok: false,
                error: Some(format!("bad request: {e}")),
                replicas: Vec::new(),
            },
        };
        let mut text = serde_json::to_string(&response).expect("serializes");
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            debug!("control socket: client went away");
            return;
        }
    }
}

/// Ask the server whose state is in `state_dir` (the client side, for the CLI).
pub async fn ask(state_dir: &Path, request: &Request) -> std::io::Result<serde_json::Value> {
    let path = socket_path(state_dir);
    let stream = UnixStream::connect(&path).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "{}: {e} (is `distpoint serve` running with this config?)",
                path.display()
            ),
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut text = serde_json::to_string(request).expect("serializes");
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    let line = BufReader::new(read).lines().next_line().await?;
    let line = line.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the control socket",
        )
    })?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}
