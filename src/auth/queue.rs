//! Fair queueing of password checks across clients.
//!
//! At most `slots` checks run at once (argon2 is CPU-bound). The others wait in one bounded
//! queue. When a slot comes free it goes to the client (an IPv4 address or IPv6 /64) with
//! the lowest load: its checks and its refused requests lately, each counting 1 and
//! decaying by half every [`HALF_LIFE`], plus the requests it has waiting now. A client not
//! heard from lately (a real user logging in: load 1, its own request) thus goes ahead of
//! every flooder and waits only for the checks running now, while flooders share what is
//! left about evenly (ties go to the less served, then to the earlier request). When the
//! queue is full, a newcomer whose load would be lower than the most loaded waiting
//! client's pushes out that client's latest request, which gets [`Busy`]; so no client
//! holds more than its share of the queue while others want it. One client may have at
//! most [`MAX_WAITING_PER_CLIENT`] requests waiting.
//!
//! Written here rather than taken from a crate: the well-kept async semaphores are FIFO,
//! and the order depends on this module's own accounting of each client. The queue holds
//! at most 32 requests per slot, so choosing by a scan is cheap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::keys::ClientKey;
use super::Clock;

/// How fast a client's recent checks and refusals are forgotten for its load.
const HALF_LIFE: Duration = Duration::from_secs(30);

/// Most checks one client may have waiting at once. A real client logs in with one
/// request (a few, with parallel connections); more from one address is a flood.
pub(super) const MAX_WAITING_PER_CLIENT: usize = 8;

/// Clients whose recent load is remembered; beyond this, the least loaded with nothing
/// waiting are forgotten (they then count as new: only an attacker with this many
/// addresses gains from it).
const MAX_TRACKED: usize = 10_000;

/// The queue is full, or the client already has its share waiting: answer `503`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Busy;

/// The bounded queue; clones share it.
#[derive(Debug, Clone)]
pub(super) struct FairQueue(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    slots: usize,
    max_waiting: usize,
    clock: Clock,
    state: Mutex<State>,
}

#[derive(Debug)]
struct Waiter {
    client: ClientKey,
    /// Arrival order; also the waiter's identity.
    seq: u64,
    wake: oneshot::Sender<Slot>,
}

/// One client's recent checks and refusals (decaying), and its requests waiting now.
#[derive(Debug, Clone, Copy)]
struct Share {
    recent: f64,
    at: Instant,
    waiting: usize,
}

impl Share {
    fn recent_at(&self, now: Instant) -> f64 {
        let age = now.saturating_duration_since(self.at).as_secs_f64();
        self.recent * 0.5f64.powf(age / HALF_LIFE.as_secs_f64())
    }

    /// Who goes first: lower load, then less recent use.
    fn rank(&self, now: Instant) -> (f64, f64) {
        let recent = self.recent_at(now);
        (recent + self.waiting as f64, recent)
    }

    fn add(&mut self, now: Instant) {
        self.recent = self.recent_at(now) + 1.0;
        self.at = now;
    }
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    /// In arrival order.
    waiting: Vec<Waiter>,
    clients: HashMap<ClientKey, Share>,
    next_seq: u64,
}

impl State {
    fn share(&mut self, client: ClientKey, now: Instant) -> &mut Share {
        self.clients.entry(client).or_insert(Share {
            recent: 0.0,
            at: now,
            waiting: 0,
        })
    }

    /// The client gets a check, or is refused: either adds to its load.
    fn charge(&mut self, client: ClientKey, now: Instant) {
        self.share(client, now).add(now);
        if self.clients.len() > MAX_TRACKED {
            self.clients
                .retain(|_, s| s.waiting > 0 || s.recent_at(now) >= 0.01);
        }
        if self.clients.len() > MAX_TRACKED {
            self.clients.retain(|_, s| s.waiting > 0);
        }
    }

    /// The rank of a waiting client (its share exists while it has requests waiting).
    fn rank_of(&self, client: ClientKey, now: Instant) -> (f64, f64) {
        self.clients
            .get(&client)
            .map_or((0.0, 0.0), |s| s.rank(now))
    }

