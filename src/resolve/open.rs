//! File-system half of the resolver: open a regular file beneath a folder.
//!
//! # How a file is opened
//!
//! 1. The configured folder is opened with `O_PATH | O_DIRECTORY`, following
//!    symlinks: it is the operator's configuration, so a symlinked folder is
//!    allowed and is resolved exactly once here.
//! 2. **Lookup.** With `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` the
//!    kernel resolves the whole relative path and refuses (`EXDEV`/`ELOOP`)
//!    anything that would leave the folder: absolute symlinks, `..` above the
//!    folder inside a symlink's target, `/proc` magic links. Symlinks that stay
//!    inside are followed. Where `openat2` is missing (`ENOSYS`, Linux < 5.6)
//!    or blocked by a seccomp filter (`EPERM`), the fallback walks one
//!    component at a time with `openat(O_NOFOLLOW)`, so it refuses *every*
//!    symlink, inside or not. The walk never meets `..` (segments are checked)
//!    and holds a descriptor per folder, so a concurrent rename cannot move it
//!    out of a subtree it is already in. Which lookup works is probed once and
//!    cached in a static `AtomicU8`.
//! 3. **Not blocking on FIFOs, not opening devices.** The lookup opens the
//!    leaf with `O_PATH`, which never calls a driver's `open` and never waits
//!    for a FIFO writer; `fstat` on that descriptor must say "regular file".
//!    Only then is the very same inode reopened for reading through its
//!    `/proc/self/fd/N` magic link (this is the kernel's own reopen: no path
//!    is looked up again, so nothing can be swapped in between). Where `/proc`
//!    is not mounted, the leaf is instead opened directly with
//!    `O_RDONLY | O_NONBLOCK | O_NOCTTY`: a FIFO then opens at once instead of
//!    hanging, a socket fails with `ENXIO`, and the `fstat` after the open
//!    refuses both; the residual cost is that a device node (which only root
//!    can create) would see its driver's `open` and `close`.
//! 4. `O_NONBLOCK` is also set on the reading open so that a file leased by
//!    another process fails at once instead of waiting out the lease-break
//!    time; it is cleared again before the file is handed out, so the caller
//!    gets an ordinary blocking file.
//! 5. Type and [`FileIdentity`] come from `fstat` on the descriptor that will
//!    be read, after the open.

use std::fs::{File, Metadata};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fs::{openat, openat2, AtFlags, FileType, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use super::identity::{FileIdentity, ResolvedFile};
use super::segments::check_segment;
use super::ResolveError;

/// How the path beneath the folder is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// One `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`; symlinks that
    /// stay inside the folder are followed.
    Openat2,
    /// `openat(O_NOFOLLOW)` per component; every symlink is refused.
    Walk,
}

/// How the leaf is opened for reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reopen {
    /// `O_PATH` lookup, type check, then reopen of that inode via `/proc`.
    ProcFd,
    /// Direct `O_RDONLY | O_NONBLOCK` lookup, type check after the open.
    Direct,
}

const UNKNOWN: u8 = 0;
const WORKS: u8 = 1;
const MISSING: u8 = 2;

/// Whether `openat2` works in this process (kernel and seccomp filter do not
/// change under a running process, so one probe is enough).
static OPENAT2: AtomicU8 = AtomicU8::new(UNKNOWN);
/// Whether `/proc/self/fd/N` reopens work in this process.
static PROC_FD: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Flags of the reading open. `O_NOCTTY` so that a terminal can never become
/// our controlling terminal; `O_NONBLOCK` as explained in the module docs.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);

/// Flags of the lookup-only open of the leaf in [`Reopen::ProcFd`] mode.
const PATH_FLAGS: OFlags = OFlags::PATH.union(OFlags::CLOEXEC);

/// Bound on retries of `EINTR`/`EAGAIN` (openat2 returns `EAGAIN` when a
/// concurrent rename or mount made its `..` check inconclusive).
const RETRIES: usize = 4;

/// Open `segments` (from [`decode_segments`](super::decode_segments)) beneath
/// `dir` as a regular file, read-only.
///
/// Blocking: call it off the async threads. Each segment is checked again
/// with the rules of `decode_segments`, so unchecked input cannot escape
/// either. Symlinks that stay inside `dir` are followed when the kernel has
/// `openat2` (Linux 5.6+); on older kernels, or where a seccomp filter blocks
/// `openat2`, every symlink beneath `dir` is refused ([`ResolveError::Escape`]).
/// Absolute symlinks are always refused, even when they point inside `dir`.
/// `dir` itself may be a symlink. Only regular files are returned; the
/// identity is taken from the returned file's descriptor.
pub fn open_beneath(dir: &Path, segments: &[String]) -> Result<ResolvedFile, ResolveError> {
    check_segments(segments)?;
    let dirfd = open_dir(dir)?;
    let lookup = choose_lookup(dirfd.as_fd());
    let reopen = choose_reopen(dirfd.as_fd());
    open_at(dirfd.as_fd(), segments, lookup, reopen)
}

