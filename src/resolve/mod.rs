//! Turning the rest of a request URL into an open regular file beneath a
//! configured folder.
//!
//! This is the only place where client-controlled text meets the file system,
//! so it is built as two independent walls:
//!
//! 1. [`decode_segments`] works on text only. It splits the still-encoded path
//!    on `/`, percent-decodes each segment exactly once and refuses anything
//!    that is path syntax on *some* file system distpoint might sit on (Linux,
//!    but also NTFS/SMB mounts of Windows shares): dot segments, encoded
//!    separators, backslashes, NUL and control characters, `:` (drive letters
//!    and NTFS alternate data streams), DOS device names, trailing dots and
//!    spaces, 8.3 short-name aliases and dotfiles.
//! 2. [`open_beneath`] asks the kernel to keep the lookup beneath the folder
//!    (`openat2` with `RESOLVE_BENEATH`), or, where `openat2` is missing, walks
//!    one component at a time with `O_NOFOLLOW`. It re-checks every segment
//!    with the same rules, so a caller that skips step 1 still cannot escape.
//!
//! [`OpenFiles`] keeps files opened that way and reuses one while its path
//! still names the same inode (one `stat`, no open).
//!
//! The file's type and identity are taken from the opened descriptor itself
//! (never from a path stat before the open), so there is no
//! check-then-open race. Every error becomes `404` for the client; the
//! [`ResolveError`] variant only says why, for the log.

pub mod cache;
mod identity;
mod open;
mod segments;

pub use cache::OpenFiles;
pub use identity::{FileIdentity, ResolvedFile};
pub use open::open_beneath;
pub use segments::decode_segments;

use std::fmt;

/// Why a request path was refused. Every variant ends as `404` for the
/// client; the variant is for the log.
#[derive(Debug)]
pub enum ResolveError {
    /// Invalid percent-encoding, or the decoded bytes are not UTF-8
    /// (overlong forms such as `%c0%ae` are invalid UTF-8 and end here).
    BadEncoding,
    /// A segment that is refused before touching the file system; the text
    /// names the rule ("dot segment", "dotfile", "encoded slash", ...).
    ForbiddenSegment(&'static str),
    /// The file or one of its folders does not exist (`ENOENT`, `ENOTDIR`,
    /// `ENAMETOOLONG`), or a folder on the way is not a folder.
    NotFound,
    /// A symlink (or `..` inside a symlink's target) would leave the folder,
    /// or a symlink was met where none is allowed (fallback walk, magic links).
    Escape,
    /// The path names something that is not a regular file: a folder, FIFO,
    /// device or socket.
    NotRegular,
    /// Any other failure (for example `EACCES`).
    Io(std::io::Error),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadEncoding => f.write_str("invalid percent-encoding or not UTF-8"),
            Self::ForbiddenSegment(why) => write!(f, "forbidden path segment: {why}"),
            Self::NotFound => f.write_str("no such file"),
            Self::Escape => f.write_str("path would leave the served folder"),
            Self::NotRegular => f.write_str("not a regular file"),
            Self::Io(e) => write!(f, "i/o error while opening: {e}"),
        }
    }
}

impl std::error::Error for ResolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_rule() {
        let e = ResolveError::ForbiddenSegment("dotfile");
        assert_eq!(e.to_string(), "forbidden path segment: dotfile");
    }

    #[test]
    fn io_error_is_the_source() {
        use std::error::Error;
        let e = ResolveError::Io(std::io::Error::from_raw_os_error(13));
        assert!(e.source().is_some());
    }
}
