//! `distpoint serve`: listeners, TLS handshakes, HTTP connections, limits and
//! graceful shutdown.
//!
//! accept (connection limit) → TLS handshake (timeout) → HTTP/1.1 or HTTP/2
//! by ALPN (hyper-util builders, one per protocol) → [`crate::pipeline::handle`].

use crate::config::{Config, ConfigError, Limits};
use crate::io::{Activity, ConnIo};
use crate::state::{certs, registry, ConnInfo, Metrics, Runtime, ServerState, TlsState};
use crate::{banner, devcerts, live, replica, sandbox, systemd, tls};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::CertificateDer;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Why the server could not start.
#[derive(Debug)]
pub enum ServerError {
    /// The config did not validate.
    Config(ConfigError),
    /// Dev certificates could not be made.
    DevCerts(devcerts::DevCertError),
    /// TLS material could not be used.
    Tls(tls::TlsError),
    /// A listen address could not be bound.
    Bind(SocketAddr, std::io::Error),
    /// The state folder could not be made.
    State(PathBuf, std::io::Error),
    /// The sandbox could not be set up.
    Sandbox(sandbox::SandboxError),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(e) => write!(f, "{e}"),
            ServerError::DevCerts(e) => write!(f, "dev certificates: {e}"),
            ServerError::Tls(e) => write!(f, "{e}"),
            ServerError::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
            ServerError::State(p, e) => write!(f, "state_dir {}: {e}", p.display()),
            ServerError::Sandbox(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Config(e) => Some(e),
            ServerError::DevCerts(e) => Some(e),
            ServerError::Tls(e) => Some(e),
            ServerError::Bind(_, e) | ServerError::State(_, e) => Some(e),
            ServerError::Sandbox(e) => Some(e),
        }
    }
}

/// Start-up before the async runtime exists: development certificates
/// (made or renewed), then the sandbox, which applies to the calling thread
/// and every thread started after it. Returns the rules in force, if any.
/// `origin` says how the config file was chosen; it is logged once the
/// config has set the log format.
pub fn prepare(config_path: &Path, origin: &str) -> Result<Option<sandbox::Rules>, ServerError> {
    let mut config = Config::load(config_path).map_err(ServerError::Config)?;
    crate::logging::set_format(config.log_format);
    info!("{origin}");
    if config.tls.dev_certs_missing() {
        make_dev_certs(&config)?;
        config = Config::load(config_path).map_err(ServerError::Config)?;
    } else if config.tls.dev_certs {
        renew_dev_certs(&config)?;
    }
    if !config.server.sandbox {
        warn!("server.sandbox = false: the process is not restricted to its folders");
        return Ok(None);
    }
    let rules = config.sandbox_rules();
    // The state folder must exist before it can be named in a rule.
    std::fs::create_dir_all(&config.server.state_dir)
        .map_err(|e| ServerError::State(config.server.state_dir.clone(), e))?;
    // So are serve-through paths' chunk caches (written beneath them).
    for vp in config.vpaths.iter().filter(|vp| vp.origin.is_some()) {
        std::fs::create_dir_all(&vp.dir).map_err(|e| ServerError::State(vp.dir.clone(), e))?;
    }
    // So must the audit folder (when it lies elsewhere). One that cannot be
    // made is left out: its writes fail, are logged, and serving goes on.
    if let Some(audit) = &config.audit {
        if let Err(e) = crate::audit::make_dir(&audit.dir) {
            warn!(dir = %audit.dir.display(), "cannot make the audit folder: {e}; audit events will be lost");
        }
    }
    match sandbox::restrict(&rules).map_err(ServerError::Sandbox)? {
        sandbox::Outcome::Enforced => {
            info!(read = rules.read.len(), "sandboxed (Landlock): reads beneath the configured folders only, writes beneath state_dir (and the audit folder) only");
            Ok(Some(rules))
        }
        sandbox::Outcome::Partial => {
            warn!("sandboxed (Landlock), partly: this kernel's Landlock does not restrict every kind of access");
            Ok(Some(rules))
        }
        sandbox::Outcome::Unsupported => {
            warn!("not sandboxed: this kernel has no Landlock (Linux 5.13+ with landlock enabled)");
            Ok(None)
        }
    }
}

