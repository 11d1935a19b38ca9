//! The state book of one engine run, kept under one lock: which chunks are
//! missing, taken or done; per source its state, validator, failures in a
//! row, requests in flight and figures. Every decision (what to ask for
//! next, what a failure means, when the run is over) is made here, so the
//! workers only move bytes.
//!
//! Scheduling: a worker takes the lowest missing chunks. While more than
//! one worker is live, a request is one chunk: taking chunks in order is
//! what bounds the waste when chunk k turns out bad (the chunks in flight
//! are then at most k+1..k+N). A worker alone may ask for runs of chunks,
//! doubling from one up to [`MAX_SPAN_BYTES`], so that a single connection
//! never waits for a request between chunks; its stream is in order, so the
//! same bound holds. Faster sources come back sooner and so get more.

use super::report::{DropReason, SourceReport};
use super::retry::{backoff, MAX_ATTEMPTS};
use super::source::{ReadError, ReadErrorKind, Validator};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Largest request of a worker that is alone.
pub const MAX_SPAN_BYTES: u64 = 64 << 20;

/// How often the verified chunks are handed to the checkpoint.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Missing,
    Taken,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    /// No new requests (quarantined); those in flight finish, so that the
    /// chunk at fault is known for certain.
    Draining,
    Dropped,
}

struct SourceBook {
    report: SourceReport,
    state: State,
    validator: Option<Validator>,
    failures: u32,
    last_failure: String,
    in_flight: u32,
    workers: u32,
    refused: BTreeSet<u64>,
    cut: BTreeSet<u64>,
    named: BTreeSet<u64>,
}

/// What a worker should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Fetch chunks `first..end` (they are now taken by this source).
    Fetch {
        /// First chunk.
        first: u64,
        /// One past the last.
        end: u64,
    },
    /// Nothing to take now, but chunks in flight elsewhere may come back.
    Wait,
    /// The run is over for this worker.
    Stop,
}

/// How a request ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every chunk asked for was verified and written.
    Done,
    /// Abandoned: the source was dropped meanwhile, or the run stopped.
    Cancelled,
    /// Chunk `chunk` failed its hash.
    BadChunk(u64),
    /// The read failed at chunk `at` (the first not yet verified); `cut`
    /// when the body broke off after it had started.
    Failed {
        /// What happened.
        error: ReadError,
        /// The first chunk of the request not verified.
        at: u64,
        /// True when bytes had started to arrive.
        cut: bool,
    },
}

/// What the worker does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Plan the next request.
    Continue,
    /// Pause (the connection is dropped), then plan again.
    Backoff(Duration),
    /// Stop: this source is done for.
    Stop,
}

/// Why the run stopped for every source at once.
#[derive(Debug)]
pub enum Halt {
    /// A source reported that the client's own settings are wrong.
    Settings(ReadError),
    /// A verified chunk could not be written.
    Sink {
        /// The chunk.
        chunk: u64,
        /// The cause.
        error: std::io::Error,
    },
}

/// How the run ended, once every worker has stopped.
#[derive(Debug)]
pub enum Verdict {
    /// Every chunk is verified.
    Complete,
    /// Every source was dropped for an integrity reason; `chunk` could not
    /// be had from any of them.
    Integrity {
        /// The chunk to name.
        chunk: u64,
    },
    /// The sources that were left failed for network or HTTP reasons.
    Unavailable,
    /// Stopped for everyone.
    Halted(Halt),
}

/// The book.
pub struct Book {
    chunk_size: u64,
    slots: Vec<Slot>,
    /// No missing chunk below this index.
    cursor: usize,
    done: u64,
    fetched: u64,
    sources: Vec<SourceBook>,
    live_workers: u32,
    last_checkpoint: Instant,
    halt: Option<Halt>,
}