    /// Queues `client`, pushing out the most loaded client's latest request if the queue
    /// is full and the newcomer would rank better; `Err(Busy)` (counted) if it cannot wait.
    fn enqueue(
        &mut self,
        client: ClientKey,
        wake: oneshot::Sender<Slot>,
        max_waiting: usize,
        now: Instant,
    ) -> Result<u64, Busy> {
        let share = *self.share(client, now);
        let mut refuse = share.waiting >= MAX_WAITING_PER_CLIENT;
        if !refuse && self.waiting.len() >= max_waiting {
            let joined = Share {
                waiting: share.waiting + 1,
                ..share
            };
            match self.worst(now) {
                Some((i, worst)) if joined.rank(now) < worst => {
                    let out = self.remove_at(i);
                    self.charge(out.client, now);
                }
                _ => refuse = true,
            }
        }
        if refuse {
            self.charge(client, now);
            return Err(Busy);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.share(client, now).waiting += 1;
        self.waiting.push(Waiter { client, seq, wake });
        Ok(seq)
    }

    /// The index and rank of the request to push out: the latest of the most loaded client.
    fn worst(&self, now: Instant) -> Option<(usize, (f64, f64))> {
        let mut worst: Option<(usize, (f64, f64))> = None;
        for (i, w) in self.waiting.iter().enumerate() {
            let rank = self.rank_of(w.client, now);
            // Later requests win ties: they are the latest of their client.
            if worst.is_none_or(|(_, r)| rank >= r) {
                worst = Some((i, rank));
            }
        }
        worst
    }

    fn remove_at(&mut self, i: usize) -> Waiter {
        let waiter = self.waiting.remove(i);
        if let Some(share) = self.clients.get_mut(&waiter.client) {
            share.waiting -= 1;
        }
        waiter
    }

    /// Takes the request `seq` out of the queue, if it is still there.
    fn remove(&mut self, seq: u64) {
        if let Some(i) = self.waiting.iter().position(|w| w.seq == seq) {
            self.remove_at(i);
        }
    }

    /// The next waiter to run (the least loaded client's earliest request), charged for
    /// its check.
    fn pop(&mut self, now: Instant) -> Option<Waiter> {
        let mut best: Option<(usize, (f64, f64))> = None;
        for (i, w) in self.waiting.iter().enumerate() {
            let rank = self.rank_of(w.client, now);
            // Earlier requests win ties.
            if best.is_none_or(|(_, r)| rank < r) {
                best = Some((i, rank));
            }
        }
        let waiter = self.remove_at(best?.0);
        self.charge(waiter.client, now);
        Some(waiter)
    }
}

impl FairQueue {
    /// `slots` checks at once (at least 1), at most `max_waiting` waiting; recent checks
    /// are timed by `clock`.
    pub(super) fn new(slots: usize, max_waiting: usize, clock: Clock) -> Self {
        FairQueue(Arc::new(Shared {
            slots: slots.max(1),
            max_waiting,
            clock,
            state: Mutex::new(State::default()),
        }))
    }

    /// Waits for a slot for `client`; `Err(Busy)` at once if it cannot queue, or later if
    /// it is pushed out. Dropping the future leaves the queue.
    pub(super) async fn acquire(&self, client: ClientKey) -> Result<Slot, Busy> {
        let now = self.0.clock.now();
        let (seq, woken) = {
            let mut state = self.0.state();
            if state.running < self.0.slots && state.waiting.is_empty() {
                state.running += 1;
                state.charge(client, now);
                return Ok(Slot::new(&self.0));
            }
            let (wake, woken) = oneshot::channel();
            (state.enqueue(client, wake, self.0.max_waiting, now)?, woken)
        };
        let _leave = Leave {
            shared: &self.0,
            seq,
        };
        // A dropped sender: pushed out.
        woken.await.map_err(|_| Busy)
    }

    /// (checks running, checks waiting) now.
    pub(super) fn load(&self) -> (usize, usize) {
        let state = self.0.state();
        (state.running, state.waiting.len())
    }

    /// The number of slots.
    #[cfg(test)]
    pub(super) fn slots(&self) -> usize {
        self.0.slots
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent, so a poisoned lock is still usable.
        crate::sync::lock(&self.state)
    }