/// Run the server until SIGTERM or SIGINT, then drain. `sandbox` is what
/// [`prepare`] put in force.
pub async fn run(config_path: &Path, sandbox: Option<sandbox::Rules>) -> Result<(), ServerError> {
    // Before anything else: SIGHUP's default action would end the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .expect("install SIGHUP handler");
    let config = Config::load(config_path).map_err(ServerError::Config)?;
    let tls_state = TlsState::new(&config.tls).map_err(ServerError::Tls)?;
    for w in config.warnings() {
        warn!("config: {w}");
    }
    let mut listeners = Vec::new();
    for addr in &config.server.listen {
        listeners.push((*addr, bind(*addr).map_err(|e| ServerError::Bind(*addr, e))?));
    }
    let bound: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|(_, l)| l.local_addr().ok())
        .collect();

    let limits = config.server.limits.clone();
    let (listen, desired) = tokio::sync::watch::channel(config.server.listen.clone());
    let runtime = Arc::new(Runtime {
        shared: Arc::new(ServerState::new(config).with_bound(bound.clone())),
        tls: tls_state,
        listen,
        sandbox,
    });
    runtime.publish_cert_expiry();
    let shutdown = CancellationToken::new();
    live::watch::spawn(runtime.clone(), hangup, shutdown.clone());
    // Replica paths: a sync at start, then on their interval and on SIGUSR1.
    let replication = replica::Replication::start(runtime.shared.clone(), shutdown.clone());
    // Installed before the banner: SIGUSR1's default action would end the process.
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .expect("install SIGUSR1 handler");
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            info!("SIGUSR1: syncing every replica now");
            replication.trigger_all();
        }
    });
    live::prehash::spawn(runtime.shared.clone(), shutdown.clone());
    // Announced only once config changes are watched.
    banner::print(&runtime.shared.config.load(), &bound);
    let tracker = TaskTracker::new();
    let state = runtime.shared.clone();
    let ctx = AcceptCtx {
        runtime,
        builders: Arc::new(Builders::new(&limits)),
        limits: limits.clone(),
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    };
    let mut running = std::collections::BTreeMap::new();
    for (addr, listener) in listeners {
        let stop = shutdown.child_token();
        tracker.spawn(accept_loop(listener, ctx.clone(), stop.clone()));
        running.insert(addr, stop);
    }
    // `listen` changes bind new addresses and close old ones while running.
    let binder = move |addr: SocketAddr| {
        let listener = bind(addr)?;
        let bound = listener.local_addr()?;
        let stop = ctx.shutdown.child_token();
        ctx.tracker
            .spawn(accept_loop(listener, ctx.clone(), stop.clone()));
        Ok((bound, stop))
    };
    tokio::spawn(live::listen::follow(
        desired,
        running,
        binder,
        shutdown.clone(),
    ));
    // Bound, watching, accepting: tell a service manager (Type=notify).
    let listening: Vec<String> = bound.iter().map(|a| a.to_string()).collect();
    notify(systemd::ready(&format!(
        "serving on {}",
        listening.join(", ")
    )));

    wait_for_signal().await;
    info!(
        grace_secs = limits.shutdown_grace.as_secs(),
        "shutting down: no new connections, draining transfers"
    );
    notify(systemd::stopping("draining transfers"));
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(limits.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            open = tracker.len(),
            "grace period over: closing the remaining connections"
        );
    }
    if !state.audit.flush(Duration::from_secs(2)) {
        warn!("the audit log did not take every event before the stop");
    }
    info!("stopped");
    Ok(())
}

/// The dev PKI files `[tls]` names (client files next to `cert`).
fn dev_files(config: &Config) -> devcerts::DevFiles {
    let t = &config.tls;
    let folder = t
        .cert
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    devcerts::DevFiles {
        ca: t.client_ca.clone().unwrap_or_else(|| folder.join("ca.crt")),
        server_cert: t.cert.clone(),
        server_key: t.key.clone(),
        client_cert: folder.join("client.crt"),
        client_key: folder.join("client.key"),
    }
}

