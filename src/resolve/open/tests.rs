//! Tests of `open_beneath`: every refusal first, then what must open, under
//! every lookup and reopen strategy.

use super::*;
use crate::resolve::decode_segments;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::Duration;

/// ```text
/// root/
///   outside.txt           "outside" (must never be served)
///   dir/                  the served folder
///     file.txt            "file"
///     sub/inner.txt       "inner"
///     folder/             a directory
///     a+b.txt, with space.txt, été.txt
///     passwd  -> /etc/passwd
///     out     -> ../outside.txt
///     outdir  -> ..
///     abs_in  -> <absolute path of dir>/file.txt
///     in      -> sub/inner.txt
///     chain1  -> chain2 -> sub/up -> ../file.txt
///     subdir  -> sub
///     loop    -> loop
/// ```
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let dir = root.join("dir");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::create_dir(dir.join("folder")).unwrap();
        std::fs::write(root.join("outside.txt"), "outside").unwrap();
        std::fs::write(dir.join("file.txt"), "file").unwrap();
        std::fs::write(dir.join("sub/inner.txt"), "inner").unwrap();
        for name in ["a+b.txt", "with space.txt", "été.txt"] {
            std::fs::write(dir.join(name), name).unwrap();
        }
        symlink("/etc/passwd", dir.join("passwd")).unwrap();
        symlink("../outside.txt", dir.join("out")).unwrap();
        symlink("..", dir.join("outdir")).unwrap();
        symlink(dir.join("file.txt"), dir.join("abs_in")).unwrap();
        symlink("sub/inner.txt", dir.join("in")).unwrap();
        symlink("../file.txt", dir.join("sub/up")).unwrap();
        symlink("sub/up", dir.join("chain2")).unwrap();
        symlink("chain2", dir.join("chain1")).unwrap();
        symlink("sub", dir.join("subdir")).unwrap();
        symlink("loop", dir.join("loop")).unwrap();
        Fixture {
            _tmp: tmp,
            root,
            dir,
        }
    }

    /// Decode `raw` as a request would, then open it with the strategy.
    fn open_with(
        &self,
        raw: &str,
        lookup: Lookup,
        reopen: Reopen,
    ) -> Result<ResolvedFile, ResolveError> {
        open_beneath_with(&self.dir, &decode_segments(raw)?, lookup, reopen)
    }

    /// Decode and open with the public entry point.
    fn open(&self, raw: &str) -> Result<ResolvedFile, ResolveError> {
        open_beneath(&self.dir, &decode_segments(raw)?)
    }
}

fn content(r: Result<ResolvedFile, ResolveError>) -> String {
    let mut s = String::new();
    (&*r.unwrap().file).read_to_string(&mut s).unwrap();
    s
}

fn openat2_available() -> bool {
    let fx = tempfile::tempdir().unwrap();
    let fd = open_dir(fx.path()).unwrap();
    let ok = choose_lookup(fd.as_fd()) == Lookup::Openat2;
    if !ok {
        eprintln!("openat2 unavailable here: openat2-only test skipped");
    }
    ok
}

fn proc_available() -> bool {
    let fx = tempfile::tempdir().unwrap();
    let fd = open_dir(fx.path()).unwrap();
    let ok = choose_reopen(fd.as_fd()) == Reopen::ProcFd;
    if !ok {
        eprintln!("/proc unavailable here: /proc-only test skipped");
    }
    ok
}

/// Runs `f` on a thread and fails instead of hanging the test run.
fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("open blocked (FIFO?)")
}

// ---- traversal spellings end to end (public entry point) ----

#[test]
fn e2e_dotdot() {
    assert!(matches!(
        Fixture::new().open("../outside.txt"),
        Err(ResolveError::ForbiddenSegment("dot segment"))
    ));
}

#[test]
fn e2e_encoded_dotdot() {
    assert!(matches!(
        Fixture::new().open("%2e%2e/outside.txt"),
        Err(ResolveError::ForbiddenSegment("dot segment"))
    ));
}

