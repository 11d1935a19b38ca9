//! Hashing in the background (`[server] prehash`, on by default).
//!
//! In `integrity = "auto"` mode a file is served only once its manifest is
//! known, and a manifest costs one pass over the file. Computed on the
//! first request, that pass is the request's wait (seconds for a large
//! package). Here it is done ahead: every file of every auto path at start
//! (a manifest persisted under `state_dir` is only read back), and each
//! file again when it is written, renamed into place or copied in (inotify,
//! recursive), one file at a time.
//!
//! The work goes through the same door as a request: the file is opened
//! with [`open_beneath`] (every resolution rule, so nothing a request could
//! not reach is read) and its manifest taken from the same
//! [`AutoStore`](crate::integrity::store::AutoStore) cell, so a request for
//! a file being hashed waits for this job instead of starting another, and
//! nothing unverified is ever sent: this only moves when hashing happens.

use crate::resolve::open_beneath;
use crate::state::ServerState;
use crate::vpath::{Integrity, Vpath};
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often the config snapshot is compared with the one acted on.
const CONFIG_CHECK: Duration = Duration::from_secs(1);

/// Deepest folder nesting walked (a bound against pathological trees).
const MAX_DEPTH: usize = 64;

/// Start the background hasher for `state`'s auto paths.
pub fn spawn(state: Arc<ServerState>, shutdown: CancellationToken) {
    let (tx, rx) = unbounded_channel();
    tokio::spawn(run(state, tx, rx, shutdown));
}

/// One file to hash: which path it belongs to and where beneath it.
struct Job {
    vpath: Arc<Vpath>,
    rest: Vec<String>,
}

/// Files waiting, first in first out, each at most once.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    queued: HashSet<(String, Vec<String>)>,
}

impl Queue {
    fn push(&mut self, job: Job) {
        if self
            .queued
            .insert((job.vpath.url.clone(), job.rest.clone()))
        {
            self.jobs.push_back(job);
        }
    }

    fn pop(&mut self) -> Option<Job> {
        let job = self.jobs.pop_front()?;
        self.queued
            .remove(&(job.vpath.url.clone(), job.rest.clone()));
        Some(job)
    }
}

/// The auto paths of the config now acted on, and the folders watched.
struct Scope {
    paths: Vec<Arc<Vpath>>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
}

async fn run(
    state: Arc<ServerState>,
    tx: UnboundedSender<Vec<PathBuf>>,
    mut events: UnboundedReceiver<Vec<PathBuf>>,
    shutdown: CancellationToken,
) {
    let mut scope = Scope {
        paths: Vec::new(),
        watcher: None,
        watched: BTreeSet::new(),
    };
    let mut queue = Queue::default();
    let mut seen: Option<Arc<crate::config::Config>> = None;
    let mut check = tokio::time::interval(CONFIG_CHECK);
    let mut sweep: Option<Sweep> = None;
    loop {
        // What changed since the last file: config first, then content.
        let config = state.config.load_full();
        if !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &config)) {
            // Adding recursive watches walks the trees (slow for big ones):
            // off the async worker's other tasks.
            let added = tokio::task::block_in_place(|| scope.follow(&config, &tx));
            seen = Some(config);
            if !added.is_empty() {
                sweep = Some(Sweep::start(&state, &added, &mut queue).await);
            }
        }
        while let Ok(paths) = events.try_recv() {
            for p in paths {
                arrived(&scope, &p, &mut queue).await;
            }
        }
        if let Some(job) = queue.pop() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hash(&state, job) => {}
            }
            if queue.jobs.is_empty() {
                if let Some(s) = sweep.take() {
                    s.done(&state);
                }
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(paths) = events.recv() => {
                for p in paths {
                    arrived(&scope, &p, &mut queue).await;
                }
            }
            _ = check.tick() => {}
        }
    }
}

/// A walk of newly configured paths, for its closing log line.
struct Sweep {
    started: Instant,
    hashed: u64,
    reused: u64,
}

impl Sweep {
    async fn start(state: &ServerState, added: &[Arc<Vpath>], queue: &mut Queue) -> Sweep {
        let store = &state.integrity.store;
        let sweep = Sweep {
            started: Instant::now(),
            hashed: store.hashed(),
            reused: store.reused(),
        };
        let mut files = 0;
        for vp in added {
            for rest in walk_blocking(vp.dir.clone()).await {
                files += 1;
                queue.push(Job {
                    vpath: vp.clone(),
                    rest,
                });
            }
        }
        info!(target: "distpoint::prehash", files, paths = added.len(),
            "prehash: hashing in the background");
        sweep
    }

    fn done(self, state: &ServerState) {
        let store = &state.integrity.store;
        info!(target: "distpoint::prehash",
            hashed = store.hashed() - self.hashed,
            reused = store.reused() - self.reused,
            ms = self.started.elapsed().as_millis() as u64,
            "prehash: every file known");
    }
}

