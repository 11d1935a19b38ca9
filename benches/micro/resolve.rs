//! Path decoding and resolution (`distpoint::resolve`): the checks on every
//! request path, and the open beneath the served folder (openat2 or the walk,
//! O_PATH, fstat, reopen, fstat).

use distpoint::resolve::{decode_segments, open_beneath};
use divan::black_box;
use std::path::PathBuf;

#[divan::bench(args = [
    "pub/hello.txt",
    "SMS_DP_SMSPKG%24/PKG00001/sub%20folder/deeper/setup%2Dx64.msi",
    "pub/%2e%2e/etc/passwd",
])]
fn decode(path: &str) -> bool {
    decode_segments(black_box(path)).is_ok()
}

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::write(root.join("file.bin"), vec![1u8; 4096]).unwrap();
    let deep = root.join("a/b/c");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("file.bin"), vec![1u8; 4096]).unwrap();
    Tree { _dir: dir, root }
}

/// One file opened and checked, as the pipeline does per request (blocking syscalls).
#[divan::bench(args = [1, 4])]
fn open(bencher: divan::Bencher, depth: usize) {
    let t = tree();
    let segments: Vec<String> = match depth {
        1 => vec!["file.bin".into()],
        _ => ["a", "b", "c", "file.bin"].map(String::from).to_vec(),
    };
    bencher.bench(|| open_beneath(black_box(&t.root), black_box(&segments)).unwrap());
}
