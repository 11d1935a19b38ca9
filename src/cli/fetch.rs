//! `distpoint fetch URL -o PATH` and `distpoint fetch --package URL_PREFIX -o DIR`.

use super::conn_args::ConnArgs;
use super::tls_probe::{self, Problem};
use super::{keyfile, runtime, Failure};
use distpoint::client::fetch::FetchOptions;
use distpoint::client::fetch_error::FetchError;
use distpoint::client::package::PackageOptions;
use distpoint::client::{ClientOptions, Protocol};
use distpoint::transfer::RateLimit;
use std::path::PathBuf;
use std::sync::Arc;

/// Download a file from one or more sources, verifying every chunk against
/// its manifest; resumable.
#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// The file's https:// URL: the first source and, without --manifest,
    /// where the manifest is asked for (URL?manifest).
    #[arg(required_unless_present = "package", conflicts_with = "package")]
    pub url: Option<String>,
    /// Fetch a whole published package from this URL prefix instead.
    #[arg(long, value_name = "URL_PREFIX")]
    pub package: Option<String>,
    /// Another source of the same file (with --package: of the same
    /// package, a URL prefix); repeatable. Any HTTPS server that answers
    /// ranged GETs will do.
    #[arg(long, value_name = "URL")]
    pub mirror: Vec<String>,
    /// The manifest from this file or https:// URL instead of the server's
    /// own (then URL may be a plain server). With --package: the package's
    /// manifest.json (its signature is FILE_OR_URL.sig).
    #[arg(long, value_name = "FILE_OR_URL")]
    pub manifest: Option<String>,
    /// Where to put the verified file (with --package: the folder).
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: PathBuf,
    /// The manifest root the file must have (with --package: the package
    /// hash), 64 hex digits, told out of band.
    #[arg(long, value_name = "HASH")]
    pub expect: Option<String>,
    /// With --package: the publisher's Ed25519 public key (PEM) the
    /// package manifest must be signed with.
    #[arg(long, requires = "package", value_name = "FILE")]
    pub publisher_key: Option<PathBuf>,
    /// With --package: refuse a package manifest whose sequence is lower
    /// (a rollback). The highest sequence taken into DIR is refused below
    /// too, without this flag.
    #[arg(long, requires = "package", value_name = "N")]
    pub min_sequence: Option<u64>,
    /// Parallel connections per source (HTTP/1.1 is offered first, unless
    /// --http1 or --http2 is given).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub connections: usize,
    /// Limit the download rate, bytes per second (all sources together).
    #[arg(long, value_name = "BYTES")]
    pub limit_rate: Option<u64>,
    /// Print a JSON summary instead of the result line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Run a fetch; the exit code says what failed (1 usage, 2 integrity, 3 network).
pub fn run(args: FetchArgs) -> Result<(), Failure> {
    if let Some(p) = &args.publisher_key {
        keyfile::public_key("fetch: --publisher-key", p)?;
    }
    // One request at a time per connection: HTTP/2's multiplexing buys
    // nothing, and HTTP/1.1 costs less CPU at both ends (measured: about a
    // fifth less at the server, a twentieth at the client). Offered first
    // unless a protocol is forced.
    let prefer_http1 = !args.conn.http1 && !args.conn.http2;
    let mut client = args.conn.options();
    if prefer_http1 {
        client.protocols = vec![Protocol::Http1, Protocol::Http2];
    }
    let rate = args.limit_rate.map(|r| Arc::new(RateLimit::new(r)));
    let json = args.json;
    let rt = runtime()?;
    let (url, result) = match (args.url, args.package) {
        (_, Some(url_prefix)) => {
            let opts = PackageOptions {
                url_prefix: url_prefix.clone(),
                mirrors: args.mirror,
                manifest_from: args.manifest,
                output: args.output,
                expect: args.expect,
                publisher_key: args.publisher_key,
                min_sequence: args.min_sequence,
                connections: args.connections,
                rate,
                progress: !json,
                client: client.clone(),
            };
            let r = rt.block_on(distpoint::client::package::run(&opts));
            let line = r.map(|r| if json { r.to_json() } else { r.to_text() });
            (format!("{}/", url_prefix.trim_end_matches('/')), line)
        }
        (Some(url), None) => {
            let opts = FetchOptions {
                url: url.clone(),
                mirrors: args.mirror,
                manifest_from: args.manifest,
                output: args.output,
                expect: args.expect,
                connections: args.connections,
                rate,
                progress: !json,
                client: client.clone(),
                login_authority: None,
                manifest: None,
            };
            let r = rt.block_on(distpoint::client::fetch::run(&opts));
            (url, r.map(|r| if json { r.to_json() } else { r.to_text() }))
        }
        (None, None) => return Err(Failure::usage("fetch: a URL or --package is required")),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            Ok(())
        }
        Err(e) => {
            let hint = match &e {
                FetchError::Unavailable { .. } | FetchError::Client(_) => {
                    rt.block_on(tls_hint(&client, &url))
                }
                _ => String::new(),
            };
            if json {
                println!("{}", error_json(&e));
            }
            Err(Failure {
                code: e.exit_code(),
                message: format!("fetch: {e}{hint}"),
            })
        }
    }
}

/// After a network failure: what a fresh handshake says, when TLS is at fault.
async fn tls_hint(client: &ClientOptions, url: &str) -> String {
    match tls_probe::probe(client, url).await {
        Some(Problem::Tls(text)) => format!("; {text}"),
        _ => String::new(),
    }
}

fn error_json(e: &FetchError) -> String {
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
