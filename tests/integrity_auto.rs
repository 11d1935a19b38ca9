//! `integrity = "auto"`: a file rewritten in place while it is being sent
//! cuts the transfer before the first changed byte; the next request gets
//! the new version with a new ETag.

mod support;

use bytes::Bytes;
use distpoint::transfer::{Conn, Protocol};
use http_body_util::{BodyExt, Empty};
use std::io::Write;
use std::time::Duration;
use support::*;

const SIZE: usize = 32 << 20;

const CHUNK: usize = 64 << 10;

#[tokio::test]
async fn in_place_rewrite_cuts_a_running_download_before_any_changed_byte() {
    let site = Site::new();
    let old: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let path = site.file("content/pub/big.bin", &old);
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\nchunk_size = {CHUNK}\n",
        site.head()
    ));
    let url = server.url("/pub/big.bin");
    let tls = site.tls(false, &[Protocol::Http1]);

    let mut conn = Conn::connect(server.addr, "localhost", tls.clone())
        .await
        .unwrap();
    let resp = conn
        .send(req("GET", &url).body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The file was hashed before the head was sent; from here on the
    // server's reads are the body's.
    let read_at_head = read_bytes(server.pid());
    let old_etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let mut body = resp.into_body();
    let mut got = Vec::new();
    // Read slowly until 1 MiB is in, so the server is blocked on a full
    // socket far before the end of the file.
    while got.len() < (1 << 20) {
        let frame = body.frame().await.unwrap().unwrap();
        got.extend_from_slice(&frame.into_data().unwrap());
    }
    // Wait until the server has read chunks ahead of what arrived (they sit
    // in its read-ahead and in the socket buffers), so that the rewrite
    // lands on bytes it has already read as well as on bytes it has not.
    let ahead = (got.len() + 2 * CHUNK) as u64;
    let since = std::time::Instant::now();
    while read_bytes(server.pid()) - read_at_head < ahead {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "the server read nothing ahead"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Rewrite every byte in place: same inode, same size.
    let new: Vec<u8> = old.iter().map(|b| !b).collect();
    let mut f = std::fs::File::options().write(true).open(&path).unwrap();
    f.write_all(&new).unwrap();
    drop(f);

    let mut cut = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => got.extend_from_slice(&f.into_data().unwrap_or_default()),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(cut, "the transfer must be cut");
    assert!(got.len() < SIZE, "cut short of the end");
    let first_diff = got.iter().zip(&old).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "a changed byte was sent");
    assert!(server.wait_log("file changed", Duration::from_secs(5)));

    let again = fetch(&server, tls, req("GET", &url)).await;
    assert_eq!(again.status, 200);
    assert!(!again.cut);
    assert_ne!(again.header("etag"), Some(old_etag.as_str()));
    assert!(again.body == new, "the next request gets the new version");
}
