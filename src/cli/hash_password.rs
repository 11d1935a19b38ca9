//! `distpoint hash-password`: a password in, an argon2id PHC string out.
//!
//! From a pipe it reads one line (the line end is not part of the password).
//! On a terminal it asks twice with echo off and refuses a mismatch.
//!
//! Echo is switched off with rustix's termios calls rather than through
//! `rpassword`: rustix is already in the tree (one feature more, no new crate),
//! and the order matters. rpassword prints the prompt and only then turns echo
//! off, so a password typed ahead of the prompt is shown; here echo goes off
//! (discarding typed-ahead input) before the prompt, and the terminal is
//! restored on Ctrl-C too, which rpassword leaves with echo off.

use super::{runtime, Failure};
use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions, Termios};
use std::io::{BufRead, IsTerminal};
use std::os::fd::AsFd;

/// Read a password (see the module docs) and print its argon2id hash.
pub fn run() -> Result<(), Failure> {
    let password = if std::io::stdin().is_terminal() {
        from_terminal()?
    } else {
        read_line()?.ok_or_else(|| Failure::usage("hash-password: no password on stdin"))?
    };
    let phc = distpoint::auth::hash_password(&password)
        .map_err(|e| Failure::usage(format!("hash-password: {e}")))?;
    println!("{phc}");
    Ok(())
}

/// One line from stdin without its line end; `None` at end of input.
fn read_line() -> Result<Option<String>, Failure> {
    let mut line = String::new();
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::usage(format!("hash-password: cannot read stdin: {e}")))?;
    if n == 0 {
        return Ok(None);
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(Some(
        password.strip_suffix('\r').unwrap_or(password).to_string(),
    ))
}

/// Terminal settings with echo off, restored when dropped.
struct EchoOff {
    saved: Termios,
}

impl EchoOff {
    fn new() -> std::io::Result<EchoOff> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd())?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        // The Enter key still moves to the next line.
        quiet.local_modes.insert(LocalModes::ECHONL);
        // Flush: input typed before this point is discarded, never echoed.
        tcsetattr(stdin.as_fd(), OptionalActions::Flush, &quiet)?;
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}

fn from_terminal() -> Result<String, Failure> {
    let rt = runtime()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let err = |e: std::io::Error| Failure::usage(format!("hash-password: terminal: {e}"));
        // Caught from here on, so that Ctrl-C restores echo before exiting.
        let mut interrupt = signal(SignalKind::interrupt()).map_err(err)?;
        let echo = EchoOff::new().map_err(err)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A plain thread: a blocked read must not hold up the runtime's shutdown.
        std::thread::spawn(move || {
            let _ = tx.send(ask_twice());
        });
        let result = tokio::select! {
            r = rx => r.unwrap_or_else(|_| Err(Failure::usage("hash-password: reader stopped"))),
            _ = interrupt.recv() => {
                eprintln!();
                Err(Failure { code: 130, message: "hash-password: interrupted".into() })
            }
        };
        drop(echo);
        result
    })
}

fn ask(prompt: &str) -> Result<String, Failure> {
    eprint!("{prompt}");
    read_line()?.ok_or_else(|| Failure::usage("hash-password: no password given"))
}

fn ask_twice() -> Result<String, Failure> {
    let first = ask("Password: ")?;
    if first.is_empty() {
        return Err(Failure::usage("hash-password: the password is empty"));
    }
    let second = ask("Password again: ")?;
    if first != second {
        return Err(Failure::usage(
            "hash-password: the two passwords differ; nothing was printed",
        ));
    }
    Ok(first)
}