impl Book {
    /// A book for `chunks` chunks of `chunk_size`, `done` already verified,
    /// fetched from `sources` with `workers` workers each.
    pub fn new(
        chunk_size: u64,
        chunks: u64,
        done: &BTreeSet<u64>,
        sources: Vec<String>,
        workers: u32,
    ) -> Book {
        let slots: Vec<Slot> = (0..chunks)
            .map(|c| {
                if done.contains(&c) {
                    Slot::Done
                } else {
                    Slot::Missing
                }
            })
            .collect();
        let count = sources.len() as u32;
        Book {
            chunk_size,
            done: slots.iter().filter(|s| **s == Slot::Done).count() as u64,
            slots,
            cursor: 0,
            fetched: 0,
            sources: sources
                .into_iter()
                .map(|name| SourceBook {
                    report: SourceReport {
                        name,
                        ..Default::default()
                    },
                    state: State::Live,
                    validator: None,
                    failures: 0,
                    last_failure: String::new(),
                    in_flight: 0,
                    workers,
                    refused: BTreeSet::new(),
                    cut: BTreeSet::new(),
                    named: BTreeSet::new(),
                })
                .collect(),
            live_workers: workers * count,
            last_checkpoint: Instant::now(),
            halt: None,
        }
    }

    fn chunks(&self) -> u64 {
        self.slots.len() as u64
    }

    /// True once every chunk is verified.
    pub fn complete(&self) -> bool {
        self.done == self.chunks()
    }

    /// Chunks verified so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// The next request for a worker of source `s`; `hint` is how many
    /// chunks it may ask for when it is the only live worker.
    pub fn plan(&mut self, s: usize, hint: u64) -> Plan {
        if self.halt.is_some() || self.complete() || self.sources[s].state != State::Live {
            return Plan::Stop;
        }
        while self.cursor < self.slots.len() && self.slots[self.cursor] != Slot::Missing {
            self.cursor += 1;
        }
        let first = self.cursor;
        if first == self.slots.len() {
            return Plan::Wait;
        }
        let most = if self.live_workers > 1 {
            1
        } else {
            hint.clamp(1, (MAX_SPAN_BYTES / self.chunk_size).max(1))
        };
        let mut end = first;
        while end < self.slots.len()
            && self.slots[end] == Slot::Missing
            && ((end - first) as u64) < most
        {
            self.slots[end] = Slot::Taken;
            end += 1;
        }
        let src = &mut self.sources[s];
        src.in_flight += 1;
        src.report.requests += 1;
        Plan::Fetch {
            first: first as u64,
            end: end as u64,
        }
    }

    /// The validator to send to source `s`.
    pub fn validator(&self, s: usize) -> Option<Validator> {
        self.sources[s].validator.clone()
    }

    /// Note the validator of a reply from `s`: the first one is kept; a
    /// later one that conflicts means its copy changed.
    pub fn learn(&mut self, s: usize, got: Option<Validator>) -> Result<(), ReadError> {
        let src = &mut self.sources[s];
        match (&src.validator, got) {
            (None, Some(v)) => src.validator = Some(v),
            (Some(have), Some(v)) if have.conflicts_with(&v) => {
                return Err(ReadError::new(
                    ReadErrorKind::Changed,
                    format!(
                        "{}: its validator changed from {} to {} during the run",
                        src.report.name,
                        have.as_str(),
                        v.as_str()
                    ),
                ))
            }
            _ => {}
        }
        Ok(())
    }

    /// The protocol of a connection to `s`.
    pub fn connected(&mut self, s: usize, protocol: Option<&'static str>) {
        let r = &mut self.sources[s].report;
        r.protocol = r.protocol.or(protocol);
    }

    /// `bytes` of content arrived from `s`.
    pub fn received(&mut self, s: usize, bytes: u64) {
        self.sources[s].report.bytes += bytes;
    }

    /// Chunk `index` from `s` is verified and written. Returns the chunks
    /// done in all, and the verified runs when a checkpoint is due.
    pub fn verified(&mut self, s: usize, index: u64) -> (u64, Option<Vec<(u64, u64)>>) {
        let slot = &mut self.slots[index as usize];
        if *slot != Slot::Done {
            *slot = Slot::Done;
            self.done += 1;
            self.fetched += 1;
            let src = &mut self.sources[s];
            src.report.chunks += 1;
            src.failures = 0;
        }
        let due = self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY;
        if due {
            self.last_checkpoint = Instant::now();
        }
        (self.done, due.then(|| self.runs()))
    }

