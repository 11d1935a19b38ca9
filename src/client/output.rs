//! The destination of a fetch: checked before any download (folder writable,
//! enough free space), written chunk by chunk at offsets, then made durable
//! and put in place by an atomic rename.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Why the destination cannot be used; always names the path.
#[derive(Debug)]
pub struct OutputError(pub String);

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OutputError {}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Check that `path` can be created: its folder exists and is writable, and
/// `path` itself is not a folder. Cheap; done before any network traffic.
pub fn check_writable(path: &Path) -> Result<(), OutputError> {
    let dir = parent(path);
    let meta = std::fs::metadata(dir)
        .map_err(|e| OutputError(format!("{}: cannot use folder: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(OutputError(format!("{}: not a folder", dir.display())));
    }
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(|e| OutputError(format!("{}: folder not writable: {e}", dir.display())))?;
    if path.is_dir() {
        return Err(OutputError(format!("{}: is a folder", path.display())));
    }
    Ok(())
}

/// Check that `more` bytes fit in the file system that holds `path`.
pub fn check_space(path: &Path, more: u64) -> Result<(), OutputError> {
    let dir = parent(path);
    let st = rustix::fs::statvfs(dir)
        .map_err(|e| OutputError(format!("{}: cannot read free space: {e}", dir.display())))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < more {
        return Err(OutputError(format!(
            "{}: not enough free space: {more} bytes needed, {free} available",
            dir.display()
        )));
    }
    Ok(())
}

/// Open (or create) the work file and give it its final length. Existing
/// content is kept: it holds chunks a previous run verified.
pub fn open_part(part: &Path, size: u64, fresh: bool) -> Result<File, OutputError> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(fresh)
        .read(true)
        .write(true)
        .open(part)
        .map_err(|e| OutputError(format!("{}: cannot create: {e}", part.display())))?;
    f.set_len(size)
        .map_err(|e| OutputError(format!("{}: cannot size: {e}", part.display())))?;
    Ok(f)
}

/// Write verified bytes at `offset`.
pub fn write_at(file: &File, offset: u64, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    file.write_all_at(data, offset)
}

/// Read `len` bytes at `offset` (re-checking a resumed chunk).
pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt as _;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// Make the work file durable and move it to `path` atomically; then make
/// the rename itself durable by syncing the folder.
pub fn finish(file: File, part: &Path, path: &Path) -> Result<(), OutputError> {
    file.sync_all()
        .map_err(|e| OutputError(format!("{}: cannot sync: {e}", part.display())))?;
    drop(file);
    std::fs::rename(part, path).map_err(|e| {
        OutputError(format!(
            "cannot rename {} to {}: {e}",
            part.display(),
            path.display()
        ))
    })?;
    // A folder fsync is what makes the new name survive a crash; failing it
    // is not worth failing a complete, verified download over.
    if let Ok(d) = File::open(parent(path)) {
        let _ = d.sync_all();
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
        assert!(e.0.contains("not enough free space"), "{e}");
        let e = check_writable(&dir.path().join("nope/out.bin")).unwrap_err();
        assert!(e.0.contains("nope"), "{e}");
        let e = check_writable(dir.path()).unwrap_err();
        assert!(e.0.contains("is a folder"), "{e}");

        let part = dir.path().join("out.bin.part");
        let f = open_part(&part, 10, true).unwrap();
        write_at(&f, 4, b"abc").unwrap();
        assert_eq!(read_at(&f, 3, 5).unwrap(), b"\0abc\0");
        finish(f, &part, &p).unwrap();
        assert!(!part.exists());
        assert_eq!(std::fs::read(&p).unwrap().len(), 10);
    }
}