#[test]
fn e2e_mixed_case_encoded_dotdot() {
    assert!(matches!(
        Fixture::new().open("%2E%2e/outside.txt"),
        Err(ResolveError::ForbiddenSegment("dot segment"))
    ));
}

#[test]
fn e2e_half_encoded_dotdot() {
    assert!(matches!(
        Fixture::new().open(".%2e/outside.txt"),
        Err(ResolveError::ForbiddenSegment("dot segment"))
    ));
}

#[test]
fn e2e_encoded_slash_dotdot() {
    assert!(matches!(
        Fixture::new().open("sub%2f..%2f..%2foutside.txt"),
        Err(ResolveError::ForbiddenSegment("encoded slash"))
    ));
}

#[test]
fn e2e_backslash_dotdot() {
    assert!(matches!(
        Fixture::new().open("..%5coutside.txt"),
        Err(ResolveError::ForbiddenSegment("backslash"))
    ));
}

#[test]
fn e2e_overlong_dotdot() {
    assert!(matches!(
        Fixture::new().open("%c0%ae%c0%ae/outside.txt"),
        Err(ResolveError::BadEncoding)
    ));
}

#[test]
fn e2e_double_encoded_dotdot_does_not_reach_the_parent() {
    // Decoded once it is the literal name "%2e%2e", which does not exist.
    assert!(matches!(
        Fixture::new().open("%252e%252e/outside.txt"),
        Err(ResolveError::NotFound)
    ));
}

#[test]
fn e2e_double_encoded_dotdot_is_a_literal_name() {
    let fx = Fixture::new();
    std::fs::create_dir(fx.dir.join("%2e%2e")).unwrap();
    std::fs::write(fx.dir.join("%2e%2e/outside.txt"), "literal").unwrap();
    assert_eq!(content(fx.open("%252e%252e/outside.txt")), "literal");
}

#[test]
fn e2e_dotfile() {
    let fx = Fixture::new();
    std::fs::create_dir(fx.dir.join(".distpoint")).unwrap();
    std::fs::write(fx.dir.join(".distpoint/manifest.json"), "{}").unwrap();
    assert!(matches!(
        fx.open(".distpoint/manifest.json"),
        Err(ResolveError::ForbiddenSegment("dotfile"))
    ));
}

// ---- the second wall: segments that did not come from decode_segments ----

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn unchecked_dotdot_segment_is_refused() {
    let fx = Fixture::new();
    assert!(matches!(
        open_beneath(&fx.dir, &strs(&["..", "outside.txt"])),
        Err(ResolveError::ForbiddenSegment("dot segment"))
    ));
}

#[test]
fn unchecked_segment_with_slash_is_refused() {
    let fx = Fixture::new();
    assert!(matches!(
        open_beneath(&fx.dir, &strs(&["sub/../../outside.txt"])),
        Err(ResolveError::ForbiddenSegment("encoded slash"))
    ));
}

#[test]
fn unchecked_absolute_segment_is_refused() {
    let fx = Fixture::new();
    assert!(matches!(
        open_beneath(&fx.dir, &strs(&["/etc/passwd"])),
        Err(ResolveError::ForbiddenSegment(_))
    ));
}

#[test]
fn no_segments_is_refused() {
    let fx = Fixture::new();
    assert!(matches!(
        open_beneath(&fx.dir, &[]),
        Err(ResolveError::ForbiddenSegment("empty path"))
    ));
}

// ---- the public entry point and its cached choice ----

#[test]
fn public_entry_opens_a_file() {
    assert_eq!(content(Fixture::new().open("sub/inner.txt")), "inner");
}

#[test]
fn public_entry_uses_openat2_where_the_kernel_has_it() {
    let fx = Fixture::new();
    let _ = fx.open("file.txt");
    if openat2_available() {
        assert_eq!(OPENAT2.load(Ordering::Relaxed), WORKS);
    }
}

