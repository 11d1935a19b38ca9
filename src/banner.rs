//! The start-up banner: where the server listens and a `curl` command that
//! works exactly as printed.

use crate::config::Config;
use crate::devcerts::DEV_CLIENT_CN;
use crate::vpath::Vpath;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Characters escaped in a URL path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'/')
    .add(b'<')
    .add(b'>');

/// The base URL a local client should use for a bound address.
pub fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("https://{}", SocketAddr::new(ip, addr.port()))
}

/// Print the banner on stdout (logs go to stderr).
pub fn print(config: &Config, bound: &[SocketAddr]) {
    println!(
        "distpoint {} serving {} virtual path(s)",
        env!("CARGO_PKG_VERSION"),
        config.vpaths.iter().count()
    );
    for addr in bound {
        println!("  listening on {}", base_url(*addr));
    }
    for vp in config.vpaths.iter() {
        let who = if vp.anonymous {
            "anonymous".to_string()
        } else {
            format!("{} principal(s)", config.directory.expand(&vp.allow).len())
        };
        println!("  {} -> {} ({who})", vp.url, vp.dir.display());
    }
    if let Some(cmd) = bound.first().and_then(|addr| curl_example(config, *addr)) {
        println!("try:\n  {cmd}");
    }
}

/// A curl command fetching the first file of the first path the dev client
/// certificate (or anyone) may read.
fn curl_example(config: &Config, addr: SocketAddr) -> Option<String> {
    let ca = config
        .tls
        .client_ca
        .clone()
        .unwrap_or_else(|| sibling(&config.tls.cert, "ca.crt"));
    let client_cert = sibling(&config.tls.cert, "client.crt");
    let client_key = sibling(&config.tls.cert, "client.key");
    let has_client = config.tls.client_ca.is_some() && client_cert.exists() && client_key.exists();
    let dev_cn = crate::auth::Identity {
        user: None,
        cert: Some(DEV_CLIENT_CN.into()),
    };
    let readable = |vp: &Vpath| {
        vp.anonymous || (has_client && config.directory.is_allowed(&dev_cn, &vp.allow))
    };
    let (vp, file) = config
        .vpaths
        .iter()
        .filter(|vp| readable(vp))
        .find_map(|vp| first_file(&vp.dir).map(|f| (vp, f)))?;
    let mut url = base_url(addr);
    for seg in vp.segments.iter().chain(std::iter::once(&file)) {
        url.push('/');
        url.extend(utf8_percent_encode(seg, SEGMENT));
    }
    let mut cmd = format!("curl --cacert {}", shown(&ca));
    if !vp.anonymous {
        cmd += &format!(
            " --cert {} --key {}",
            shown(&client_cert),
            shown(&client_key)
        );
    }
    Some(format!("{cmd} '{url}'"))
}

fn sibling(path: &Path, name: &str) -> PathBuf {
    path.parent().unwrap_or(Path::new(".")).join(name)
}

/// The alphabetically first regular, non-hidden file directly in `dir`.
fn first_file(dir: &Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names.into_iter().next()
}

/// A path as the user should type it: relative to the current folder when
/// it lies below it.
fn shown(p: &Path) -> String {
    // Drop `..` lexically (config paths are joined, not canonicalized) so the
    // command reads cleanly; the files exist, so this is display only.
    let mut clean = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            other => clean.push(other),
        }
    }
    let p = clean.as_path();
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(Path::to_path_buf));
    rel.unwrap_or_else(|| p.to_path_buf()).display().to_string()
}
