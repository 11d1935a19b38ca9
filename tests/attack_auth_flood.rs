//! Password checking under a distributed flood (issue 12, item 4), through the
//! real binary over real TLS: 60 flooding source addresses (127.0.0.2–61; on
//! Linux all of 127.0.0.0/8 is loopback) against a server on 127.0.0.1, while
//! honest users log in from addresses of their own.
//!
//! Each test prints its figures: the honest logins' success rate and latency
//! during the flood, and how many guesses at one account were checked.

mod support;

use bytes::Bytes;
use distpoint::transfer::Protocol;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// Two floods at once would share the machine's cores: one at a time.
static ONE_FLOOD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Flooding addresses: 127.0.0.2 ..= 127.0.0.61.
const FLOODERS: u8 = 60;
/// Keep-alive connections per spraying address, each with a request always in flight.
const CONNS_PER_FLOODER: usize = 3;
/// Honest logins measured during a flood, each from a fresh address 127.0.0.100 + i.
const HONEST: usize = 30;
/// An honest login counts as a success if it gets `200` within this.
const HONEST_DEADLINE: Duration = Duration::from_secs(2);
/// The server's default `auth_failures_per_minute`.
const PER_MINUTE: u64 = 10;

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// An HTTP/1.1 connection over TLS whose TCP socket is bound to `from`.
async fn connect_from(
    from: IpAddr,
    server: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> std::io::Result<SendRequest<Empty<Bytes>>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let tcp = socket.connect(server).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = TlsConnector::from(tls).connect(name, tcp).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One GET with Basic credentials on an open connection: the status, or
/// `None` if the connection failed.
async fn get(
    sender: &mut SendRequest<Empty<Bytes>>,
    url: &str,
    user: &str,
    password: &str,
) -> Option<u16> {
    sender.ready().await.ok()?;
    let r = req("GET", url)
        .header("authorization", basic(user, password))
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(r).await.ok()?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

/// One login on a fresh connection from `from`: (status, time from connect
/// to the end of the response). Status 0: the connection failed.
async fn login_from(
    from: IpAddr,
    server: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    user: &str,
) -> (u16, Duration) {
    let started = Instant::now();
    let url = format!("https://{server}/a/f.txt");
    let once = async {
        let mut c = connect_from(from, server, tls).await.ok()?;
        get(&mut c, &url, user, PASSWORD).await
    };
    let status = tokio::time::timeout(Duration::from_secs(30), once).await;
    (status.ok().flatten().unwrap_or(0), started.elapsed())
}

/// What one flooding request tries: (user, password).
type Plan = fn(flooder: u8, n: u64) -> (String, String);

/// Flooders spraying unknown user names: every guess costs the server an
/// argon2 check of the default cost (the unknown-user dummy).
fn spray(flooder: u8, n: u64) -> (String, String) {
    (format!("spray{flooder}x{n}"), format!("guess{n}"))
}

/// Responses the flood got, by status, and the guesses at `alice` that were
/// checked (answered `401`).
#[derive(Default)]
struct FloodStats {
    statuses: Mutex<BTreeMap<u16, u64>>,
    alice_checked: AtomicU64,
    /// Flooders that had a guess at alice checked, and how many of them had
    /// their first one checked only after `PER_MINUTE` others: the server
    /// checks one guess from an address that never failed even at a guarded
    /// account (it may be the real user).
    alice_guessers: Mutex<(std::collections::HashSet<u8>, u64)>,
}

impl FloodStats {
    fn alice_guess_checked(&self, flooder: u8) {
        let mut guessers = self.alice_guessers.lock().unwrap();
        let n = self.alice_checked.fetch_add(1, Ordering::Relaxed) + 1;
        if guessers.0.insert(flooder) && n > PER_MINUTE {
            guessers.1 += 1;
        }
    }

    fn alice_late_first_guesses(&self) -> u64 {
        self.alice_guessers.lock().unwrap().1
    }
}

impl FloodStats {
    fn count(&self, status: u16) -> u64 {
        *self.statuses.lock().unwrap().get(&status).unwrap_or(&0)
    }

    fn summary(&self) -> String {
        let s = self.statuses.lock().unwrap();
        let parts: Vec<String> = s.iter().map(|(k, v)| format!("{v}×{k}")).collect();
        parts.join(", ")
    }
}

/// Flooding addresses with a few connections each, each sending its next request as soon as
/// the last one is answered (after a `429` or `503`, 100 ms later, so that
/// the flooders' own CPU use for cheap refusals does not starve the server of
/// the test machine's two cores).
struct Flood {
    stats: Arc<FloodStats>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Flood {
    /// Flooders `flooders` (127.0.0.2 + f each) with `conns` connections each, started
    /// once every connection is open, so that none gets a head start.
    async fn start(
        server: &Server,
        tls: Arc<rustls::ClientConfig>,
        flooders: std::ops::Range<u8>,
        conns: usize,
        plan: Plan,
    ) -> Flood {
        let stats = Arc::new(FloodStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let go = Arc::new(tokio::sync::Barrier::new(flooders.len() * conns + 1));
        let mut tasks = Vec::new();
        for f in flooders {
            for c in 0..conns {
                let (stats, stop, go, tls) = (stats.clone(), stop.clone(), go.clone(), tls.clone());
                let (addr, url) = (server.addr, server.url("/a/f.txt"));
                tasks.push(tokio::spawn(async move {
                    let from = loopback(2 + f);
                    let mut conn = connect_from(from, addr, tls.clone()).await.ok();
                    go.wait().await;
                    let mut n = c as u64;
                    while !stop.load(Ordering::Relaxed) {
                        let Some(sender) = conn.as_mut() else {
                            conn = connect_from(from, addr, tls.clone()).await.ok();
                            continue;
                        };
                        let (user, password) = plan(f, n);
                        n += conns as u64;
                        let Some(status) = get(sender, &url, &user, &password).await else {
                            conn = None;
                            continue;
                        };
                        *stats.statuses.lock().unwrap().entry(status).or_default() += 1;
                        if user == "alice" && status == 401 {
                            stats.alice_guess_checked(f);
                        }
                        if status == 429 || status == 503 {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }));
            }
        }
        go.wait().await;
        Flood { stats, stop, tasks }
    }

    /// Waits until the flood has had `n` answers `503` (the password-check
    /// queue was full that often).
    async fn wait_busy(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.stats.count(503) < n {
            assert!(
                Instant::now() < deadline,
                "the flood never filled the queue: {}",
                self.stats.summary()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stop(self) -> Arc<FloodStats> {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
        self.stats
    }
}

/// Honest logins during the flood: `HONEST` users, each once (so never from
/// the verification cache), each from an address of its own (127.0.0.100 +
/// i), one every 200 ms.
async fn honest_logins(server: &Server, tls: &Arc<rustls::ClientConfig>) -> Vec<(u16, Duration)> {
    let mut logins = Vec::new();
    for i in 0..HONEST {
        let (tls, addr, from) = (tls.clone(), server.addr, loopback(100 + i as u8));
        logins.push(tokio::spawn(async move {
            login_from(from, addr, tls, &format!("h{i}")).await
        }));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut out = Vec::new();
    for l in logins {
        out.push(l.await.unwrap());
    }
    out
}

/// The success share and latency percentiles of honest logins, for the output.
struct Honest {
    ok: usize,
    p50: Duration,
    p99: Duration,
    statuses: BTreeMap<u16, usize>,
}

impl Honest {
    fn of(logins: &[(u16, Duration)]) -> Honest {
        let ok = logins
            .iter()
            .filter(|(s, t)| *s == 200 && *t <= HONEST_DEADLINE)
            .count();
        let mut times: Vec<Duration> = logins.iter().map(|(_, t)| *t).collect();
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        let mut statuses = BTreeMap::new();
        for (s, _) in logins {
            *statuses.entry(*s).or_default() += 1;
        }
        Honest {
            ok,
            p50: at(0.5),
            p99: at(0.99),
            statuses,
        }
    }

    fn share(&self) -> f64 {
        self.ok as f64 / HONEST as f64
    }
}

impl std::fmt::Display for Honest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{HONEST} honest uncached logins from fresh addresses got 200 within {}s ({:.0} %); \
             latency p50 {} ms, p99 {} ms; statuses {:?}",
            self.ok,
            HONEST_DEADLINE.as_secs(),
            self.share() * 100.0,
            self.p50.as_millis(),
            self.p99.as_millis(),
            self.statuses
        )
    }
}

/// A site with `alice`, the honest users h0…h29 (all with the default argon2
/// cost) and one protected path; `limits` goes into `[server]`.
fn site(limits: &str) -> (Site, Server) {
    let site = Site::new();
    site.file("content/a/f.txt", b"for the honest\n");
    let mut body = site.head().replace("[tls]", &format!("{limits}[tls]"));
    let mut members = vec!["\"user:alice\"".to_string()];
    body += &site.user("alice");
    for i in 0..HONEST {
        body += &site.user(&format!("h{i}"));
        members.push(format!("\"user:h{i}\""));
    }
    body += &format!(
        "[[vpath]]\nurl = \"/a\"\ndir = \"content/a\"\nallow = [{}]\n",
        members.join(", ")
    );
    let server = site.start(&body);
    (site, server)
}

/// Waits (without blocking the runtime) until the server's log contains `needle`.
async fn wait_log(server: &Server, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while server.log_count(needle) == 0 {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_logins_get_through_a_sustained_60_address_flood() {
    let _one = ONE_FLOOD.lock().await;
    // A failure limit no flooder reaches, so that the queue stays full for the
    // whole test, as it would under an attacker with many more addresses.
    let (site, server) = site("auth_failures_per_minute = 10000\n");
    let tls = site.tls(false, &[Protocol::Http1]);
    let flood = Flood::start(&server, tls.clone(), 0..FLOODERS, CONNS_PER_FLOODER, spray).await;
    flood.wait_busy(50).await;
    let busy_before = flood.stats.count(503);
    let logins = honest_logins(&server, &tls).await;
    let busy_during = flood.stats.count(503) - busy_before;
    let stats = flood.stop();
    let honest = Honest::of(&logins);
    println!(
        "sustained 60-address flood (default argon2 cost): {honest}; \
         the flood got {} ({busy_during} busy answers while the honest logged in)",
        stats.summary()
    );
    assert!(
        busy_during > 0,
        "the queue must stay full during the measurement"
    );
    assert!(honest.share() >= 0.9, "{honest}");
}

/// Guessing at `alice`.
fn guess_alice(_: u8, n: u64) -> (String, String) {
    ("alice".into(), format!("guess{n}"))
}

/// Guessers at one account from five addresses (127.0.0.2–6), one guess at a
/// time each, then 55 more addresses spraying (127.0.0.7–61).
const GUESSERS: u8 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_at_one_account_from_many_addresses_stay_within_the_limit() {
    let _one = ONE_FLOOD.lock().await;
    let (site, server) = site("");
    let tls = site.tls(false, &[Protocol::Http1]);
    let guessers = Flood::start(&server, tls.clone(), 0..GUESSERS, 1, guess_alice).await;
    let checked = &guessers.stats.alice_checked;
    let deadline = Instant::now() + Duration::from_secs(60);
    while checked.load(Ordering::Relaxed) < PER_MINUTE {
        assert!(Instant::now() < deadline, "{}", guessers.stats.summary());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let guarded = wait_log(&server, "account guarded", Duration::from_secs(10)).await;
    let spray = Flood::start(
        &server,
        tls.clone(),
        GUESSERS..FLOODERS,
        CONNS_PER_FLOODER,
        spray,
    )
    .await;
    spray.wait_busy(50).await;
    // The real alice, from an address that never failed, uncached: let in.
    let (fresh, fresh_time) = login_from(loopback(200), server.addr, tls.clone(), "alice").await;
    // Now cached, from another fresh address: let in without a check.
    let (cached, _) = login_from(loopback(201), server.addr, tls.clone(), "alice").await;
    // The right (and cached) password from an address that guessed: refused unchecked.
    let (guesser, _) = login_from(loopback(2), server.addr, tls.clone(), "alice").await;
    let logins = honest_logins(&server, &tls).await;
    let (spray, guessers) = (spray.stop(), guessers.stop());
    let checked = guessers.alice_checked.load(Ordering::Relaxed);
    let late = guessers.alice_late_first_guesses();
    let honest = Honest::of(&logins);
    println!(
        "5 addresses guessing at alice, then 55 more spraying (default limits and argon2 \
         cost): {checked} guesses at alice checked (limit {PER_MINUTE} per minute; {late} of \
         them an address's first after the limit); the \
         guessers got {}; real alice from fresh addresses: {fresh} in {} ms, then {cached} \
         (cached); alice's password from a guessing address: {guesser}; {honest}; the \
         sprayers got {}",
        guessers.summary(),
        fresh_time.as_millis(),
        spray.summary()
    );
    assert!(guarded, "the account guard is logged");
    assert!(
        checked <= PER_MINUTE + late,
        "{checked} guesses at alice checked: at most the limit, plus one from each address \
         that had never failed when the account reached it"
    );
    assert!(
        late <= 1,
        "{late} addresses' first guesses came after the limit"
    );
    assert_eq!((fresh, cached, guesser), (200, 200, 429));
    // Sprayers that were refused as busy were locked out for it too.
    let log = server.log();
    let busy_in_lockout = |l: &&str| {
        let busy = l.split_once(" busy=").map(|(_, rest)| rest);
        let n = busy.and_then(|b| b.split(' ').next()?.parse::<u32>().ok());
        l.contains("client locked out") && n.is_some_and(|n| n > 0)
    };
    assert!(log.lines().any(|l| busy_in_lockout(&l)), "{log}");
    assert!(honest.share() >= 0.9, "{honest}");
}

/// The worst case for the account guard: every flooding address guesses at one
/// account from its first request on. Each address that never failed gets one
/// guess checked (it could be the real user); after that it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_addresses_guessing_at_one_account_get_one_guess_each_beyond_the_limit() {
    let _one = ONE_FLOOD.lock().await;
    let (site, server) = site("");
    let tls = site.tls(false, &[Protocol::Http1]);
    let guessers = Flood::start(&server, tls.clone(), 0..FLOODERS, 1, guess_alice).await;
    // Until every address had a guess checked and they were refused twice each.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let everyone =
            guessers.stats.alice_guessers.lock().unwrap().0.len() == usize::from(FLOODERS);
        if everyone && guessers.stats.count(429) >= 2 * u64::from(FLOODERS) {
            break;
        }
        assert!(Instant::now() < deadline, "{}", guessers.stats.summary());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (fresh, fresh_time) = login_from(loopback(200), server.addr, tls.clone(), "alice").await;
    let stats = guessers.stop();
    let checked = stats.alice_checked.load(Ordering::Relaxed);
    let late = stats.alice_late_first_guesses();
    println!(
        "60 addresses guessing at alice from their first request on: {checked} guesses checked \
         ({PER_MINUTE} within the limit, {late} first guesses of addresses that had not failed \
         yet); the guessers got {}; real alice from a fresh address: {fresh} in {} ms",
        stats.summary(),
        fresh_time.as_millis()
    );
    assert!(checked <= PER_MINUTE + late, "{checked} checked");
    assert_eq!(fresh, 200);
}
