//! The authenticator as a whole: parsing, the cache, the queue and both throttles, with a
//! clock the tests move by hand.

use super::basic::tests::cheap_hash;
use super::*;
use ::http::HeaderValue;
use base64::Engine as _;
use std::collections::BTreeMap;

const PW: &str = "pa:ss word";
const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

fn basic(user: &str, password: &str) -> HeaderValue {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {token}")).unwrap()
}

fn dir_with(users: &[(&str, &str)]) -> Directory {
    let users = users
        .iter()
        .map(|(u, h)| (u.to_string(), h.to_string()))
        .collect();
    Directory::new(users, BTreeMap::new())
}

fn auth() -> Authenticator {
    Authenticator::new(Duration::from_secs(60), 100, 2)
}

#[tokio::test]
async fn no_header_gives_the_certificate_or_anonymous() {
    let a = auth();
    let d = dir_with(&[]);
    let id = a.authenticate(PEER, &d, None, None).await.unwrap();
    assert!(id.is_anonymous());
    let id = a
        .authenticate(PEER, &d, None, Some("client01"))
        .await
        .unwrap();
    assert_eq!(
        id,
        Identity {
            user: None,
            cert: Some("client01".into())
        }
    );
    assert_eq!(a.stats().verifications, 0);
}

#[tokio::test]
async fn malformed_header_is_refused_even_with_a_certificate() {
    let a = auth();
    let d = dir_with(&[("alice", &cheap_hash(PW))]);
    for raw in ["Bearer x", "YWxpY2U6cHc=", "Basic !!", "Basic YWxpY2U="] {
        let v = HeaderValue::from_str(raw).unwrap();
        let got = a.authenticate(PEER, &d, Some(&v), Some("client01")).await;
        assert_eq!(got, Err(AuthError::Malformed), "{raw}");
    }
    // Parsing failures never reach argon2.
    assert_eq!(a.stats().verifications, 0);
}

#[tokio::test]
async fn unknown_user_still_spends_a_verification() {
    let a = auth();
    let d = dir_with(&[("alice", &cheap_hash(PW))]);
    let got = a
        .authenticate(PEER, &d, Some(&basic("mallory", PW)), None)
        .await;
    assert_eq!(got, Err(AuthError::UnknownUser));
    assert_eq!(a.stats().verifications, 1);
    // Case matters: "Alice" is someone else.
    let got = a
        .authenticate(PEER, &d, Some(&basic("Alice", PW)), None)
        .await;
    assert_eq!(got, Err(AuthError::UnknownUser));
}

#[tokio::test]
async fn wrong_or_empty_password_is_refused_even_with_a_certificate() {
    let a = auth();
    let d = dir_with(&[("alice", &cheap_hash(PW))]);
    for wrong in ["pa", "pa:ss", "pa:ss word ", ""] {
        let got = a
            .authenticate(PEER, &d, Some(&basic("alice", wrong)), Some("client01"))
            .await;
        assert_eq!(got, Err(AuthError::WrongPassword), "{wrong:?}");
    }
    // Failures are not cached.
    assert_eq!(a.stats().cached, 0);
}

#[tokio::test]
async fn password_with_colon_works_and_keeps_the_certificate() {
    let a = auth();
    let d = dir_with(&[("alice", &cheap_hash(PW))]);
    let id = a
        .authenticate(PEER, &d, Some(&basic("alice", PW)), None)
        .await
        .unwrap();
    assert_eq!(
        id,
        Identity {
            user: Some("alice".into()),
            cert: None
        }
    );
    let id = a
        .authenticate(PEER, &d, Some(&basic("alice", PW)), Some("c1"))
        .await
        .unwrap();
    assert_eq!(id.to_string(), "user:alice+cert:c1");
}

#[tokio::test]
async fn unusable_hash_in_directory_is_a_wrong_password() {
    let a = auth();
    let d = dir_with(&[(
        "alice",
        "$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
    )]);
    let got = a
        .authenticate(PEER, &d, Some(&basic("alice", PW)), None)
        .await;
    assert_eq!(got, Err(AuthError::WrongPassword));
}

