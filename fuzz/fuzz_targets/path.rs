//! Path decoding and resolution: `decode_segments` on any request path, then
//! `open_beneath` on a fixture folder full of traps.
//!
//! The fixture (made once per process under the temp folder) has files
//! inside the served folder that start with `INSIDE`, and files outside it,
//! reachable by symlinks and `..`, that start with `OUTSIDE`. Checked: every
//! decoded segment is free of path syntax, and whatever opens is a regular
//! file beneath the served folder (by its content and by the kernel's own
//! name for the descriptor).
#![no_main]

use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use distpoint::resolve::{decode_segments, open_beneath};
use libfuzzer_sys::fuzz_target;

fn fixture() -> &'static (PathBuf, PathBuf) {
    static DIR: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("distpoint-fuzz-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let served = root.join("served");
        let w = |p: &Path, text: &str| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w(&served.join("a.txt"), "INSIDE a");
        w(&served.join("sub/b.txt"), "INSIDE b");
        w(&served.join("sub/deeper/c d+%.bin"), "INSIDE c");
        w(&served.join("ünï/côde.txt"), "INSIDE u");
        w(&root.join("secret.txt"), "OUTSIDE secret");
        w(&root.join("outside/x.txt"), "OUTSIDE x");
        symlink("a.txt", served.join("link-in")).unwrap();
        symlink("../a.txt", served.join("sub/up-in")).unwrap();
        symlink("../secret.txt", served.join("link-out")).unwrap();
        symlink("../outside", served.join("dir-out")).unwrap();
        symlink("../../secret.txt", served.join("sub/up-out")).unwrap();
        symlink(root.join("secret.txt"), served.join("abs")).unwrap();
        symlink("/proc/self/root/etc/passwd", served.join("magic")).unwrap();
        symlink("/proc/self/cwd", served.join("cwd")).unwrap();
        let served = served.canonicalize().unwrap();
        (root, served)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(segments) = decode_segments(raw) else {
        return;
    };
    assert!(!segments.is_empty());
    for s in &segments {
        assert!(!s.is_empty(), "empty segment from {raw:?}");
        assert!(s != "." && s != "..", "dot segment from {raw:?}");
        assert!(!s.starts_with('.'), "dotfile {s:?} from {raw:?}");
        assert!(
            !s.chars()
                .any(|c| c == '/' || c == '\\' || c == ':' || c.is_control()),
            "path syntax in {s:?} from {raw:?}"
        );
    }
    let (_, served) = fixture();
    let Ok(mut resolved) = open_beneath(served, &segments) else {
        return;
    };
    assert!(resolved.file.metadata().unwrap().is_file());
    let fd = std::os::fd::AsRawFd::as_raw_fd(&resolved.file);
    let real = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    assert!(
        real.starts_with(served),
        "{raw:?} opened {}",
        real.display()
    );
    let mut text = String::new();
    resolved.file.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("INSIDE"), "{raw:?} read {text:?}");
});
