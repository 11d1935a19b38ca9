//! Watching the config file and the TLS files, and `SIGHUP`.
//!
//! The parent folders are watched, not the files: an editor that saves by
//! writing a new file and renaming it over the old one replaces the inode a
//! file watch would be tied to. Events are debounced (an editor's save is
//! several events; a certificate and its key are two writes) and then the
//! whole file is read again. If inotify cannot be used (for example its
//! limits are reached), a polling watcher takes over and that is logged.

use super::reload::{reload_config, reload_tls};
use crate::server::ServerState;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{Event, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::Signal;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

/// Quiet time after the last event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// Longest a burst of events may delay a reload.
pub const MAX_DELAY: Duration = Duration::from_millis(400);
/// Poll interval of the fallback watcher.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The files whose change means a reload.
struct Watched {
    config: PathBuf,
    tls: Vec<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl Watched {
    fn of(state: &ServerState) -> Watched {
        let config = state.config.load();
        let t = &config.tls;
        let tls: Vec<PathBuf> = [Some(&t.cert), Some(&t.key), t.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let dirs = std::iter::once(&config.path)
            .chain(&tls)
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        Watched {
            config: config.path.clone(),
            tls,
            dirs,
        }
    }
}

/// What a batch of events touched.
#[derive(Default)]
struct Touched {
    config: bool,
    tls: bool,
    hup: bool,
}

/// Start watching; runs until `shutdown`. `hangup` is the `SIGHUP` stream,
/// installed before the server announced itself so a early `SIGHUP` cannot
/// kill it.
pub fn spawn(state: Arc<ServerState>, hangup: Signal, shutdown: CancellationToken) {
    let (tx, rx) = unbounded_channel();
    let mut watcher = make_watcher(tx);
    // Watch before returning, so that a change made right after the server
    // announced itself is seen.
    let mut have = BTreeSet::new();
    let files = Watched::of(&state);
    update_watches(watcher.as_mut(), &mut have, &files);
    let w = Watching {
        watcher,
        have,
        files,
    };
    tokio::spawn(run(state, w, rx, hangup, shutdown));
}

/// The watcher and what it watches now.
struct Watching {
    watcher: Box<dyn Watcher + Send>,
    have: BTreeSet<PathBuf>,
    files: Watched,
}

fn make_watcher(tx: UnboundedSender<Vec<PathBuf>>) -> Box<dyn Watcher + Send> {
    let handler = move |res: notify::Result<Event>| match res {
        Ok(ev) if relevant(&ev.kind) => {
            let _ = tx.send(ev.paths);
        }
        Ok(_) => {}
        Err(e) => warn!(target: "distpoint::live", "file watcher: {e}"),
    };
    let h2 = handler.clone();
    match notify::recommended_watcher(handler) {
        Ok(w) => Box::new(w),
        Err(e) => {
            warn!(target: "distpoint::live",
                "cannot use inotify ({e}): polling the config and TLS files every {} ms instead",
                POLL_INTERVAL.as_millis());
            let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
            match notify::PollWatcher::new(h2, config) {
                Ok(w) => Box::new(w),
                Err(e) => {
                    error!(target: "distpoint::live",
                        "cannot watch the config file ({e}): only SIGHUP reloads it");
                    Box::new(notify::NullWatcher)
                }
            }
        }
    }
}

fn relevant(kind: &EventKind) -> bool {
    match kind {
        // A file closed after writing is the end of an in-place save.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Watch the folders `want` names and stop watching those it no longer does.
fn update_watches(watcher: &mut dyn Watcher, have: &mut BTreeSet<PathBuf>, want: &Watched) {
    for dir in have.difference(&want.dirs).cloned().collect::<Vec<_>>() {
        let _ = watcher.unwatch(&dir);
        have.remove(&dir);
    }
    for dir in want.dirs.difference(have).cloned().collect::<Vec<_>>() {
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                debug!(target: "distpoint::live", dir = %dir.display(), "watching");
                have.insert(dir);
            }
            Err(e) => warn!(target: "distpoint::live",
                "cannot watch {} ({e}): changes there need SIGHUP", dir.display()),
        }
    }
}

async fn run(
    state: Arc<ServerState>,
    w: Watching,
    mut rx: UnboundedReceiver<Vec<PathBuf>>,
    mut hangup: Signal,
    shutdown: CancellationToken,
) {
    let Watching {
        mut watcher,
        mut have,
        mut files,
    } = w;
    loop {
        let mut touched = Touched::default();
        tokio::select! {
            Some(paths) = rx.recv() => classify(&files, &paths, &mut touched),
            Some(()) = hangup.recv() => touched.hup = true,
            _ = shutdown.cancelled() => return,
        }
        if !(touched.config || touched.tls || touched.hup) {
            continue;
        }
        let since = Instant::now();
        // Debounce: wait for a quiet moment, but never longer than MAX_DELAY.
        while since.elapsed() < MAX_DELAY {
            match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                Ok(Some(paths)) => classify(&files, &paths, &mut touched),
                _ => break,
            }
        }
        let why = if touched.hup {
            "SIGHUP"
        } else if touched.config {
            "config file changed"
        } else {
            "TLS file changed"
        };
        if touched.hup || touched.config {
            reload_config(&state, why, since).await;
        }
        // A config reload only reloads TLS when [tls] settings changed; the
        // files themselves may have changed under the same names.
        if touched.hup || touched.tls {
            let state = state.clone();
            let _ = tokio::task::spawn_blocking(move || reload_tls(&state, why)).await;
        }
        files = Watched::of(&state);
        update_watches(watcher.as_mut(), &mut have, &files);
    }
}

fn classify(files: &Watched, paths: &[PathBuf], touched: &mut Touched) {
    for p in paths {
        if *p == files.config {
            touched.config = true;
        } else if files.tls.contains(p) {
            touched.tls = true;
        }
    }
}