#[tokio::test]
async fn cache_hit_does_not_verify_again() {
    let a = auth();
    let d = dir_with(&[("alice", &cheap_hash(PW))]);
    for _ in 0..3 {
        a.authenticate(PEER, &d, Some(&basic("alice", PW)), None)
            .await
            .unwrap();
    }
    let s = a.stats();
    assert_eq!((s.verifications, s.cache_hits, s.cached), (1, 2, 1));
    // A wrong password is not answered from the cache.
    let got = a
        .authenticate(PEER, &d, Some(&basic("alice", "nope")), None)
        .await;
    assert_eq!(got, Err(AuthError::WrongPassword));
    assert_eq!(a.stats().verifications, 2);
}

#[tokio::test]
async fn changed_hash_invalidates_and_removed_user_is_refused() {
    let a = auth();
    let old = dir_with(&[("alice", &cheap_hash(PW))]);
    a.authenticate(PEER, &old, Some(&basic("alice", PW)), None)
        .await
        .unwrap();
    // Password changed in the config: the old password no longer works.
    let new = dir_with(&[("alice", &cheap_hash("new password"))]);
    let got = a
        .authenticate(PEER, &new, Some(&basic("alice", PW)), None)
        .await;
    assert_eq!(got, Err(AuthError::WrongPassword));
    a.authenticate(PEER, &new, Some(&basic("alice", "new password")), None)
        .await
        .unwrap();
    // Same password re-hashed (new salt): verified afresh, not served from the cache.
    let rehashed = dir_with(&[("alice", &cheap_hash(PW))]);
    a.authenticate(PEER, &rehashed, Some(&basic("alice", PW)), None)
        .await
        .unwrap();
    assert_eq!(a.stats().verifications, 4);
    assert_eq!(a.stats().cache_hits, 0);
    // User removed: refused although a success is still cached for the old snapshot.
    let got = a
        .authenticate(PEER, &dir_with(&[]), Some(&basic("alice", PW)), None)
        .await;
    assert_eq!(got, Err(AuthError::UnknownUser));
    assert_eq!(a.stats().cache_hits, 0);
}

#[tokio::test]
async fn errors_never_show_the_password_or_header() {
    let a = auth();
    let secret = "hunter2-Secret";
    let d = dir_with(&[("alice", &cheap_hash(PW))]);
    let header = basic("alice", secret);
    let token = header.to_str().unwrap()["Basic ".len()..].to_owned();
    let mut errors = vec![AuthError::Malformed, AuthError::Busy];
    errors.push(
        a.authenticate(PEER, &d, Some(&header), None)
            .await
            .unwrap_err(),
    );
    errors.push(
        a.authenticate(PEER, &d, Some(&basic("bob", secret)), None)
            .await
            .unwrap_err(),
    );
    assert!(errors.contains(&AuthError::WrongPassword) && errors.contains(&AuthError::UnknownUser));
    for e in errors {
        let shown = format!("{e} {e:?}");
        assert!(
            !shown.contains(secret) && !shown.contains(&token),
            "{shown}"
        );
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(AuthError::UnknownUser.to_string(), "unknown user");
}
/// A clock that moves only when told.
#[derive(Clone)]
struct ManualClock(Arc<std::sync::Mutex<Instant>>);

impl ManualClock {
    fn new() -> ManualClock {
        ManualClock(Arc::new(std::sync::Mutex::new(Instant::now())))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }

    fn clock(&self) -> Clock {
        let now = self.0.clone();
        Clock(Arc::new(move || *now.lock().unwrap()))
    }
}

/// An authenticator on `clock` with `slots` verification slots and `limit` failures per
/// minute (lock-outs up to 300 s).
fn auth_at(clock: &ManualClock, slots: usize, limit: u32) -> Authenticator {
    Authenticator::with_clock(Duration::from_secs(60), 100, slots, clock.clock()).with_throttle(
        ThrottleSettings {
            failures_per_minute: limit,
            lockout_max: Duration::from_secs(300),
            max_clients: 100,
        },
    )
}

fn peer(last: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, last])
}

/// Takes one verification slot, as a check running elsewhere would.
async fn hold_slot(a: &Authenticator) -> queue::Slot {
    a.queue
        .acquire(keys::ClientKey::of(peer(250)))
        .await
        .unwrap()
}