/// `dev_certs = true` and the files exist: replace them if the dev
/// certificate has expired (a real certificate is never touched).
fn renew_dev_certs(config: &Config) -> Result<(), ServerError> {
    let files = dev_files(config);
    let renewal = devcerts::renew_expired(&files, std::time::SystemTime::now())
        .map_err(ServerError::DevCerts)?;
    if renewal == devcerts::Renewal::Renewed {
        warn!(
            cert = %files.server_cert.display(),
            ca = %files.ca.display(),
            "the development certificate had expired: made a new development CA, server and client \
             certificate; clients must trust the new CA"
        );
    }
    Ok(())
}

fn make_dev_certs(config: &Config) -> Result<(), ServerError> {
    warn!(
        "tls.dev_certs = true and certificate files are missing: creating a development CA, server and client \
         certificate. Never use these in production."
    );
    let files = dev_files(config);
    devcerts::write_dev_files(&files).map_err(ServerError::DevCerts)?;
    for p in files.all() {
        warn!(path = %p.display(), "wrote development certificate file");
    }
    Ok(())
}

/// A failed notification is logged; it never stops the server.
fn notify(sent: std::io::Result<()>) {
    if let Err(e) = sent {
        warn!("cannot notify the service manager: {e}");
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // `[::]` and `0.0.0.0` can then both be listed without a conflict.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a request head, so on
        // a keep-alive connection it also bounds the wait for the next request.
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        // Enough queued per stream to keep a 256 KiB write coalescer full.
        .max_send_buf_size(1024 * 1024);
    b
}

/// The HTTP builders, one per ALPN outcome.
///
/// The protocol TLS agreed on is the protocol spoken: on an `h2` connection
/// anything but the HTTP/2 preface is a connection error (RFC 9113 §3.4),
/// which the auto builder would instead read as HTTP/1.1 and answer with an
/// HTTP/1.1 `400`. Only a client that sent no ALPN at all gets the auto
/// builder, which tells the two apart by the preface.
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &Limits) -> Self {
        let auto = http_builder(limits);
        Builders {
            h1: auto.clone().http1_only(),
            h2: auto.clone().http2_only(),
            auto,
        }
    }

    fn for_alpn(&self, alpn: Option<&[u8]>) -> &auto::Builder<TokioExecutor> {
        match alpn {
            Some(b"h2") => &self.h2,
            Some(_) => &self.h1,
            None => &self.auto,
        }
    }
}

#[derive(Clone)]
struct AcceptCtx {
    runtime: Arc<Runtime>,
    builders: Arc<Builders>,
    limits: Limits,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// Accept on `listener` until `stop` (a child of the shutdown token, also
/// cancelled alone when the address leaves `server.listen`).
async fn accept_loop(listener: TcpListener, ctx: AcceptCtx, stop: CancellationToken) {
    loop {
        // At the connection limit, stop accepting: further clients wait in the
        // backlog. The slot is not held while waiting for a client: a slot
        // held by every idle listener would be one connection fewer per
        // listener.
        tokio::select! {
            p = ctx.slots.acquire() => drop(p.expect("semaphore never closed")),
            _ = stop.cancelled() => return,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        // Another listener may have taken the last slot meanwhile: then this
        // client waits, accepted but not served, for the next one.
        let permit = match ctx.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                p = ctx.slots.clone().acquire_owned() => p.expect("semaphore never closed"),
                _ = stop.cancelled() => return,
            },
        };
        // The TLS config in force now: certificates rotate between handshakes.
        let (acceptor, verifier) = ctx.runtime.tls.acceptor();
        let conn = Connection {
            runtime: ctx.runtime.clone(),
            acceptor,
            verifier,
            builders: ctx.builders.clone(),
            limits: ctx.limits.clone(),
            shutdown: ctx.shutdown.clone(),
        };
        let open = Open::new(&ctx.runtime.shared.metrics);
        ctx.tracker.spawn(async move {
            conn.serve(tcp, peer).await;
            drop((open, permit));
        });
    }
}

/// A connection counted as open in the metrics while this lives.
struct Open(prometheus_client::metrics::gauge::Gauge);