    /// A slot was given back: hand it to the best waiter, or free it.
    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut state = self.state();
                match state.pop(self.clock.now()) {
                    Some(waiter) => waiter,
                    None => {
                        state.running -= 1;
                        return;
                    }
                }
            };
            // Outside the lock: a slot that comes back (its waiter is gone) must not be
            // released through `Drop` while we hold it; it goes to the next waiter instead.
            match next.wake.send(Slot::new(self)) {
                Ok(()) => return,
                Err(slot) => slot.keep(),
            }
        }
    }
}

/// Takes a request's ticket out of the queue when its future ends, however it ends.
struct Leave<'a> {
    shared: &'a Arc<Shared>,
    seq: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.shared.state().remove(self.seq);
    }
}

/// The right to run one check; dropping it hands the slot to the next waiter.
#[derive(Debug)]
pub(super) struct Slot {
    shared: Option<Arc<Shared>>,
}

impl Slot {
    fn new(shared: &Arc<Shared>) -> Slot {
        Slot {
            shared: Some(shared.clone()),
        }
    }

    /// Forget the slot without releasing it (the caller passes it on).
    fn keep(mut self) {
        self.shared = None;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn client(last: u8) -> ClientKey {
        ClientKey::of(IpAddr::from([198, 51, 100, last]))
    }

    fn ticket(state: &mut State, c: u8, max: usize, now: Instant) -> Result<u64, Busy> {
        // The receiver is dropped: these tests look at the order only.
        let (wake, _) = oneshot::channel();
        state.enqueue(client(c), wake, max, now)
    }

    fn order(state: &mut State, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(w) = state.pop(now) {
            let c = (1..=255).find(|&c| client(c) == w.client).unwrap();
            out.push(c);
        }
        out
    }

    #[test]
    fn a_client_not_checked_lately_goes_ahead_of_a_flooder() {
        let mut s = State::default();
        let t0 = Instant::now();
        // The flooder has had 30 checks in the last seconds.
        for i in 0..30 {
            s.charge(client(1), t0 + Duration::from_millis(i * 50));
        }
        let now = t0 + Duration::from_secs(2);
        for _ in 0..5 {
            ticket(&mut s, 1, 100, now).unwrap();
        }
        // Another flooder, less served, and the real user, last.
        s.charge(client(2), now);
        ticket(&mut s, 2, 100, now).unwrap();
        ticket(&mut s, 2, 100, now).unwrap();
        ticket(&mut s, 9, 100, now).unwrap();
        assert_eq!(order(&mut s, now), [9, 2, 2, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn equal_clients_alternate_and_keep_arrival_order() {
        let mut s = State::default();
        let now = Instant::now();
        for _ in 0..3 {
            ticket(&mut s, 1, 100, now).unwrap();
        }
        for _ in 0..3 {
            ticket(&mut s, 2, 100, now).unwrap();
        }
        ticket(&mut s, 3, 100, now).unwrap();
        // 3 has the least waiting; then 1 and 2 take turns (the less served first).
        assert_eq!(order(&mut s, now), [3, 1, 2, 1, 2, 1, 2]);
    }

    #[test]
    fn recent_checks_are_forgotten_by_half_every_half_life() {
        let mut s = State::default();
        let t0 = Instant::now();
        for _ in 0..8 {
            s.charge(client(1), t0);
        }
        let share = s.clients[&client(1)];
        assert!((share.recent_at(t0) - 8.0).abs() < 1e-9);
        assert!((share.recent_at(t0 + HALF_LIFE) - 4.0).abs() < 1e-9);
        assert!((share.recent_at(t0 + HALF_LIFE * 3) - 1.0).abs() < 1e-9);
        // Soon after, it is still behind a client with more requests waiting...
        let soon = t0 + HALF_LIFE;
        ticket(&mut s, 1, 100, soon).unwrap();
        for _ in 0..2 {
            ticket(&mut s, 2, 100, soon).unwrap();
        }
        assert_eq!(order(&mut s, soon), [2, 2, 1]);
        // ...but after a few minutes, ahead of it.
        let later = t0 + HALF_LIFE * 20;
        ticket(&mut s, 1, 100, later).unwrap();
        for _ in 0..2 {
            ticket(&mut s, 3, 100, later).unwrap();
        }
        assert_eq!(order(&mut s, later), [1, 3, 3]);
    }

    #[test]
    fn refusals_add_to_the_load() {
        let mut s = State::default();
        let now = Instant::now();
        ticket(&mut s, 1, 1, now).unwrap();
        for _ in 0..3 {
            assert_eq!(ticket(&mut s, 2, 1, now), Err(Busy));
        }
        assert!((s.clients[&client(2)].recent_at(now) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_full_queue_pushes_out_the_worst_waiter_for_a_better_newcomer() {
        let mut s = State::default();
        let now = Instant::now();
        s.charge(client(1), now);
        for _ in 0..4 {
            ticket(&mut s, 1, 4, now).unwrap();
        }
        // Full of the flooder's requests: the newcomer takes the flooder's last place.
        ticket(&mut s, 9, 4, now).unwrap();
        assert_eq!(s.waiting.len(), 4);
        assert_eq!(s.clients[&client(1)].waiting, 3);
        // Another flooder request ranks worse than everything waiting: refused.
        assert_eq!(ticket(&mut s, 1, 4, now), Err(Busy));
        // A tie with the worst is refused too (it came later).
        let mut t = State::default();
        ticket(&mut t, 1, 1, now).unwrap();
        assert_eq!(ticket(&mut t, 2, 1, now), Err(Busy));
    }

    #[test]
    fn one_client_may_not_hold_more_than_its_cap() {
        let mut s = State::default();
        let now = Instant::now();
        for _ in 0..MAX_WAITING_PER_CLIENT {
            ticket(&mut s, 1, 1000, now).unwrap();
        }
        assert_eq!(ticket(&mut s, 1, 1000, now), Err(Busy));
        assert!(ticket(&mut s, 2, 1000, now).is_ok());
    }

    #[test]
    fn tracked_clients_are_bounded() {
        let mut s = State::default();
        let t0 = Instant::now();
        for i in 0..=MAX_TRACKED as u32 + 10 {
            let c = ClientKey::of(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            s.charge(c, t0);
            assert!(s.clients.len() <= MAX_TRACKED + 1);
        }
    }

    #[tokio::test]
    async fn slots_go_to_the_best_waiter_and_cancelled_ones_leave() {
        let q = FairQueue::new(1, 10, Clock::system());
        let held = q.acquire(client(1)).await.unwrap();
        assert_eq!(q.load(), (1, 0));
        // The flooder queues twice, then a newcomer.
        let f1 = tokio::spawn({
            let q = q.clone();
            async move { q.acquire(client(1)).await.map(|_| 1) }
        });
        let f2 = tokio::spawn({
            let q = q.clone();
            async move { q.acquire(client(1)).await.map(|_| 1) }
        });
        while q.load().1 < 2 {
            tokio::task::yield_now().await;
        }
        let (tx, rx) = oneshot::channel();
        let q2 = q.clone();
        let honest = tokio::spawn(async move {
            let slot = q2.acquire(client(9)).await.unwrap();
            tx.send(()).unwrap();
            drop(slot);
        });
        while q.load().1 < 3 {
            tokio::task::yield_now().await;
        }
        // One flooder request gives up.
        f2.abort();
        assert!(f2.await.is_err());
        assert_eq!(q.load(), (1, 2));
        drop(held);
        // The newcomer ran first (the flooder had a check already), then the flooder.
        rx.await.unwrap();
        honest.await.unwrap();
        assert_eq!(f1.await.unwrap(), Ok(1));
        assert_eq!(q.load(), (0, 0));
    }

    #[tokio::test]
    async fn a_pushed_out_waiter_gets_busy_and_no_slot_leaks() {
        let q = FairQueue::new(1, 1, Clock::system());
        let held = q.acquire(client(1)).await.unwrap();
        let flooder = tokio::spawn({
            let q = q.clone();
            async move { q.acquire(client(1)).await.map(drop) }
        });
        while q.load().1 < 1 {
            tokio::task::yield_now().await;
        }
        let honest = tokio::spawn({
            let q = q.clone();
            async move { q.acquire(client(9)).await.map(drop) }
        });
        assert_eq!(flooder.await.unwrap(), Err(Busy));
        drop(held);
        assert_eq!(honest.await.unwrap(), Ok(()));
        assert_eq!(q.load(), (0, 0));
        // Free again: the next request runs at once.
        let again = q.acquire(client(1)).await.unwrap();
        assert_eq!(q.load(), (1, 0));
        drop(again);
        assert_eq!(q.load(), (0, 0));
    }
}
