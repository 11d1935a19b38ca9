//! A worker: one connection to one source. It loops plan → transfer →
//! finish: the book says which chunks to ask for; the transfer streams them
//! through the verifier, handing each verified chunk to the writer; the
//! finish tells the book how it went and does what the book says (go on,
//! pause, stop). A source dropped by any of its workers cancels the others'
//! requests at once.

use super::book::{After, Book, Halt, Outcome, Plan};
use super::hooks::{Events, Gate};
use super::rate::RateLimit;
use super::source::{ByteStream, ReadError, ReadErrorKind, ReadRequest, Reader, Source};
use super::verify::{ChunkStream, VerifyError};
use super::writer::{WriteThread, Writer};
use crate::integrity::FileManifest;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

/// What the workers of a run share.
pub struct Ctx {
    /// The manifest.
    pub manifest: Arc<FileManifest>,
    /// The sources, by index.
    pub sources: Vec<Arc<dyn Source>>,
    /// The one state book.
    pub book: Mutex<Book>,
    /// Bumped whenever the book changes in a way a waiting worker cares about.
    pub changes: tokio::sync::watch::Sender<u64>,
    /// Per source: cancelled when it is dropped (children of `all`).
    pub cancel: Vec<CancellationToken>,
    /// Cancelled when the whole run stops.
    pub all: CancellationToken,
    /// The run's writer thread (into the sink).
    pub writes: WriteThread,
    /// The rate limit.
    pub rate: Option<Arc<RateLimit>>,
    /// Admission of new requests.
    pub gate: Option<Arc<dyn Gate>>,
    /// Who hears.
    pub events: Arc<dyn Events>,
}

impl Ctx {
    /// The book. A worker that panicked while holding it leaves figures
    /// that are still usable: the run goes on (and the panic is reported).
    pub fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|g| *g = g.wrapping_add(1));
    }
}

/// One worker of source `s`, until the book says stop.
pub async fn run(ctx: Arc<Ctx>, s: usize) {
    let cancel = ctx.cancel[s].clone();
    let capacity = ctx.manifest.chunk_size.min(ctx.manifest.size) as usize;
    let mut writer = Writer::new(ctx.writes.clone(), capacity);
    let mut reader: Option<Box<dyn Reader>> = None;
    let mut rx = ctx.changes.subscribe();
    let mut hint = 1u64;
    loop {
        rx.borrow_and_update();
        let plan = ctx.book().plan(s, hint);
        let (first, end) = match plan {
            Plan::Stop => break,
            Plan::Wait => {
                tokio::select! {
                    r = rx.changed() => if r.is_err() { break },
                    _ = cancel.cancelled() => break,
                }
                continue;
            }
            Plan::Fetch { first, end } => (first, end),
        };
        let outcome = transfer(&ctx, s, &mut reader, &mut writer, first, end).await;
        // Whatever happened, the chunks verified so far are written first.
        let outcome = if reap(&ctx, s, &mut writer, true).await {
            outcome
        } else {
            Outcome::Cancelled
        };
        match outcome {
            Outcome::Done => hint = hint.saturating_mul(2),
            _ => reader = None,
        }
        let (after, dropped) = ctx.book().finish(s, first, end, outcome);
        ctx.changed();
        if let Some((name, reason)) = dropped {
            cancel.cancel();
            ctx.events.dropped(&name, &reason);
        }
        match after {
            After::Continue => {}
            After::Backoff(pause) => {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = cancel.cancelled() => break,
                }
            }
            After::Stop => break,
        }
    }
    ctx.book().worker_exit(s);
    ctx.changed();
}

/// Record finished writes: wait for all of them with `all`, else only for
/// those done (or the oldest when too many are pending). False when a write
/// failed: the run is then halted.
async fn reap(ctx: &Ctx, s: usize, writer: &mut Writer, all: bool) -> bool {
    while let Some((index, result)) = writer.next_done(all).await {
        match result {
            Ok(()) => {
                let (done, runs) = ctx.book().verified(s, index);
                let (a, b) = ctx.manifest.chunk_range(index);
                ctx.events.verified(b - a, done);
                if let Some(runs) = runs {
                    ctx.events.checkpoint(&runs);
                }
            }
            Err(error) => {
                ctx.book().halt(Halt::Sink {
                    chunk: index,
                    error,
                });
                ctx.all.cancel();
                ctx.changed();
                return false;
            }
        }
    }
    true
}

