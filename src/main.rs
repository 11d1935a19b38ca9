//! The `distpoint` command line. It only parses arguments and calls the library.

use clap::{Parser, Subcommand};
use distpoint::client::bench::BenchOptions;
use distpoint::client::fetch::FetchOptions;
use distpoint::client::fetch_error::FetchError;
use distpoint::client::package::PackageOptions;
use distpoint::client::{ClientError, ClientOptions, Protocol};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "distpoint",
    version,
    about = "A secure software-distribution point"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Config file.
        #[arg(long, default_value = "config/distpoint.toml")]
        config: PathBuf,
    },
    /// Validate a config file and print who may read each path.
    CheckConfig {
        /// Config file.
        #[arg(long, default_value = "config/distpoint.toml")]
        config: PathBuf,
    },
    /// Read a password from stdin and print an argon2id hash for `password_hash`.
    HashPassword,
    /// Download a file (or a whole package), verifying every chunk against
    /// its manifest, from one or more sources; resumable.
    Fetch(FetchArgs),
    /// Benchmark transfers from a distribution point: throughput, requests/s, latency.
    Bench {
        /// URLs to request (round-robin).
        #[arg(required = true)]
        urls: Vec<String>,
        /// Connections, each with one request in flight.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Stop after this many requests.
        #[arg(long)]
        requests: Option<u64>,
        /// Request random ranges of this many bytes instead of whole files.
        #[arg(long)]
        range_size: Option<u64>,
        /// Verify every chunk against the file's manifest, as fetch does.
        #[arg(long)]
        verify: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Hash a package folder and write DIR/.distpoint/manifest.json (and its
    /// signature with --key); print the package hash and each file's root.
    Publish {
        /// The package folder.
        #[arg(required_unless_present = "gen_key")]
        dir: Option<PathBuf>,
        /// Chunk size in bytes.
        #[arg(long, default_value_t = distpoint::config::DEFAULT_CHUNK_SIZE)]
        chunk_size: u64,
        /// Ed25519 private key (PKCS#8 PEM) to sign the manifest with.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Make a key pair instead: FILE (private) and FILE.pub (public).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["dir", "key"])]
        gen_key: Option<PathBuf>,
    },
    /// Certificate helpers.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

/// Connection options shared by `fetch` and `bench`: trust, identity, protocol.
#[derive(clap::Args)]
struct TlsArgs {
    /// Offer HTTP/1.1 only.
    #[arg(long, conflicts_with = "http2")]
    http1: bool,
    /// Offer HTTP/2 only.
    #[arg(long)]
    http2: bool,
    /// CA certificate(s) to trust, PEM (default: the system bundle).
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Client certificate chain, PEM.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Client private key, PEM.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// HTTP Basic user; the password comes from DISTPOINT_PASSWORD.
    #[arg(long)]
    user: Option<String>,
}

impl TlsArgs {
    fn options(self) -> ClientOptions {
        let protocols = match (self.http1, self.http2) {
            (true, _) => vec![Protocol::Http1],
            (_, true) => vec![Protocol::Http2],
            _ => vec![Protocol::Http2, Protocol::Http1],
        };
        ClientOptions {
            cacert: self.cacert,
            cert: self.cert,
            key: self.key,
            password: self
                .user
                .as_ref()
                .and_then(|_| std::env::var("DISTPOINT_PASSWORD").ok()),
            user: self.user,
            protocols,
        }
    }
}

/// `distpoint fetch`'s arguments.
#[derive(clap::Args)]
struct FetchArgs {
    /// The file's https:// URL: the first source and, without --manifest,
    /// where the manifest is asked for (URL?manifest).
    #[arg(required_unless_present = "package", conflicts_with = "package")]
    url: Option<String>,
    /// Fetch a whole published package from this URL prefix instead.
    #[arg(long, value_name = "URL_PREFIX")]
    package: Option<String>,
    /// Another source of the same file (with --package: of the same
    /// package, a URL prefix); repeatable. Any HTTPS server that answers
    /// ranged GETs will do.
    #[arg(long, value_name = "URL")]
    mirror: Vec<String>,
    /// The manifest from this file or https:// URL instead of the server's
    /// own (then URL may be a plain server). With --package: the package's
    /// manifest.json (its signature is FILE_OR_URL.sig).
    #[arg(long, value_name = "FILE_OR_URL")]
    manifest: Option<String>,
    /// Where to put the verified file (with --package: the folder).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// The manifest root the file must have (with --package: the package
    /// hash), 64 hex digits, told out of band.
    #[arg(long)]
    expect: Option<String>,
    /// With --package: the publisher's Ed25519 public key (PEM) the
    /// package manifest must be signed with.
    #[arg(long, requires = "package")]
    publisher_key: Option<PathBuf>,
    /// Parallel connections per source (HTTP/1.1 is offered first, unless
    /// --http1 or --http2 is given).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Limit the download rate, bytes per second (all sources together).
    #[arg(long)]
    limit_rate: Option<u64>,
    /// Print a JSON summary instead of the result line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

/// `distpoint fetch`: one file or a package, the result line or JSON, the exit code.
fn fetch(args: FetchArgs) -> ExitCode {
    use distpoint::transfer::RateLimit;
    let json = args.json;
    // One request at a time per connection: HTTP/2's multiplexing buys
    // nothing, and HTTP/1.1 costs less CPU at both ends (measured: about a
    // fifth less at the server, a twentieth at the client). Offered first
    // unless a protocol is forced.
    let prefer_http1 = !args.tls.http1 && !args.tls.http2;
    let mut client = args.tls.options();
    if prefer_http1 {
        client.protocols = vec![Protocol::Http1, Protocol::Http2];
    }
    let rate = args
        .limit_rate
        .map(|r| std::sync::Arc::new(RateLimit::new(r)));
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = match (args.url, args.package) {
        (_, Some(url_prefix)) => {
            let opts = PackageOptions {
                url_prefix,
                mirrors: args.mirror,
                manifest_from: args.manifest,
                output: args.output,
                expect: args.expect,
                publisher_key: args.publisher_key,
                connections: args.connections,
                rate,
                progress: !json,
                client,
            };
            rt.block_on(distpoint::client::package::run(&opts))
                .map(|r| if json { r.to_json() } else { r.to_text() })
        }
        (Some(url), None) => {
            let opts = FetchOptions {
                url,
                mirrors: args.mirror,
                manifest_from: args.manifest,
                output: args.output,
                expect: args.expect,
                connections: args.connections,
                rate,
                progress: !json,
                client,
                login_authority: None,
                manifest: None,
            };
            rt.block_on(distpoint::client::fetch::run(&opts)).map(|r| {
                if json {
                    r.to_json()
                } else {
                    r.to_text()
                }
            })
        }
        (None, None) => return fail("fetch: a URL or --package is required".into()),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("distpoint: fetch: {e}");
            if json {
                println!("{}", fetch_error_json(&e));
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the runtime: {e}")))
}

/// Exit code for a client error: bad settings are 1, the network 3.
fn client_exit(e: &ClientError) -> ExitCode {
    if e.is_settings() {
        ExitCode::from(1)
    } else {
        ExitCode::from(3)
    }
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Make a development CA, server certificate (localhost, 127.0.0.1, ::1) and client certificate.
    Dev {
        /// Output folder.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            distpoint::logging::init();
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(format!("cannot start the runtime: {e}")),
            };
            match rt.block_on(distpoint::server::run(&config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e.to_string()),
            }
        }
        Command::CheckConfig { config } => match distpoint::config::Config::load(&config) {
            Ok(c) => {
                print!("{}", c.describe());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e.to_string()),
        },
        Command::HashPassword => {
            let mut line = String::new();
            if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
                return fail(format!("cannot read the password from stdin: {e}"));
            }
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password);
            match distpoint::auth::hash_password(password) {
                Ok(phc) => {
                    println!("{phc}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("hash-password: {e}")),
            }
        }
        Command::Fetch(args) => fetch(args),
        Command::Bench {
            urls,
            connections,
            duration,
            requests,
            range_size,
            verify,
            json,
            tls,
        } => {
            if !(duration.is_finite() && duration > 0.0) {
                return fail("--duration must be a positive number of seconds".into());
            }
            let opts = BenchOptions {
                urls,
                connections,
                duration: Duration::from_secs_f64(duration),
                requests,
                range_size,
                verify,
                client: tls.options(),
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(distpoint::client::bench::run(opts)) {
                Ok(report) => {
                    if json {
                        println!("{}", report.to_json());
                    } else {
                        print!("{}", report.to_text());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("distpoint: bench: {e}");
                    client_exit(&e)
                }
            }
        }
        Command::Publish {
            dir,
            chunk_size,
            key,
            gen_key,
        } => publish(dir, chunk_size, key, gen_key),
        Command::Certs {
            command: CertsCommand::Dev { out },
        } => match distpoint::devcerts::write_dev_certs(&out) {
            Ok(files) => {
                for p in files.all() {
                    println!("wrote {}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e.to_string()),
        },
    }
}

fn fetch_error_json(e: &FetchError) -> String {
    let (chunk, bytes) = match e {
        FetchError::Integrity {
            chunk,
            bytes_fetched,
            ..
        } => (*chunk, Some(*bytes_fetched)),
        _ => (None, None),
    };
    let sources: Vec<_> = e.sources().iter().map(|s| s.to_json()).collect();
    serde_json::json!({
        "ok": false,
        "exit_code": e.exit_code(),
        "error": e.to_string(),
        "chunk": chunk,
        "bytes_fetched": bytes,
        "sources": sources,
    })
    .to_string()
}

fn publish(
    dir: Option<PathBuf>,
    chunk_size: u64,
    key: Option<PathBuf>,
    gen_key: Option<PathBuf>,
) -> ExitCode {
    use distpoint::integrity::{hex, keys, publish};
    if let Some(path) = gen_key {
        return match keys::generate_key_files(&path) {
            Ok(public) => {
                println!("wrote {} (private key)", path.display());
                println!("wrote {} (public key)", public.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("gen-key: {e}")),
        };
    }
    let Some(dir) = dir else {
        return fail("publish: DIR is required".into());
    };
    let key = match key.as_deref().map(keys::PrivateKey::load).transpose() {
        Ok(k) => k,
        Err(e) => return fail(format!("publish: signing key: {e}")),
    };
    match publish::publish(&dir, chunk_size, key.as_ref()) {
        Ok(p) => {
            println!("package {}", hex(&p.package_hash));
            for (rel, root) in &p.roots {
                println!("{}  {rel}", hex(root));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("publish: {e}")),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("distpoint: {message}");
    ExitCode::FAILURE
}