    /// Chunks fetched and verified in this run.
    pub fn fetched(&self) -> u64 {
        self.fetched
    }

    /// Verified chunks as `[start, end)` runs of indices.
    pub fn runs(&self) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if *slot != Slot::Done {
                continue;
            }
            let i = i as u64;
            match runs.last_mut() {
                Some((_, e)) if *e == i => *e += 1,
                _ => runs.push((i, i + 1)),
            }
        }
        runs
    }

    /// Stop the run for every source.
    pub fn halt(&mut self, why: Halt) {
        self.halt.get_or_insert(why);
    }

    /// Record how a request of `s` for `first..end` ended. Chunks of it not
    /// verified go back to the missing. Returns what the worker does next
    /// and, when this dropped the source, its name and the reason.
    pub fn finish(
        &mut self,
        s: usize,
        first: u64,
        end: u64,
        outcome: Outcome,
    ) -> (After, Option<(String, DropReason)>) {
        for c in first..end {
            let slot = &mut self.slots[c as usize];
            if *slot == Slot::Taken {
                *slot = Slot::Missing;
                self.cursor = self.cursor.min(c as usize);
            }
        }
        let n = self.chunks();
        let src = &mut self.sources[s];
        src.in_flight = src.in_flight.saturating_sub(1);
        let reason = match outcome {
            Outcome::Done | Outcome::Cancelled => None,
            Outcome::BadChunk(k) => {
                src.report.refused += 1;
                Some(DropReason::BadChunk { chunk: k })
            }
            Outcome::Failed { error, at, cut } => {
                if cut {
                    src.cut.insert(at);
                }
                match error.kind {
                    ReadErrorKind::Transient { wait } => {
                        src.failures += 1;
                        src.last_failure = error.message;
                        if src.failures < MAX_ATTEMPTS {
                            let pause = backoff(src.failures).max(wait);
                            return (After::Backoff(pause), None);
                        }
                        Some(DropReason::GaveUp {
                            attempts: src.failures,
                            last: std::mem::take(&mut src.last_failure),
                        })
                    }
                    ReadErrorKind::Quarantined { chunk } => {
                        src.report.refused += 1;
                        src.refused.insert(at);
                        // An index outside the manifest is not believed:
                        // the chunk is then named the old way.
                        if let Some(k) = chunk.filter(|&k| k < n) {
                            src.named.insert(k);
                        }
                        if src.state == State::Live {
                            src.state = State::Draining;
                            self.live_workers -= src.workers;
                        }
                        None
                    }
                    ReadErrorKind::Changed => Some(DropReason::Changed(error.message)),
                    ReadErrorKind::Status(_) => Some(DropReason::Status(error.message)),
                    ReadErrorKind::Tls => Some(DropReason::Tls(error.message)),
                    ReadErrorKind::Protocol => Some(DropReason::Protocol(error.message)),
                    ReadErrorKind::Settings => {
                        self.halt(Halt::Settings(error));
                        return (After::Stop, None);
                    }
                }
            }
        };
        let dropped = match reason {
            Some(r) => self.drop_source(s, r),
            None => self.drained(s),
        };
        let after = if self.sources[s].state == State::Live {
            After::Continue
        } else {
            After::Stop
        };
        (after, dropped)
    }

    /// A draining source with nothing left in flight is dropped, naming the
    /// chunk: the one its server named (lowest), else the lowest it cut that
    /// no one verified since, else the lowest it refused.
    fn drained(&mut self, s: usize) -> Option<(String, DropReason)> {
        let src = &self.sources[s];
        if src.state != State::Draining || src.in_flight > 0 {
            return None;
        }
        let chunk = src
            .named
            .first()
            .copied()
            .or_else(|| {
                src.cut
                    .iter()
                    .copied()
                    .find(|&c| self.slots[c as usize] != Slot::Done)
            })
            .or_else(|| src.refused.first().copied());
        self.drop_source(s, DropReason::Quarantined { chunk })
    }

    fn drop_source(&mut self, s: usize, reason: DropReason) -> Option<(String, DropReason)> {
        let src = &mut self.sources[s];
        if src.state == State::Dropped {
            return None;
        }
        if src.state == State::Live {
            self.live_workers -= src.workers;
        }
        src.state = State::Dropped;
        src.report.dropped = Some(reason.clone());
        Some((src.report.name.clone(), reason))
    }

    /// A worker of `s` has stopped.
    pub fn worker_exit(&mut self, s: usize) {
        let src = &mut self.sources[s];
        src.workers = src.workers.saturating_sub(1);
        if src.state == State::Live {
            self.live_workers = self.live_workers.saturating_sub(1);
        }
    }

    /// The verdict, once every worker has stopped.
    pub fn verdict(&mut self) -> Verdict {
        if let Some(h) = self.halt.take() {
            return Verdict::Halted(h);
        }
        if self.complete() {
            return Verdict::Complete;
        }
        let reasons: Vec<&DropReason> = self
            .sources
            .iter()
            .filter_map(|s| s.report.dropped.as_ref())
            .collect();
        let all_integrity = reasons.iter().all(|r| r.is_integrity());
        if reasons.is_empty() || reasons.len() < self.sources.len() || !all_integrity {
            return Verdict::Unavailable;
        }
        let chunks: BTreeSet<u64> = reasons.iter().filter_map(|r| r.chunk()).collect();
        let missing = chunks
            .iter()
            .copied()
            .find(|&c| self.slots.get(c as usize) != Some(&Slot::Done));
        let chunk = missing
            .or_else(|| chunks.first().copied())
            .or_else(|| {
                self.slots
                    .iter()
                    .position(|s| *s != Slot::Done)
                    .map(|c| c as u64)
            })
            .unwrap_or(0);
        Verdict::Integrity { chunk }
    }

    /// Every source's figures.
    pub fn reports(&self) -> Vec<SourceReport> {
        self.sources.iter().map(|s| s.report.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(chunks: u64, sources: usize, workers: u32) -> Book {
        let names = (0..sources).map(|i| format!("s{i}")).collect();
        Book::new(1024, chunks, &BTreeSet::new(), names, workers)
    }

    fn transient(msg: &str) -> ReadError {
        ReadError::transient(msg)
    }

    #[test]
    fn workers_take_the_lowest_chunks_one_at_a_time_unless_alone() {
        let mut b = book(10, 2, 1);
        assert_eq!(b.plan(0, 8), Plan::Fetch { first: 0, end: 1 });
        assert_eq!(b.plan(1, 8), Plan::Fetch { first: 1, end: 2 });
        // Source 1 fails for good: source 0 is alone and may take runs.
        let (after, dropped) = b.finish(
            1,
            1,
            2,
            Outcome::Failed {
                error: ReadError::new(ReadErrorKind::Status(404), "s1: HTTP 404"),
                at: 1,
                cut: false,
            },
        );
        assert_eq!(after, After::Stop);
        assert_eq!(dropped.unwrap().0, "s1");
        b.worker_exit(1);
        assert_eq!(b.plan(0, 4), Plan::Fetch { first: 1, end: 5 });
        b.verified(0, 0);
        assert_eq!(b.plan(0, 100), Plan::Fetch { first: 5, end: 10 });
        assert_eq!(b.plan(0, 1), Plan::Wait);
        for c in 1..10 {
            b.verified(0, c);
        }
        assert!(b.complete());
        assert_eq!(b.plan(0, 1), Plan::Stop);
        assert!(matches!(b.verdict(), Verdict::Complete));
        assert_eq!(b.runs(), vec![(0, 10)]);
    }

    #[test]
    fn without_sources_the_file_is_unavailable_not_bad() {
        let mut b = book(3, 0, 1);
        assert!(matches!(b.verdict(), Verdict::Unavailable));
        let mut empty = book(0, 0, 1);
        assert!(matches!(empty.verdict(), Verdict::Complete));
    }

    #[test]
    fn a_bad_chunk_drops_its_source_and_the_chunk_goes_back() {
        let mut b = book(4, 2, 1);
        assert_eq!(b.plan(0, 1), Plan::Fetch { first: 0, end: 1 });
        let (after, dropped) = b.finish(0, 0, 1, Outcome::BadChunk(0));
        assert_eq!(after, After::Stop);
        assert_eq!(dropped.unwrap().1, DropReason::BadChunk { chunk: 0 });
        assert_eq!(
            b.plan(0, 1),
            Plan::Stop,
            "no new request to a dropped source"
        );
        assert_eq!(b.plan(1, 1), Plan::Fetch { first: 0, end: 1 });
        // The other source is bad at the same chunk: nobody can deliver it.
        b.finish(1, 0, 1, Outcome::BadChunk(0));
        assert!(matches!(b.verdict(), Verdict::Integrity { chunk: 0 }));
        let r = b.reports();
        assert_eq!(r[0].refused, 1);
        assert_eq!(r[1].requests, 1);
    }

    #[test]
    fn transient_failures_back_off_then_give_up_and_progress_resets_them() {
        let mut b = book(100, 1, 1);
        for i in 1..MAX_ATTEMPTS {
            let Plan::Fetch { first, end } = b.plan(0, 1) else {
                panic!()
            };
            let out = Outcome::Failed {
                error: transient("s0: HTTP 503"),
                at: first,
                cut: false,
            };
            assert_eq!(b.finish(0, first, end, out).0, After::Backoff(backoff(i)));
        }
        let Plan::Fetch { first, .. } = b.plan(0, 1) else {
            panic!()
        };
        b.verified(0, first);
        b.finish(0, first, first + 1, Outcome::Done);
        for _ in 0..MAX_ATTEMPTS - 1 {
            let Plan::Fetch { first, end } = b.plan(0, 1) else {
                panic!()
            };
            let out = Outcome::Failed {
                error: transient("s0: HTTP 503"),
                at: first,
                cut: false,
            };
            assert!(matches!(b.finish(0, first, end, out).0, After::Backoff(_)));
        }
        let Plan::Fetch { first, end } = b.plan(0, 1) else {
            panic!()
        };
        let out = Outcome::Failed {
            error: transient("s0: HTTP 503"),
            at: first,
            cut: false,
        };
        let (after, dropped) = b.finish(0, first, end, out);
        assert_eq!(after, After::Stop);
        assert!(dropped
            .unwrap()
            .1
            .to_string()
            .contains("gave up after 6 attempts"));
        assert!(matches!(b.verdict(), Verdict::Unavailable));
    }

    #[test]
    fn a_quarantined_source_drains_then_names_the_chunk() {
        let mut b = book(10, 1, 2);
        let Plan::Fetch { first: a, .. } = b.plan(0, 1) else {
            panic!()
        };
        let Plan::Fetch { first: c, .. } = b.plan(0, 1) else {
            panic!()
        };
        let q = |chunk| Outcome::Failed {
            error: ReadError::new(ReadErrorKind::Quarantined { chunk }, "q"),
            at: c,
            cut: false,
        };
        // The server names chunk 7; the other request is still in flight.
        let (after, dropped) = b.finish(0, c, c + 1, q(Some(7)));
        assert_eq!((after, dropped), (After::Stop, None));
        assert_eq!(b.plan(0, 1), Plan::Stop, "no new request while draining");
        b.verified(0, a);
        let (_, dropped) = b.finish(0, a, a + 1, Outcome::Done);
        assert_eq!(
            dropped.unwrap().1,
            DropReason::Quarantined { chunk: Some(7) }
        );
        assert!(matches!(b.verdict(), Verdict::Integrity { chunk: 7 }));
    }
}