#[test]
fn served_folder_may_itself_be_a_symlink() {
    let fx = Fixture::new();
    symlink(&fx.dir, fx.root.join("dirlink")).unwrap();
    let r = open_beneath(&fx.root.join("dirlink"), &strs(&["file.txt"]));
    assert_eq!(content(r), "file");
}

#[test]
fn missing_served_folder_is_not_found() {
    let fx = Fixture::new();
    let r = open_beneath(&fx.root.join("nope"), &strs(&["file.txt"]));
    assert!(matches!(r, Err(ResolveError::NotFound)));
}

#[test]
fn unreadable_file_is_io_error() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let path = fx.dir.join("file.txt");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if File::open(&path).is_ok() {
        eprintln!("permissions are not enforced for this user (root?): test skipped");
        return;
    }
    assert!(
        matches!(fx.open("file.txt"), Err(ResolveError::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied)
    );
}

// ---- openat2 only: symlinks that stay inside are followed ----

#[test]
fn openat2_follows_symlink_inside() {
    if openat2_available() {
        assert_eq!(
            content(Fixture::new().open_with("in", Lookup::Openat2, Reopen::ProcFd)),
            "inner"
        );
    }
}

#[test]
fn openat2_follows_symlink_chain_inside() {
    if openat2_available() {
        assert_eq!(
            content(Fixture::new().open_with("chain1", Lookup::Openat2, Reopen::ProcFd)),
            "file"
        );
    }
}

#[test]
fn openat2_follows_symlink_with_dotdot_that_stays_inside() {
    if openat2_available() {
        assert_eq!(
            content(Fixture::new().open_with("sub/up", Lookup::Openat2, Reopen::Direct)),
            "file"
        );
    }
}

#[test]
fn openat2_follows_symlinked_folder_inside() {
    if openat2_available() {
        assert_eq!(
            content(Fixture::new().open_with("subdir/inner.txt", Lookup::Openat2, Reopen::ProcFd)),
            "inner"
        );
    }
}

#[test]
fn openat2_refuses_absolute_symlink_even_inside() {
    if openat2_available() {
        assert!(matches!(
            Fixture::new().open_with("abs_in", Lookup::Openat2, Reopen::ProcFd),
            Err(ResolveError::Escape)
        ));
    }
}

#[test]
fn openat2_refuses_symlink_loop() {
    if openat2_available() {
        assert!(matches!(
            Fixture::new().open_with("loop", Lookup::Openat2, Reopen::ProcFd),
            Err(ResolveError::Escape)
        ));
    }
}

// ---- walk only: every symlink is refused ----

#[test]
fn walk_refuses_symlink_inside() {
    assert!(matches!(
        Fixture::new().open_with("in", Lookup::Walk, Reopen::ProcFd),
        Err(ResolveError::Escape)
    ));
}

#[test]
fn walk_refuses_symlink_inside_direct() {
    assert!(matches!(
        Fixture::new().open_with("in", Lookup::Walk, Reopen::Direct),
        Err(ResolveError::Escape)
    ));
}

#[test]
fn walk_refuses_symlink_chain_inside() {
    assert!(matches!(
        Fixture::new().open_with("chain1", Lookup::Walk, Reopen::ProcFd),
        Err(ResolveError::Escape)
    ));
}

#[test]
fn walk_refuses_symlinked_folder_inside() {
    assert!(matches!(
        Fixture::new().open_with("subdir/inner.txt", Lookup::Walk, Reopen::ProcFd),
        Err(ResolveError::Escape)
    ));
}

#[test]
fn walk_refuses_symlinked_folder_inside_direct() {
    assert!(matches!(
        Fixture::new().open_with("subdir/inner.txt", Lookup::Walk, Reopen::Direct),
        Err(ResolveError::Escape)
    ));
}

// ---- /proc reopen ----

#[test]
fn proc_reopen_is_what_the_public_entry_uses_here() {
    if proc_available() {
        assert_eq!(PROC_FD.load(Ordering::Relaxed), WORKS);
    }
}

