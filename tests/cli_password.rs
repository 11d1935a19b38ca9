//! `hash-password` on a real terminal: `script` (util-linux, Essential on
//! Debian) runs it on a pseudo-terminal, and the test types as a user would,
//! after each prompt appears.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "tty-only-s3cret";

/// A shell command running on a pseudo-terminal; its screen output collected.
struct Tty {
    child: Child,
    input: ChildStdin,
    screen: Arc<Mutex<String>>,
}

impl Tty {
    fn run(shell: &str) -> Tty {
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", shell, "/dev/null"])
            .env("DISTPOINT", env!("CARGO_BIN_EXE_distpoint"))
            .env("SHELL", "/bin/bash")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script(1) from util-linux");
        let input = child.stdin.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let screen = Arc::new(Mutex::new(String::new()));
        let s = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Tty {
            child,
            input,
            screen,
        }
    }

    fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Wait until the screen shows `text` `times` times.
    fn wait_for(&self, text: &str, times: usize) {
        let end = Instant::now() + Duration::from_secs(20);
        while self.screen().matches(text).count() < times {
            assert!(
                Instant::now() < end,
                "never saw {text:?}: {:?}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn type_bytes(&mut self, bytes: &[u8]) {
        self.input.write_all(bytes).unwrap();
        self.input.flush().unwrap();
    }

    /// Wait for the shell command to end; returns the whole screen.
    fn finish(mut self) -> String {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < end, "did not finish: {:?}", self.screen());
            std::thread::sleep(Duration::from_millis(10));
        }
        self.wait_for("stty-done", 1);
        self.screen()
    }
}

/// After distpoint exits: its exit code and whether the terminal echoes again.
const SHELL: &str = "\"$DISTPOINT\" hash-password; echo \"rc=$?\"; stty -a | tr ' ' '\\n' | grep -x -- '-*echo'; echo stty-done";

#[test]
fn on_a_terminal_it_asks_twice_without_echo() {
    let mut tty = Tty::run(SHELL);
    tty.wait_for("Password: ", 1);
    tty.type_bytes(format!("{SECRET}\n").as_bytes());
    tty.wait_for("Password again: ", 1);
    tty.type_bytes(format!("{SECRET}\n").as_bytes());
    let screen = tty.finish();
    assert!(
        !screen.contains(SECRET),
        "the password was echoed: {screen:?}"
    );
    assert!(screen.contains("rc=0"), "{screen:?}");
    let phc = screen
        .split_whitespace()
        .find(|w| w.starts_with("$argon2id$"))
        .unwrap_or_else(|| panic!("no hash: {screen:?}"));
    use argon2::PasswordVerifier;
    let parsed = argon2::PasswordHash::new(phc).unwrap();
    assert!(argon2::Argon2::default()
        .verify_password(SECRET.as_bytes(), &parsed)
        .is_ok());
    // The terminal echoes again afterwards.
    assert!(screen.lines().any(|l| l.trim() == "echo"), "{screen:?}");
}

#[test]
fn a_mismatch_is_refused_and_nothing_is_printed() {
    let mut tty = Tty::run(SHELL);
    tty.wait_for("Password: ", 1);
    tty.type_bytes(format!("{SECRET}\n").as_bytes());
    tty.wait_for("Password again: ", 1);
    tty.type_bytes(b"something else\n");
    let screen = tty.finish();
    assert!(screen.contains("rc=1"), "{screen:?}");
    assert!(screen.contains("differ"), "{screen:?}");
    assert!(!screen.contains("$argon2id$"), "{screen:?}");
    assert!(!screen.contains(SECRET), "{screen:?}");
    assert!(screen.lines().any(|l| l.trim() == "echo"), "{screen:?}");
}

#[test]
fn ctrl_c_at_the_prompt_restores_echo() {
    let mut tty = Tty::run(SHELL);
    tty.wait_for("Password: ", 1);
    tty.type_bytes(b"half");
    tty.type_bytes(&[0x03]);
    let screen = tty.finish();
    assert!(screen.contains("rc=130"), "{screen:?}");
    assert!(!screen.contains("$argon2id$"), "{screen:?}");
    assert!(screen.lines().any(|l| l.trim() == "echo"), "{screen:?}");
}
