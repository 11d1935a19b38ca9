//! Watching the config file and the TLS files, and `SIGHUP`.
//!
//! The parent folders are watched, not the files: an editor that saves by
//! writing a new file and renaming it over the old one replaces the inode a
//! file watch would be tied to. Events are debounced (an editor's save is
//! several events; a certificate and its key are two writes) and then the
//! whole file is read again. If inotify cannot be used (for example its
//! limits are reached), a polling watcher takes over and that is logged;
//! `DISTPOINT_WATCH=poll` asks for polling from the start.

use super::reload::{reload_config, reload_tls};
use crate::state::Runtime;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{Event, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::Signal;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

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
    fn of(state: &Runtime) -> Watched {
        let config = state.shared.config.load();
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
pub fn spawn(state: Arc<Runtime>, hangup: Signal, shutdown: CancellationToken) {
    let (tx, rx) = unbounded_channel();
    // Watch before returning, so that a change made right after the server
    // announced itself is seen.
    let mut w = Watching {
        watcher: native_watcher(tx.clone()),
        tx,
        polling: false,
        have: BTreeSet::new(),
    };
    w.sync(&Watched::of(&state));
    tokio::spawn(run(state, w, rx, hangup, shutdown));
}

/// The watcher and the folders it watches now.
struct Watching {
    watcher: Box<dyn Watcher + Send>,
    tx: UnboundedSender<Vec<PathBuf>>,
    polling: bool,
    have: BTreeSet<PathBuf>,
}

impl Watching {
    /// Watch the folders `want` names and stop watching the others. If the
    /// native watcher cannot watch one (inotify limits), switch to polling.
    fn sync(&mut self, want: &Watched) {
        if update_watches(self.watcher.as_mut(), &mut self.have, want) || self.polling {
            return;
        }
        warn!(target: "distpoint::live",
            "inotify cannot watch every folder (see the warnings above): polling the config \
             and TLS files every {} ms instead", POLL_INTERVAL.as_millis());
        self.watcher = poll_watcher(self.tx.clone());
        self.polling = true;
        self.have.clear();
        update_watches(self.watcher.as_mut(), &mut self.have, want);
    }
}

fn handler(tx: UnboundedSender<Vec<PathBuf>>) -> impl notify::EventHandler {
    move |res: notify::Result<Event>| match res {
        Ok(ev) if relevant(&ev.kind) => {
            let _ = tx.send(ev.paths);
        }
        Ok(_) => {}
        Err(e) => warn!(target: "distpoint::live", "file watcher: {e}"),
    }
}

/// Environment variable: `poll` makes the watcher poll instead of using
/// inotify (network file systems do not report changes made elsewhere).
pub const WATCH_ENV: &str = "DISTPOINT_WATCH";

fn native_watcher(tx: UnboundedSender<Vec<PathBuf>>) -> Box<dyn Watcher + Send> {
    if std::env::var(WATCH_ENV).is_ok_and(|v| v == "poll") {
        info!(target: "distpoint::live",
            "{WATCH_ENV}=poll: polling the config and TLS files every {} ms",
            POLL_INTERVAL.as_millis());
        return poll_watcher(tx);
    }
    match notify::recommended_watcher(handler(tx.clone())) {
        Ok(w) => Box::new(w),
        Err(e) => {
            warn!(target: "distpoint::live",
                "cannot use inotify ({e}): polling the config and TLS files every {} ms instead",
                POLL_INTERVAL.as_millis());
            poll_watcher(tx)
        }
    }
}

fn poll_watcher(tx: UnboundedSender<Vec<PathBuf>>) -> Box<dyn Watcher + Send> {
    // Contents, not only times: a save within the same second as the last
    // one may keep the modification time the poller compares.
    let config = notify::Config::default()
        .with_poll_interval(POLL_INTERVAL)
        .with_compare_contents(true);
    match notify::PollWatcher::new(handler(tx), config) {
        Ok(w) => Box::new(w),
        Err(e) => {
            error!(target: "distpoint::live",
                "cannot watch the config file ({e}): only SIGHUP reloads it");
            Box::new(notify::NullWatcher)
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
/// False if some folder could not be watched.
fn update_watches(watcher: &mut dyn Watcher, have: &mut BTreeSet<PathBuf>, want: &Watched) -> bool {
    let mut all = true;
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
            Err(e) => {
                warn!(target: "distpoint::live", "cannot watch {} ({e})", dir.display());
                all = false;
            }
        }
    }
    all
}

async fn run(
    state: Arc<Runtime>,
    mut w: Watching,
    mut rx: UnboundedReceiver<Vec<PathBuf>>,
    mut hangup: Signal,
    shutdown: CancellationToken,
) {
    let mut files = Watched::of(&state);
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
        w.sync(&files);
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
