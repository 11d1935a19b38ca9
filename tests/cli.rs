//! The command line: first run, check-config, hash-password, certs dev.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn distpoint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_distpoint"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A fresh clone's config/ and content/ with no certificates yet.
fn fresh_clone() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("config"), &dir.path().join("config"));
    copy_dir(&repo.join("content"), &dir.path().join("content"));
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    // Same config, but on an ephemeral port so tests never collide.
    let cfg = dir.path().join("config/distpoint.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replace(
        "listen = [\"127.0.0.1:8443\", \"[::1]:8443\"]",
        "listen = [\"127.0.0.1:0\"]",
    );
    assert!(
        text.contains("127.0.0.1:0"),
        "the shipped config's listen line changed; update this test"
    );
    std::fs::write(&cfg, text).unwrap();
    dir
}

#[test]
fn first_run_makes_dev_certs_and_the_printed_curl_command_works() {
    let clone = fresh_clone();
    let mut child = distpoint()
        .arg("serve")
        .current_dir(clone.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut curl_line = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = stdout.lines();
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if line.trim_start().starts_with("curl ") {
            curl_line = Some(line.trim().to_string());
            break;
        }
    }
    let curl_line = curl_line.expect("banner prints a curl command");
    for f in [
        "ca.crt",
        "server.crt",
        "server.key",
        "client.crt",
        "client.key",
    ] {
        assert!(clone.path().join("certs").join(f).exists(), "{f} created");
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{curl_line} -sS -f"))
        .current_dir(clone.path())
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "{curl_line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello from distpoint"));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("WARN") && stderr.contains("dev"),
        "dev cert creation is a warning: {stderr}"
    );
    assert!(!stderr.contains("PRIVATE KEY"));
}

#[test]
fn check_config_prints_paths_and_who_may_read_them() {
    let clone = fresh_clone();
    let out = distpoint()
        .args(["check-config", "--config", "config/distpoint.toml"])
        .current_dir(clone.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/SMS_DP_SMSPKG$/PKG00001"), "{text}");
    assert!(text.contains("readable by: cert:client01"), "{text}");
    assert!(text.contains("readable by: anyone"), "{text}");
}

/// config/branch.toml validates once the steps its header lists (run as
/// written, in a fresh clone) have made the files it names.
#[test]
fn the_branch_example_validates_after_the_steps_it_lists() {
    let clone = fresh_clone();
    let text = std::fs::read_to_string(clone.path().join("config/branch.toml")).unwrap();
    let steps: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("checkout's folder:"))
        .skip(1)
        .take_while(|l| !l.starts_with("# then:"))
        .map(|l| {
            l.trim_start_matches('#')
                .split(" # ")
                .next()
                .unwrap()
                .trim()
        })
        .collect();
    assert_eq!(steps.len(), 3, "{steps:?}");
    let bin = Path::new(env!("CARGO_BIN_EXE_distpoint")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for step in steps {
        let out = Command::new("sh")
            .args(["-c", step])
            .env("PATH", &path)
            .current_dir(clone.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = distpoint()
        .args(["check-config", "--config", "config/branch.toml"])
        .current_dir(clone.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("replica of: https://127.0.0.1:8443/SMS_DP_SMSPKG$/PKG00001"),
        "{stdout}"
    );
}

#[test]
fn check_config_errors_name_file_line_col_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = [\"127.0.0.1:1\"]\nbogus = 1\n[tls]\ncert = \"a\"\nkey = \"b\"\n",
    )
    .unwrap();
    let out = distpoint()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3:1:") && err.contains("bogus"),
        "{err}"
    );
    let out = distpoint()
        .args(["check-config", "--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.toml"));
}

#[test]
fn hash_password_reads_one_line_and_prints_argon2id() {
    let mut child = distpoint()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret: with colon\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap();
    let phc = phc.trim();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    use argon2::PasswordVerifier;
    let parsed = argon2::PasswordHash::new(phc).unwrap();
    assert!(argon2::Argon2::default()
        .verify_password(b"s3cret: with colon", &parsed)
        .is_ok());
    assert!(argon2::Argon2::default()
        .verify_password(b"s3cret: with colon\n", &parsed)
        .is_err());
}

#[test]
fn certs_dev_writes_pem_files_with_private_keys_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = distpoint()
        .args(["certs", "dev", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    for (f, mode) in [
        ("ca.crt", 0o644),
        ("server.crt", 0o644),
        ("client.crt", 0o644),
        ("server.key", 0o600),
        ("client.key", 0o600),
    ] {
        let meta = std::fs::metadata(dir.path().join(f)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{f}");
    }
    let key = std::fs::read_to_string(dir.path().join("server.key")).unwrap();
    assert!(key.contains("PRIVATE KEY"));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"),
        "keys are never printed"
    );
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_first_run_leaves_a_fresh_clone_clean() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("clone");
    git(
        tmp.path(),
        &["clone", "--quiet", repo.to_str().unwrap(), "clone"],
    );
    // No certificate or key is tracked: each run makes its own.
    let tracked = git(&clone, &["ls-files", "certs"]);
    assert_eq!(tracked.trim(), "certs/.gitkeep", "{tracked}");
    assert!(git(&clone, &["status", "--porcelain"]).is_empty());

    // The shipped config, on an ephemeral port so that runs never collide;
    // this edit is undone below, everything else the run leaves must be ignored.
    let cfg = clone.join("config/distpoint.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let edited = text.replace(
        "listen = [\"127.0.0.1:8443\", \"[::1]:8443\"]",
        "listen = [\"127.0.0.1:0\"]",
    );
    assert_ne!(edited, text, "the shipped config's listen line changed");
    std::fs::write(&cfg, edited).unwrap();
    let mut server = distpoint()
        .arg("serve")
        .current_dir(&clone)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.trim().strip_prefix("listening on ").map(str::to_string))
        .expect("the server starts");
    // Keep reading: the banner goes on after the address.
    std::thread::spawn(move || lines.for_each(drop));
    // Serve a request, so that whatever a request writes (state) exists too.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-f",
            "--cacert",
            "certs/ca.crt",
            "--cert",
            "certs/client.crt",
        ])
        .args(["--key", "certs/client.key"])
        .arg(format!("{url}/SMS_DP_SMSPKG$/PKG00001/readme.txt"))
        .current_dir(&clone)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
    assert!(clone.join("certs/server.key").exists());

    std::fs::write(&cfg, text).unwrap();
    let status = git(&clone, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(status.is_empty(), "the run dirtied the clone:\n{status}");
}