impl Open {
    fn new(metrics: &Metrics) -> Open {
        metrics.connections_accepted.inc();
        metrics.connections_open.inc();
        Open(metrics.connections_open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

struct Connection {
    runtime: Arc<Runtime>,
    acceptor: TlsAcceptor,
    /// The client verifier the handshake used.
    verifier: Arc<certs::Generation>,
    builders: Arc<Builders>,
    limits: Limits,
    shutdown: CancellationToken,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let mut tls =
            match tokio::time::timeout(self.limits.handshake_timeout, self.acceptor.accept(tcp))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(%peer, "TLS handshake failed: {e}");
                    self.runtime.shared.metrics.handshake_failures.inc();
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    self.runtime.shared.metrics.handshake_failures.inc();
                    return;
                }
            };
        // rustls stops taking plaintext at 64 KiB by default, which splits a
        // coalesced write into 64 KiB plus a tiny tail record and syscall.
        // Room for a whole coalesced write keeps every record full.
        tls.get_mut()
            .1
            .set_buffer_limit(Some(2 * crate::io::COALESCE_BYTES));
        let chain: Option<Vec<CertificateDer<'static>>> =
            tls.get_ref().1.peer_certificates().map(|c| c.to_vec());
        let cert_cn = chain
            .as_ref()
            .and_then(|c| c.first())
            .and_then(tls::subject_cn);
        let info = Arc::new(ConnInfo::new(peer, cert_cn));
        let close = info.close.clone();
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let activity = Activity::new();
        let io = TokioIo::new(ConnIo::new(tls, activity.clone()));
        let state = self.runtime.shared.clone();
        let requests = activity.clone();
        let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            requests.touch();
            let (state, info) = (state.clone(), info.clone());
            async move {
                drain_h2_request_body(&mut req).await;
                crate::pipeline::handle(state, info, req).await
            }
        });
        let builder = self.builders.for_alpn(alpn.as_deref());
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        // Only a connection identified by a certificate cares about CA changes.
        let mut verifier = chain.as_ref().map(|_| self.verifier.clone());
        let never = CancellationToken::new();
        loop {
            let ca_changed = verifier.as_ref().map_or(&never, |g| &g.replaced);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        debug!(%peer, "connection ended: {e}");
                    }
                }
                _ = activity.idle_timeout(self.limits.idle_timeout) => {
                    debug!(%peer, "idle timeout: closing connection");
                }
                _ = close.cancelled() => {
                    info!(%peer, "closing connection: a revoked transfer on it did not end in time");
                }
                _ = ca_changed.cancelled() => {
                    let now = self.runtime.tls.generation();
                    if now.trusts(chain.as_deref().unwrap_or_default()) {
                        verifier = Some(now);
                        continue;
                    }
                    info!(%peer, "closing connection: its client certificate is not trusted by the new client CA");
                    conn.as_mut().graceful_shutdown();
                    // Its running transfers were authorized by that certificate: they get
                    // the same short grace as any revoked transfer.
                    let _ = tokio::time::timeout(registry::CLOSE_GRACE, conn.as_mut()).await;
                }
                _ = self.shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            break;
        }
    }
}

/// Most request-body bytes read (and dropped) before an HTTP/2 request is answered.
const DRAIN_BYTES: usize = 64 * 1024;
/// Longest wait for the end of an HTTP/2 request body before answering anyway.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Read an HTTP/2 request's body to its end (bounded) before answering.
///
/// Nothing here reads request bodies, so without this the answer (a `405`
/// to a POST, a file to a GET whose HEADERS lacked END_STREAM) completes the
/// stream and h2 resets it with `NO_ERROR`. Frames the client sends after
/// that are dropped unchecked: malformed trailers, a second HEADERS, a
/// `content-length` that DATA contradicts, a window overflow — all of which
/// RFC 9113 says must be a stream error (`PROTOCOL_ERROR`,
/// `FLOW_CONTROL_ERROR`; h2spec 6.9.1/3, 8.1/1, 8.1.2.1/3, 8.1.2.6/1–2).
/// Keeping the stream open until its end lets h2 see and refuse them. Real
/// clients send GET and HEAD with END_STREAM on HEADERS, so they never wait
/// here; a body larger than [`DRAIN_BYTES`] or slower than [`DRAIN_WAIT`] is
/// answered (and reset) as before.
async fn drain_h2_request_body(req: &mut hyper::Request<hyper::body::Incoming>) {
    use http_body::Body as _;
    use http_body_util::BodyExt as _;
    if req.version() != http::Version::HTTP_2 || req.body().is_end_stream() {
        return;
    }
    let body = req.body_mut();
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_WAIT, async {
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.len());
            if n >= left {
                return;
            }
            left -= n;
        }
    })
    .await;
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
