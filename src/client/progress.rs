//! Progress of a fetch: a bar on a terminal (bytes, rate, ETA, chunks
//! verified), nothing otherwise, so that logs and scripts see only the
//! result line.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;

/// Shows progress, or does nothing when not on a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
    chunks: u64,
}

impl Progress {
    /// A bar for `size` bytes in `chunks` chunks, drawn on stderr only if it
    /// is a terminal and `enabled`.
    pub fn new(size: u64, chunks: u64, enabled: bool) -> Progress {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .expect("valid template"),
            );
            b
        });
        Progress { bar, chunks }
    }

    /// `bytes` more are verified and written; `verified` chunks in all.
    pub fn advance(&self, bytes: u64, verified: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
            b.set_message(format!("chunks {verified}/{}", self.chunks));
        }
    }

    /// Print a line on stderr without tearing the bar.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Remove the bar before the result line is printed.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