/// [`open_beneath`] with an explicit strategy, so that tests can exercise
/// every combination (including the fallback walk) on any kernel.
#[cfg(test)]
pub(crate) fn open_beneath_with(
    dir: &Path,
    segments: &[String],
    lookup: Lookup,
    reopen: Reopen,
) -> Result<ResolvedFile, ResolveError> {
    check_segments(segments)?;
    let dirfd = open_dir(dir)?;
    open_at(dirfd.as_fd(), segments, lookup, reopen)
}

pub(super) fn check_segments(segments: &[String]) -> Result<(), ResolveError> {
    if segments.is_empty() {
        return Err(ResolveError::ForbiddenSegment("empty path"));
    }
    segments.iter().try_for_each(|s| check_segment(s))
}

fn open_dir(dir: &Path) -> Result<OwnedFd, ResolveError> {
    retry(|| {
        rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    })
    .map_err(map_errno)
}

/// Probe `openat2` once per process on an innocuous path.
fn choose_lookup(dirfd: BorrowedFd<'_>) -> Lookup {
    match OPENAT2.load(Ordering::Relaxed) {
        WORKS => return Lookup::Openat2,
        MISSING => return Lookup::Walk,
        _ => {}
    }
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match retry(|| openat2(dirfd, ".", flags, Mode::empty(), beneath())) {
        Ok(_) => {
            OPENAT2.store(WORKS, Ordering::Relaxed);
            Lookup::Openat2
        }
        // ENOSYS: kernel before 5.6. EPERM: seccomp filters that predate
        // openat2 (older Docker/containerd profiles) answer so.
        Err(Errno::NOSYS | Errno::PERM) => {
            OPENAT2.store(MISSING, Ordering::Relaxed);
            Lookup::Walk
        }
        // Anything else is unexpected: use the stricter walk this time and
        // probe again next time.
        Err(_) => Lookup::Walk,
    }
}

/// Probe `/proc/self/fd` once per process: reopening the folder through its
/// magic link must give the same inode (this also rejects a fake `/proc`).
fn choose_reopen(dirfd: BorrowedFd<'_>) -> Reopen {
    match PROC_FD.load(Ordering::Relaxed) {
        WORKS => return Reopen::ProcFd,
        MISSING => return Reopen::Direct,
        _ => {}
    }
    let works = retry(|| openat(CWD, proc_fd_path(dirfd), PATH_FLAGS, Mode::empty()))
        .ok()
        .and_then(|fd| same_inode(dirfd, fd.as_fd()))
        .unwrap_or(false);
    PROC_FD.store(if works { WORKS } else { MISSING }, Ordering::Relaxed);
    if works {
        Reopen::ProcFd
    } else {
        Reopen::Direct
    }
}