/// Waits until the stats say `done`.
async fn wait_for(a: &Authenticator, done: impl Fn(AuthStats) -> bool) {
    for _ in 0..1000 {
        if done(a.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("not reached: {:?}", a.stats());
}

/// Waits until `n` requests wait for a slot.
async fn wait_for_waiting(a: &Authenticator, n: usize) {
    wait_for(a, |s| s.waiting == n).await;
}

#[tokio::test]
async fn cached_success_expires_after_the_ttl() {
    let clock = ManualClock::new();
    let a = Authenticator::with_clock(Duration::from_secs(60), 100, 1, clock.clock());
    let d = dir_with(&[("alice", &cheap_hash(PW))]);
    let alice = basic("alice", PW);
    a.authenticate(PEER, &d, Some(&alice), None).await.unwrap();
    clock.advance(Duration::from_secs(59));
    a.authenticate(PEER, &d, Some(&alice), None).await.unwrap();
    assert_eq!((a.stats().verifications, a.stats().cache_hits), (1, 1));
    clock.advance(Duration::from_secs(1));
    a.authenticate(PEER, &d, Some(&alice), None).await.unwrap();
    assert_eq!((a.stats().verifications, a.stats().cache_hits), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_when_the_queue_is_full_of_clients_as_new_as_this_one() {
    let a = Arc::new(Authenticator::new(Duration::from_secs(60), 100, 1));
    let d = Arc::new(dir_with(&[("alice", &cheap_hash(PW))]));
    // Warm the cache, then occupy the only slot so every verification has to queue.
    a.authenticate(PEER, &d, Some(&basic("alice", PW)), None)
        .await
        .unwrap();
    let held = hold_slot(&a).await;
    let queued: Vec<_> = (0..MAX_WAITING_PER_SLOT)
        .map(|i| {
            let (a, d) = (a.clone(), d.clone());
            tokio::spawn(async move {
                let wrong = format!("wrong{i}");
                // One client each, none served before: all rank like a newcomer.
                let peer = IpAddr::from([198, 51, 100, i as u8]);
                a.authenticate(peer, &d, Some(&basic("bob", &wrong)), None)
                    .await
            })
        })
        .collect();
    wait_for_waiting(&a, MAX_WAITING_PER_SLOT).await;
    let other = IpAddr::from([203, 0, 113, 1]);
    let got = a
        .authenticate(other, &d, Some(&basic("alice", "x")), None)
        .await;
    assert_eq!(got, Err(AuthError::Busy));
    assert_eq!(a.stats().busy, 1);
    // A cached success needs no slot, so it still gets through.
    a.authenticate(other, &d, Some(&basic("alice", PW)), None)
        .await
        .unwrap();
    // Releasing the slot lets every queued request finish normally.
    drop(held);
    for q in queued {
        assert_eq!(q.await.unwrap(), Err(AuthError::UnknownUser));
    }
    let s = a.stats();
    assert_eq!((s.waiting, s.running), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_takes_the_place_of_a_flooders_last_waiting_guess() {
    let a = Arc::new(Authenticator::new(Duration::from_secs(60), 100, 1));
    let d = Arc::new(dir_with(&[("alice", &cheap_hash(PW))]));
    let held = hold_slot(&a).await;
    // Four flooding addresses fill the queue with eight guesses each.
    let flood: Vec<_> = (0..MAX_WAITING_PER_SLOT)
        .map(|i| {
            let (a, d) = (a.clone(), d.clone());
            tokio::spawn(async move {
                let peer = peer(1 + (i % 4) as u8);
                let user = format!("spray{i}");
                a.authenticate(peer, &d, Some(&basic(&user, "x")), None)
                    .await
            })
        })
        .collect();
    wait_for_waiting(&a, MAX_WAITING_PER_SLOT).await;
    // Each has its cap waiting: a further request is refused.
    let got = a
        .authenticate(peer(1), &d, Some(&basic("spray", "x")), None)
        .await;
    assert_eq!(got, Err(AuthError::Busy));
    // The real user, from an address with nothing waiting, gets a place and logs in.
    let alice = {
        let (a, d) = (a.clone(), d.clone());
        tokio::spawn(async move {
            a.authenticate(peer(9), &d, Some(&basic("alice", PW)), None)
                .await
        })
    };
    wait_for(&a, |s| s.busy == 2).await;
    drop(held);
    assert_eq!(alice.await.unwrap().unwrap().user.as_deref(), Some("alice"));
    let mut busy = 0;
    // It pushed out the latest guess of one flooder, which was answered Busy.
    for f in flood {
        match f.await.unwrap() {
            Err(AuthError::Busy) => busy += 1,
            other => assert_eq!(other, Err(AuthError::UnknownUser)),
        }
    }
    assert_eq!(busy, 1, "exactly one flooder guess made room");
    assert_eq!(a.stats().busy, 2);
}

#[tokio::test]
async fn a_cancelled_waiter_leaves_the_queue() {
    let a = Authenticator::new(Duration::from_secs(60), 100, 1);
    let d = dir_with(&[("alice", &cheap_hash(PW))]);
    let held = hold_slot(&a).await;
    let waited = tokio::time::timeout(
        Duration::from_millis(50),
        a.authenticate(PEER, &d, Some(&basic("alice", PW)), None),
    )
    .await;
    assert!(waited.is_err(), "should still be queued");
    assert_eq!(a.stats().waiting, 0);
    drop(held);
    a.authenticate(PEER, &d, Some(&basic("alice", PW)), None)
        .await
        .unwrap();
    assert_eq!(a.stats().running, 0);
}

#[tokio::test]
async fn repeated_failures_lock_the_client_out_without_argon2() {
    let clock = ManualClock::new();
    let a = Authenticator::with_clock(Duration::from_secs(60), 100, 2, clock.clock())
        .with_throttle(ThrottleSettings {
            failures_per_minute: 3,
            lockout_max: Duration::from_secs(1),
            max_clients: 10,
        });
    let d = dir_with(&[("alice", &cheap_hash(PW))]);
    let right = basic("alice", PW);
    a.authenticate(PEER, &d, Some(&right), None).await.unwrap();
    for (user, pw) in [("alice", "x"), ("mallory", PW), ("bob", "y")] {
        let got = a.authenticate(PEER, &d, Some(&basic(user, pw)), None).await;
        assert!(got.is_err_and(|e| !matches!(e, AuthError::Throttled { .. })));
    }
    let before = a.stats();
    assert_eq!((before.lockouts, before.failing_clients), (1, 1));
    // Locked: the right password is refused too, even though it is cached.
    let got = a.authenticate(PEER, &d, Some(&right), None).await;
    assert!(
        matches!(got, Err(AuthError::Throttled { retry_after }) if retry_after <= Duration::from_secs(1))
    );
    let after = a.stats();
    assert_eq!(after.verifications, before.verifications, "no argon2");
    assert_eq!((after.cache_hits, after.throttled), (0, 1));
    // Malformed headers and requests without Basic are not throttled.
    let bad = HeaderValue::from_static("Basic !!");
    assert_eq!(
        a.authenticate(PEER, &d, Some(&bad), None).await,
        Err(AuthError::Malformed)
    );
    assert!(a.authenticate(PEER, &d, None, Some("c1")).await.is_ok());
    // Another client is not affected.
    let other = IpAddr::from([192, 0, 2, 8]);
    a.authenticate(other, &d, Some(&right), None).await.unwrap();
    // The lock-out ends by itself.
    clock.advance(Duration::from_secs(1));
    a.authenticate(PEER, &d, Some(&right), None).await.unwrap();
}

#[tokio::test]
async fn an_account_over_the_limit_refuses_clients_that_failed_but_not_the_others() {
    let clock = ManualClock::new();
    let a = auth_at(&clock, 2, 3);
    let d = dir_with(&[("alice", &cheap_hash(PW)), ("bob", &cheap_hash(PW))]);
    let (right, wrong) = (basic("alice", PW), basic("alice", "guess"));
    // Alice logs in from home: cached for 60 s.
    a.authenticate(peer(100), &d, Some(&right), None)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(50));
    // Three guessers, one failure each: no client is near its own limit.
    for g in 1..=3 {
        let got = a.authenticate(peer(g), &d, Some(&wrong), None).await;
        assert_eq!(got, Err(AuthError::WrongPassword));
    }
    let s = a.stats();
    assert_eq!((s.account_guards, s.lockouts, s.verifications), (1, 0, 4));
    // Guarded for the rest of the minute of its failures: a guesser is refused unchecked,
    // with the right password too, cached or not.
    for header in [&wrong, &right] {
        let got = a.authenticate(peer(1), &d, Some(header), None).await;
        assert_eq!(
            got,
            Err(AuthError::AccountGuarded {
                retry_after: Duration::from_secs(60)
            })
        );
    }
    let s = a.stats();
    assert_eq!(
        (s.verifications, s.cache_hits, s.account_refusals),
        (4, 0, 2)
    );
    // Any other account is open to it.
    let got = a
        .authenticate(peer(1), &d, Some(&basic("bob", PW)), None)
        .await;
    assert_eq!(got.unwrap().user.as_deref(), Some("bob"));
    // The real user from an address that never failed: a cache hit...
    let id = a.authenticate(peer(101), &d, Some(&right), None).await;
    assert_eq!(id.unwrap().user.as_deref(), Some("alice"));
    // ...and, once the cache has expired, a real check.
    clock.advance(Duration::from_secs(11));
    let id = a.authenticate(peer(102), &d, Some(&right), None).await;
    assert_eq!(id.unwrap().user.as_deref(), Some("alice"));
    assert_eq!(a.stats().verifications, 6);
    // A fresh address that guesses wrong is checked once, and then counts as failed.
    let got = a.authenticate(peer(4), &d, Some(&wrong), None).await;
    assert_eq!(got, Err(AuthError::WrongPassword));
    let got = a.authenticate(peer(4), &d, Some(&right), None).await;
    assert!(matches!(got, Err(AuthError::AccountGuarded { .. })));
    assert_eq!(a.stats().verifications, 7);
    // The minute is over: clients that failed may try again (each under its own limit).
    clock.advance(Duration::from_secs(50));
    let id = a.authenticate(peer(1), &d, Some(&right), None).await;
    assert_eq!(id.unwrap().user.as_deref(), Some("alice"));
}

#[tokio::test]
async fn guesses_at_one_account_from_many_addresses_stop_at_the_limit() {
    let clock = ManualClock::new();
    let a = auth_at(&clock, 2, 10);
    let d = dir_with(&[("alice", &cheap_hash(PW))]);
    // Five addresses take turns guessing, as fast as they can, for a minute.
    let mut checked = 0;
    for round in 0..60 {
        for g in 1..=5 {
            let guess = basic("alice", &format!("guess{round}x{g}"));
            match a.authenticate(peer(g), &d, Some(&guess), None).await {
                Err(AuthError::WrongPassword) => checked += 1,
                Err(AuthError::AccountGuarded { .. }) => {}
                other => panic!("{other:?}"),
            }
        }
        clock.advance(Duration::from_millis(900));
    }
    assert_eq!(checked, 10, "the limit per minute, not 10 per address");
    assert_eq!(a.stats().lockouts, 0, "no client reached its own limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_that_only_gets_busy_is_locked_out() {
    let clock = ManualClock::new();
    let a = Arc::new(auth_at(&clock, 1, 3));
    let d = Arc::new(dir_with(&[("alice", &cheap_hash(PW))]));
    let held = hold_slot(&a).await;
    // The flooder fills its share of the queue...
    let queued: Vec<_> = (0..queue::MAX_WAITING_PER_CLIENT)
        .map(|i| {
            let (a, d) = (a.clone(), d.clone());
            tokio::spawn(async move {
                let guess = basic("alice", &format!("guess{i}"));
                a.authenticate(peer(1), &d, Some(&guess), None).await
            })
        })
        .collect();
    wait_for_waiting(&a, queue::MAX_WAITING_PER_CLIENT).await;
    // ...and every further request of it is busy; three of those lock it out.
    for _ in 0..3 {
        let got = a
            .authenticate(peer(1), &d, Some(&basic("alice", "more")), None)
            .await;
        assert_eq!(got, Err(AuthError::Busy));
    }
    let got = a
        .authenticate(peer(1), &d, Some(&basic("alice", PW)), None)
        .await;
    assert!(matches!(got, Err(AuthError::Throttled { .. })), "{got:?}");
    // Its queued guesses are refused when their turn comes, without argon2.
    drop(held);
    for q in queued {
        assert!(matches!(q.await.unwrap(), Err(AuthError::Throttled { .. })));
    }
    let s = a.stats();
    assert_eq!((s.verifications, s.busy, s.lockouts), (0, 3, 1));
    // Other clients are not affected.
    let id = a
        .authenticate(peer(2), &d, Some(&basic("alice", PW)), None)
        .await;
    assert_eq!(id.unwrap().user.as_deref(), Some("alice"));
}

#[test]
fn defaults() {
    let a = Authenticator::default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(a.queue.slots(), cores);
    assert_eq!(a.stats(), AuthStats::default());
    // Zero concurrency would deadlock every request; it means one.
    assert_eq!(Authenticator::new(Duration::ZERO, 0, 0).queue.slots(), 1);
}