/// The same checks under every lookup × reopen combination.
macro_rules! each_strategy {
    ($name:ident, $lookup:expr, $reopen:expr) => {
        mod $name {
            use super::*;

            fn open(fx: &Fixture, raw: &str) -> Result<ResolvedFile, ResolveError> {
                if $lookup == Lookup::Openat2 && !openat2_available() {
                    // Exercise the walk instead: stricter, never wrong.
                    return fx.open_with(raw, Lookup::Walk, $reopen);
                }
                if $reopen == Reopen::ProcFd && !proc_available() {
                    return fx.open_with(raw, $lookup, Reopen::Direct);
                }
                fx.open_with(raw, $lookup, $reopen)
            }

            #[test]
            fn symlink_to_etc_passwd_escapes() {
                assert!(matches!(
                    open(&Fixture::new(), "passwd"),
                    Err(ResolveError::Escape)
                ));
            }

            #[test]
            fn symlink_to_parent_file_escapes() {
                assert!(matches!(
                    open(&Fixture::new(), "out"),
                    Err(ResolveError::Escape)
                ));
            }

            #[test]
            fn symlinked_parent_folder_escapes() {
                assert!(matches!(
                    open(&Fixture::new(), "outdir/outside.txt"),
                    Err(ResolveError::Escape)
                ));
            }

            #[test]
            fn directory_is_not_regular() {
                assert!(matches!(
                    open(&Fixture::new(), "folder"),
                    Err(ResolveError::NotRegular)
                ));
            }

            #[test]
            fn fifo_is_not_regular_and_does_not_hang() {
                let fx = Fixture::new();
                rustix::fs::mkfifoat(CWD, &fx.dir.join("fifo"), Mode::from_raw_mode(0o644))
                    .unwrap();
                let r = within_5s(move || open(&fx, "fifo"));
                assert!(matches!(r, Err(ResolveError::NotRegular)));
            }

            #[test]
            fn socket_is_not_regular() {
                let fx = Fixture::new();
                let _l = std::os::unix::net::UnixListener::bind(fx.dir.join("sock")).unwrap();
                assert!(matches!(open(&fx, "sock"), Err(ResolveError::NotRegular)));
            }

            #[test]
            fn device_node_is_refused() {
                let fx = Fixture::new();
                let made = rustix::fs::mknodat(
                    CWD,
                    &fx.dir.join("null"),
                    FileType::CharacterDevice,
                    Mode::from_raw_mode(0o666),
                    rustix::fs::makedev(1, 3),
                );
                if made.is_err() {
                    eprintln!("cannot create a device node here: test skipped");
                    return;
                }
                // A nodev mount makes the direct open fail with EACCES.
                assert!(matches!(
                    open(&fx, "null"),
                    Err(ResolveError::NotRegular | ResolveError::Io(_))
                ));
            }

            #[test]
            fn missing_file_is_not_found() {
                assert!(matches!(
                    open(&Fixture::new(), "nope.msi"),
                    Err(ResolveError::NotFound)
                ));
            }

            #[test]
            fn missing_folder_is_not_found() {
                assert!(matches!(
                    open(&Fixture::new(), "nope/file.txt"),
                    Err(ResolveError::NotFound)
                ));
            }

            #[test]
            fn file_used_as_folder_is_not_found() {
                assert!(matches!(
                    open(&Fixture::new(), "file.txt/x"),
                    Err(ResolveError::NotFound)
                ));
            }

            #[test]
            fn too_long_name_is_not_found() {
                let raw = "a".repeat(300);
                assert!(matches!(
                    open(&Fixture::new(), &raw),
                    Err(ResolveError::NotFound)
                ));
            }

            #[test]
            fn too_long_path_is_not_found() {
                let raw = vec!["b".repeat(250); 20].join("/");
                assert!(matches!(
                    open(&Fixture::new(), &raw),
                    Err(ResolveError::NotFound)
                ));
            }

            #[test]
            fn regular_file_opens() {
                assert_eq!(content(open(&Fixture::new(), "file.txt")), "file");
            }

            #[test]
            fn file_in_subfolder_opens() {
                assert_eq!(content(open(&Fixture::new(), "sub/inner.txt")), "inner");
            }

            #[test]
            fn name_with_plus_opens() {
                assert_eq!(content(open(&Fixture::new(), "a+b.txt")), "a+b.txt");
            }

            #[test]
            fn name_with_encoded_space_opens() {
                assert_eq!(
                    content(open(&Fixture::new(), "with%20space.txt")),
                    "with space.txt"
                );
            }

            #[test]
            fn non_ascii_name_opens() {
                assert_eq!(
                    content(open(&Fixture::new(), "%C3%A9t%C3%A9.txt")),
                    "été.txt"
                );
            }

            #[test]
            fn identity_is_that_of_the_opened_file() {
                let fx = Fixture::new();
                let r = open(&fx, "sub/inner.txt").unwrap();
                let fresh = File::open(fx.dir.join("sub/inner.txt")).unwrap();
                assert_eq!(r.identity, FileIdentity::of(&fresh).unwrap());
            }

            #[test]
            fn identity_changes_when_the_file_is_rewritten() {
                let fx = Fixture::new();
                let before = open(&fx, "file.txt").unwrap().identity;
                std::thread::sleep(Duration::from_millis(20));
                std::fs::write(fx.dir.join("file.txt"), "new content").unwrap();
                assert_ne!(open(&fx, "file.txt").unwrap().identity, before);
            }

            #[test]
            fn file_is_handed_out_blocking() {
                let r = open(&Fixture::new(), "file.txt").unwrap();
                let flags = rustix::fs::fcntl_getfl(&r.file).unwrap();
                assert!(!flags.contains(OFlags::NONBLOCK));
            }

            #[test]
            fn file_is_read_only() {
                let r = open(&Fixture::new(), "file.txt").unwrap();
                let flags = rustix::fs::fcntl_getfl(&r.file).unwrap();
                assert_eq!(flags & OFlags::RWMODE, OFlags::RDONLY);
            }

            #[test]
            fn file_is_close_on_exec() {
                let r = open(&Fixture::new(), "file.txt").unwrap();
                let fd_flags = rustix::io::fcntl_getfd(&r.file).unwrap();
                assert!(fd_flags.contains(rustix::io::FdFlags::CLOEXEC));
            }
        }
    };
}

