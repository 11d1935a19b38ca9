//! The destination of a fetch, checked before any download: its folder
//! exists and is writable, and there is room for what is still missing.
//! (Writing, syncing and the atomic rename are the engine's
//! [`crate::transfer::FileSink`].)

use crate::transfer::sink::parent;
use crate::transfer::SinkError;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why the destination cannot be used; always names the path.
#[derive(Debug)]
pub struct OutputError {
    /// The file or folder at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
    /// The system's reason, when there is one.
    pub source: Option<std::io::Error>,
}

impl OutputError {
    fn new(path: &Path, problem: impl Into<String>, source: Option<std::io::Error>) -> Self {
        OutputError {
            path: path.to_path_buf(),
            problem: problem.into(),
            source,
        }
    }
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)?;
        match &self.source {
            Some(e) => write!(f, ": {e}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for OutputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<SinkError> for OutputError {
    fn from(e: SinkError) -> Self {
        OutputError::new(&e.path, format!("cannot {}", e.action), Some(e.source))
    }
}

/// Check that `path` can be created: its folder exists and is writable, and
/// `path` itself is not a folder. Cheap; done before any network traffic.
pub fn check_writable(path: &Path) -> Result<(), OutputError> {
    let dir = parent(path);
    let meta =
        std::fs::metadata(dir).map_err(|e| OutputError::new(dir, "cannot use folder", Some(e)))?;
    if !meta.is_dir() {
        return Err(OutputError::new(dir, "not a folder", None));
    }
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(|e| OutputError::new(dir, "folder not writable", Some(e.into())))?;
    if path.is_dir() {
        return Err(OutputError::new(path, "is a folder", None));
    }
    Ok(())
}

/// Check that `more` bytes fit in the file system that holds `path`.
pub fn check_space(path: &Path, more: u64) -> Result<(), OutputError> {
    let dir = parent(path);
    let st = rustix::fs::statvfs(dir)
        .map_err(|e| OutputError::new(dir, "cannot read free space", Some(e.into())))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < more {
        return Err(OutputError::new(
            dir,
            format!("not enough free space: {more} bytes needed, {free} available"),
            None,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_checks_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        check_writable(&p).unwrap();
        check_space(&p, 1).unwrap();
        let e = check_space(&p, u64::MAX).unwrap_err();
        assert!(e.to_string().contains("not enough free space"), "{e}");
        let e = check_writable(&dir.path().join("nope/out.bin")).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
        let e = check_writable(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
    }
}