fn same_inode(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Option<bool> {
    let (a, b) = (rustix::fs::fstat(a).ok()?, rustix::fs::fstat(b).ok()?);
    Some((a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
}

fn proc_fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

fn open_at(
    dirfd: BorrowedFd<'_>,
    segments: &[String],
    lookup: Lookup,
    reopen: Reopen,
) -> Result<ResolvedFile, ResolveError> {
    match reopen {
        Reopen::ProcFd => {
            // A `File` around the O_PATH descriptor only to fstat it; it is
            // closed when this arm ends.
            let path_file = File::from(lookup_leaf(dirfd, segments, lookup, PATH_FLAGS)?);
            let before = path_file.metadata().map_err(ResolveError::Io)?;
            check_regular(&before)?;
            // The magic link names this exact inode; O_NOFOLLOW must not be
            // used here, it would refuse the magic link itself.
            let magic = proc_fd_path(path_file.as_fd());
            let fd = retry(|| openat(CWD, magic.as_str(), READ_FLAGS, Mode::empty()))
                .map_err(map_errno)?;
            finish(fd, Some((before.dev(), before.ino())))
        }
        Reopen::Direct => finish(lookup_leaf(dirfd, segments, lookup, READ_FLAGS)?, None),
    }
}

/// Type check and identity on the descriptor that will be read; then back to
/// blocking mode.
fn finish(fd: OwnedFd, expect: Option<(u64, u64)>) -> Result<ResolvedFile, ResolveError> {
    let flags = rustix::fs::fcntl_getfl(&fd).map_err(io)?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(ResolveError::Io)?;
    check_regular(&meta)?;
    if expect.is_some_and(|inode| inode != (meta.dev(), meta.ino())) {
        // Cannot happen with a real procfs (the probe checked it is one); if
        // it does, the reopen did not reach the inode we checked.
        return Err(ResolveError::Io(std::io::Error::other(
            "reopen through /proc reached a different file",
        )));
    }
    rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK).map_err(io)?;
    let identity = FileIdentity::from_metadata(&meta);
    Ok(ResolvedFile {
        file: std::sync::Arc::new(file),
        identity,
    })
}

fn check_regular(meta: &Metadata) -> Result<(), ResolveError> {
    let ft = meta.file_type();
    if ft.is_file() {
        Ok(())
    } else if ft.is_symlink() {
        // Only the walk's O_PATH|O_NOFOLLOW leaf open can hand back a symlink.
        Err(ResolveError::Escape)
    } else {
        Err(ResolveError::NotRegular)
    }
}

/// Open the leaf with `leaf_flags` using the chosen lookup.
fn lookup_leaf(
    dirfd: BorrowedFd<'_>,
    segments: &[String],
    lookup: Lookup,
    leaf_flags: OFlags,
) -> Result<OwnedFd, ResolveError> {
    match lookup {
        Lookup::Openat2 => {
            let rel = segments.join("/");
            // Most paths hold no symlink: one lookup that refuses them all.
            let plain = beneath() | ResolveFlags::NO_SYMLINKS;
            match retry(|| openat2(dirfd, rel.as_str(), leaf_flags, Mode::empty(), plain)) {
                Err(Errno::LOOP) => {}
                other => return other.map_err(map_errno),
            }
            // A symlink on the way: follow it beneath the folder, then apply
            // the segment rules to where it led (a symlink to `.secret` or
            // to `CON` must not serve what its name would not).
            let fd = retry(|| openat2(dirfd, rel.as_str(), leaf_flags, Mode::empty(), beneath()))
                .map_err(map_errno)?;
            check_target(dirfd, fd.as_fd())?;
            Ok(fd)
        }
        Lookup::Walk => walk(dirfd, segments, leaf_flags),
    }
}

/// The path `fd` was reached by, below `dirfd`, obeys the segment rules.
/// Without a usable `/proc` the target cannot be read: refuse.
fn check_target(dirfd: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), ResolveError> {
    if PROC_FD.load(Ordering::Relaxed) != WORKS {
        return Err(ResolveError::Escape);
    }
    let real = |fd: BorrowedFd<'_>| {
        rustix::fs::readlinkat(CWD, proc_fd_path(fd), Vec::new())
            .map(|p| std::path::PathBuf::from(std::ffi::OsString::from_vec(p.into_bytes())))
            .map_err(io)
    };
    let (base, target) = (real(dirfd)?, real(fd)?);
    let rel = target
        .strip_prefix(&base)
        .map_err(|_| ResolveError::Escape)?;
    for c in rel.components() {
        match c {
            std::path::Component::Normal(s) => {
                check_segment(s.to_str().ok_or(ResolveError::BadEncoding)?)?
            }
            _ => return Err(ResolveError::Escape),
        }
    }
    Ok(())
}

/// The fallback: one `openat` per component, never following a symlink.
fn walk(
    dirfd: BorrowedFd<'_>,
    segments: &[String],
    leaf_flags: OFlags,
) -> Result<OwnedFd, ResolveError> {
    let (leaf, folders) = segments
        .split_last()
        .ok_or(ResolveError::ForbiddenSegment("empty path"))?;
    let folder_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut current: Option<OwnedFd> = None;
    for name in folders {
        let at = current.as_ref().map_or(dirfd, |fd| fd.as_fd());
        let next = match retry(|| openat(at, name.as_str(), folder_flags, Mode::empty())) {
            Ok(fd) => fd,
            // O_DIRECTORY|O_NOFOLLOW gives ENOTDIR for a symlink and for a
            // file alike; tell them apart for the log.
            Err(Errno::NOTDIR) => return Err(classify_not_dir(at, name)),
            Err(e) => return Err(map_errno(e)),
        };
        current = Some(next);
    }
    let at = current.as_ref().map_or(dirfd, |fd| fd.as_fd());
    // With O_PATH this returns the symlink itself (refused by the type check);
    // without O_PATH it fails with ELOOP (mapped to Escape).
    retry(|| {
        openat(
            at,
            leaf.as_str(),
            leaf_flags | OFlags::NOFOLLOW,
            Mode::empty(),
        )
    })
    .map_err(map_errno)
}

fn classify_not_dir(at: BorrowedFd<'_>, name: &str) -> ResolveError {
    match rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => ResolveError::Escape,
        _ => ResolveError::NotFound,
    }
}

fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(Errno::INTR | Errno::AGAIN) if tries < RETRIES => tries += 1,
            other => return other,
        }
    }
}

fn map_errno(e: Errno) -> ResolveError {
    match e {
        Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG => ResolveError::NotFound,
        // EXDEV: RESOLVE_BENEATH refused a step out of the folder. ELOOP: a
        // magic link, a symlink loop, or a symlink met with O_NOFOLLOW.
        Errno::XDEV | Errno::LOOP => ResolveError::Escape,
        // Sockets and driverless device nodes cannot be opened at all.
        Errno::NXIO | Errno::NODEV => ResolveError::NotRegular,
        e => io(e),
    }
}

fn io(e: Errno) -> ResolveError {
    ResolveError::Io(e.into())
}

#[cfg(test)]
mod tests;
