//! `distpoint bench URL...`.

use super::conn_args::ConnArgs;
use super::{runtime, tls_probe, Failure};
use distpoint::client::bench::{BenchOptions, BenchReport};
use std::time::Duration;

/// Benchmark transfers from a distribution point: throughput, requests/s, latency.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// URLs to request (round-robin).
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
    /// Connections, each with one request in flight.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub connections: usize,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub duration: f64,
    /// Stop after this many requests.
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,
    /// Request random ranges of this many bytes instead of whole files.
    #[arg(long, value_name = "BYTES")]
    pub range_size: Option<u64>,
    /// Verify every chunk against the file's manifest, as fetch does.
    #[arg(long)]
    pub verify: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Run the benchmark and print its report. Exit 3 when no request succeeded
/// (the report is still printed), naming why the first URL fails.
pub fn run(args: BenchArgs) -> Result<(), Failure> {
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err(Failure::usage(
            "bench: --duration must be a positive number of seconds",
        ));
    }
    let opts = BenchOptions {
        urls: args.urls,
        connections: args.connections,
        duration: Duration::from_secs_f64(args.duration),
        requests: args.requests,
        range_size: args.range_size,
        verify: args.verify,
        client: args.conn.options(),
    };
    let rt = runtime()?;
    let report = match rt.block_on(distpoint::client::bench::run(opts.clone())) {
        Ok(report) => report,
        Err(e) if e.is_settings() => return Err(Failure::usage(format!("bench: {e}"))),
        Err(e) => {
            let why = rt.block_on(why_first_url_fails(&opts));
            return Err(Failure::network(format!("bench: {e}{why}")));
        }
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.ok > 0 {
        return Ok(());
    }
    let why = rt.block_on(why_first_url_fails(&opts));
    Err(Failure::network(format!(
        "bench: no request succeeded ({}){why}",
        error_counts(&report)
    )))
}

fn error_counts(report: &BenchReport) -> String {
    if report.errors.is_empty() {
        return "no request was made".into();
    }
    report
        .errors
        .iter()
        .map(|(kind, n)| format!("{kind}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fresh handshake with the first URL, explained when it fails.
async fn why_first_url_fails(opts: &BenchOptions) -> String {
    let Some(url) = opts.urls.first() else {
        return String::new();
    };
    match tls_probe::probe(&opts.client, url).await {
        Some(problem) => format!("; {url}: {}", problem.text()),
        None => String::new(),
    }
}