each_strategy!(openat2_procfd, Lookup::Openat2, Reopen::ProcFd);
each_strategy!(openat2_direct, Lookup::Openat2, Reopen::Direct);
each_strategy!(walk_procfd, Lookup::Walk, Reopen::ProcFd);
each_strategy!(walk_direct, Lookup::Walk, Reopen::Direct);

#[test]
fn openat2_refuses_a_symlink_whose_target_breaks_the_segment_rules() {
    if !openat2_available() {
        return;
    }
    let fx = Fixture::new();
    std::fs::write(fx.dir.join(".secret"), "secret").unwrap();
    std::fs::create_dir(fx.dir.join(".hidden")).unwrap();
    std::fs::write(fx.dir.join(".hidden/key"), "key").unwrap();
    std::fs::write(fx.dir.join("sub/CON"), "device name").unwrap();
    symlink(".secret", fx.dir.join("tosecret")).unwrap();
    symlink(".hidden", fx.dir.join("tohidden")).unwrap();
    symlink("sub/CON", fx.dir.join("tocon")).unwrap();
    for name in ["tosecret", "tohidden/key", "tocon"] {
        let got = fx.open_with(name, Lookup::Openat2, Reopen::ProcFd);
        assert!(
            matches!(got, Err(ResolveError::ForbiddenSegment(_))),
            "{name}: {got:?}"
        );
    }
    // A symlink to an ordinary file inside is still followed.
    assert_eq!(
        content(fx.open_with("in", Lookup::Openat2, Reopen::ProcFd)),
        "inner"
    );
}