fn failed(error: ReadError, at: u64, cut: bool) -> Outcome {
    Outcome::Failed { error, at, cut }
}

/// Ask source `s` for chunks `first..end` and stream them through.
async fn transfer(
    ctx: &Ctx,
    s: usize,
    reader: &mut Option<Box<dyn Reader>>,
    writer: &mut Writer,
    first: u64,
    end: u64,
) -> Outcome {
    let cancel = &ctx.cancel[s];
    if let Some(gate) = &ctx.gate {
        tokio::select! {
            _ = gate.admit() => {}
            _ = cancel.cancelled() => return Outcome::Cancelled,
        }
    }
    if reader.is_none() {
        let opened = tokio::select! {
            r = ctx.sources[s].open() => r,
            _ = cancel.cancelled() => return Outcome::Cancelled,
        };
        match opened {
            Ok(r) => {
                ctx.book().connected(s, r.protocol());
                *reader = Some(r);
            }
            Err(e) => return failed(e, first, false),
        }
    }
    let Some(r) = reader.as_mut() else {
        return Outcome::Cancelled;
    };
    let m = &ctx.manifest;
    let validator = ctx.book().validator(s);
    let req = ReadRequest {
        start: m.chunk_range(first).0,
        end: m.chunk_range(end - 1).1,
        size: m.size,
        validator: validator.as_ref(),
    };
    let reply = tokio::select! {
        r = r.read(req) => r,
        _ = cancel.cancelled() => return Outcome::Cancelled,
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => return failed(e, first, false),
    };
    if let Err(changed) = ctx.book().learn(s, reply.validator) {
        return failed(changed, first, false);
    }
    stream(ctx, s, reply.body, writer, first, end).await
}

/// Verify the body's bytes chunk by chunk; hand each verified chunk to the
/// writer as its last byte arrives.
async fn stream(
    ctx: &Ctx,
    s: usize,
    mut body: ByteStream,
    writer: &mut Writer,
    first: u64,
    end: u64,
) -> Outcome {
    let cancel = &ctx.cancel[s];
    let m = &ctx.manifest;
    let mut verify = ChunkStream::new(m.clone(), first, end);
    let mut buf = writer.buffer();
    loop {
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Outcome::Cancelled,
            n = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)) => n,
        };
        let data = match next {
            None => break,
            Some(Ok(d)) => d,
            Some(Err(e)) => return failed(e, verify.next_chunk(), true),
        };
        ctx.book().received(s, data.len() as u64);
        let mut rest = &data[..];
        while !rest.is_empty() {
            match verify.take(rest) {
                Ok((n, done)) => {
                    buf.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    if let Some(index) = done {
                        let offset = m.chunk_range(index).0;
                        let next = writer.buffer();
                        writer.submit(index, offset, std::mem::replace(&mut buf, next));
                    }
                }
                Err(VerifyError::Mismatch { index }) => return Outcome::BadChunk(index),
                Err(VerifyError::TooLong) => {
                    let message = format!(
                        "{}: sent more bytes than were asked for",
                        ctx.sources[s].name()
                    );
                    return failed(ReadError::new(ReadErrorKind::Protocol, message), end, false);
                }
            }
        }
        if !reap(ctx, s, writer, false).await {
            return Outcome::Cancelled;
        }
        if let Some(rate) = &ctx.rate {
            let pause = rate.charge(data.len() as u64);
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = cancel.cancelled() => return Outcome::Cancelled,
                }
            }
        }
    }
    if verify.is_complete() {
        Outcome::Done
    } else {
        let message = format!("{}: response ended short", ctx.sources[s].name());
        failed(ReadError::transient(message), verify.next_chunk(), true)
    }
}