impl Scope {
    /// Take the auto paths of `config`; watch their folders. Returns the
    /// paths not acted on before (to be walked).
    fn follow(
        &mut self,
        config: &crate::config::Config,
        tx: &UnboundedSender<Vec<PathBuf>>,
    ) -> Vec<Arc<Vpath>> {
        let now: Vec<Arc<Vpath>> = if config.server.prehash {
            config
                .vpaths
                .iter()
                .filter(|v| v.integrity == Integrity::Auto)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let known = |v: &Arc<Vpath>, among: &[Arc<Vpath>]| {
            among
                .iter()
                .any(|o| o.dir == v.dir && o.chunk_size == v.chunk_size && o.url == v.url)
        };
        let added = now
            .iter()
            .filter(|v| !known(v, &self.paths))
            .cloned()
            .collect();
        self.paths = now;
        let want: BTreeSet<PathBuf> = self.paths.iter().map(|v| v.dir.clone()).collect();
        if self.watcher.is_none() && !want.is_empty() {
            self.watcher = watcher(tx.clone());
        }
        if let Some(w) = self.watcher.as_mut() {
            for dir in self.watched.difference(&want) {
                let _ = w.unwatch(dir);
            }
            self.watched.retain(|d| want.contains(d));
            for dir in want.difference(&self.watched.clone()) {
                match w.watch(dir, RecursiveMode::Recursive) {
                    Ok(()) => {
                        self.watched.insert(dir.clone());
                    }
                    Err(e) => warn!(target: "distpoint::prehash",
                        "cannot watch {} for new content ({e}): its new files are hashed on \
                         their first request", dir.display()),
                }
            }
        }
        added
    }
}

fn watcher(tx: UnboundedSender<Vec<PathBuf>>) -> Option<notify::RecommendedWatcher> {
    let handler = move |res: notify::Result<Event>| {
        if let Ok(ev) = res {
            if let Some(p) = finished(&ev) {
                let _ = tx.send(vec![p]);
            }
        }
    };
    notify::recommended_watcher(handler)
        .map_err(|e| warn!(target: "distpoint::prehash", "cannot watch content folders: {e}"))
        .ok()
}

/// The path an event leaves complete: a file closed after writing, a name
/// renamed into place, a folder made (or moved in). A file being written
/// (its data events) is left until it is closed.
fn finished(ev: &Event) -> Option<PathBuf> {
    match ev.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Create(CreateKind::Folder)
        | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
            ev.paths.last().cloned()
        }
        _ => None,
    }
}

/// Queue what changed at `p`: the file, or every file of a folder.
async fn arrived(scope: &Scope, p: &Path, queue: &mut Queue) {
    let mut is_dir = None;
    for vp in &scope.paths {
        let Some(rest) = beneath(&vp.dir, p) else {
            continue;
        };
        // Asked once, and only for a path some auto path holds.
        let dir =
            *is_dir.get_or_insert_with(|| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()));
        if dir {
            for more in walk_blocking(p.to_path_buf()).await {
                let mut full = rest.clone();
                full.extend(more);
                queue.push(Job {
                    vpath: vp.clone(),
                    rest: full,
                });
            }
        } else if !rest.is_empty() {
            queue.push(Job {
                vpath: vp.clone(),
                rest,
            });
        }
    }
}

/// The segments of `p` below `dir`; `None` outside it, for names that are
/// not UTF-8, and for dotfiles (never served, so never hashed).
fn beneath(dir: &Path, p: &Path) -> Option<Vec<String>> {
    let rel = p.strip_prefix(dir).ok()?;
    rel.components()
        .map(|c| match c {
            std::path::Component::Normal(s) => s.to_str().filter(|s| !s.starts_with('.')),
            _ => None,
        })
        .map(|s| s.map(str::to_string))
        .collect()
}

async fn walk_blocking(dir: PathBuf) -> Vec<Vec<String>> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        walk(&dir, &mut Vec::new(), &mut out);
        out
    })
    .await
    .unwrap_or_default()
}

/// Regular files beneath `dir` (segments), without following symlinks or
/// entering dot-folders.
fn walk(dir: &Path, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if prefix.len() >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let Ok(kind) = e.file_type() else { continue };
        prefix.push(name);
        if kind.is_dir() {
            walk(&e.path(), prefix, out);
        } else if kind.is_file() {
            out.push(prefix.clone());
        }
        prefix.pop();
    }
}

/// Hash one file as a request for it would (same rules, same store).
async fn hash(state: &ServerState, job: Job) {
    let (dir, rest) = (job.vpath.dir.clone(), job.rest.clone());
    let opened = tokio::task::spawn_blocking(move || open_beneath(&dir, &rest)).await;
    let label = format!(
        "{}/{}",
        job.vpath.url.trim_end_matches('/'),
        job.rest.join("/")
    );
    let resolved = match opened {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            debug!(target: "distpoint::prehash", file = %label, "not hashed: {e}");
            return;
        }
        Err(_) => return,
    };
    if let Err(e) = state
        .integrity
        .store
        .get(
            &resolved.file,
            resolved.identity,
            job.vpath.chunk_size,
            &label,
        )
        .await
    {
        debug!(target: "distpoint::prehash", file = %label, "not hashed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_names_beneath_the_folder_are_taken() {
        let d = Path::new("/srv/pkg");
        assert_eq!(
            beneath(d, Path::new("/srv/pkg/a/b.bin")),
            Some(vec!["a".to_string(), "b.bin".to_string()])
        );
        assert_eq!(beneath(d, Path::new("/srv/pkg")), Some(vec![]));
        assert_eq!(beneath(d, Path::new("/srv/other/x")), None);
        assert_eq!(beneath(d, Path::new("/srv/pkg/.git/x")), None);
        assert_eq!(beneath(d, Path::new("/srv/pkg/a/.hidden")), None);
    }

    #[test]
    fn the_walk_skips_dotfiles_symlinks_and_special_files() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        std::fs::write(root.join("a.bin"), b"a").unwrap();
        std::fs::write(root.join("sub/deeper/b.bin"), b"b").unwrap();
        std::fs::write(root.join(".dot"), b"x").unwrap();
        std::fs::write(root.join(".hidden/c.bin"), b"c").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("sub"), root.join("linkdir")).unwrap();
        let mut out = Vec::new();
        walk(root, &mut Vec::new(), &mut out);
        out.sort();
        assert_eq!(
            out,
            vec![
                vec!["a.bin".to_string()],
                vec!["sub".to_string(), "deeper".to_string(), "b.bin".to_string()]
            ]
        );
    }
}
