//! BITS-grade HTTP: methods, HEAD, headers, ranges and conditionals per RFC 9110.

mod support;

use distpoint::transfer::Protocol;
use support::*;

fn data() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect()
}

fn site() -> (Site, Server) {
    let site = Site::new();
    site.file("content/pkg/setup.bin", &data());
    site.file("content/pkg/empty.bin", b"");
    site.file("content/pkg/page.html", b"<script>alert(1)</script>");
    let body = format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\n",
        site.head()
    );
    let server = site.start(&body);
    (site, server)
}

const PROTOS: [Protocol; 2] = [Protocol::Http1, Protocol::Http2];

#[tokio::test]
async fn only_get_and_head_are_allowed() {
    let (site, server) = site();
    for proto in PROTOS {
        let tls = site.tls(false, &[proto]);
        for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BITS_POST"] {
            let got = fetch(&server, tls.clone(), req(m, &server.url("/pkg/setup.bin"))).await;
            assert_eq!(got.status, 405, "{m}");
            assert_eq!(got.header("allow"), Some("GET, HEAD"), "{m}");
        }
    }
}

#[tokio::test]
async fn head_gives_the_size_and_the_same_headers_as_get() {
    let (site, server) = site();
    for proto in PROTOS {
        let tls = site.tls(false, &[proto]);
        let head = fetch(
            &server,
            tls.clone(),
            req("HEAD", &server.url("/pkg/setup.bin")),
        )
        .await;
        let get = fetch(
            &server,
            tls.clone(),
            req("GET", &server.url("/pkg/setup.bin")),
        )
        .await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-length"), Some("100000"), "{proto:?}");
        assert_eq!(get.body.len(), 100_000);
        assert_eq!(get.body, data());
        for h in [
            "content-length",
            "etag",
            "last-modified",
            "accept-ranges",
            "content-type",
        ] {
            assert_eq!(head.header(h), get.header(h), "{h}");
        }
        assert_eq!(get.header("accept-ranges"), Some("bytes"));
        assert_eq!(get.header("content-type"), Some("application/octet-stream"));
        assert_eq!(get.header("x-content-type-options"), Some("nosniff"));
        assert!(get
            .header("strict-transport-security")
            .unwrap()
            .starts_with("max-age="));
        assert!(get.header("etag").unwrap().starts_with('"'), "strong ETag");
        assert!(get.header("transfer-encoding").is_none());
    }
}

#[tokio::test]
async fn files_are_never_compressed_and_active_content_is_sandboxed() {
    let (site, server) = site();
    let tls = site.tls(false, &[Protocol::Http1]);
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/pkg/setup.bin")).header("accept-encoding", "gzip, br, deflate"),
    )
    .await;
    assert!(got.header("content-encoding").is_none());
    assert_eq!(got.body, data());
    let got = fetch(&server, tls, req("GET", &server.url("/pkg/page.html"))).await;
    assert_eq!(got.header("content-type"), Some("text/html"));
    assert!(got
        .header("content-security-policy")
        .unwrap()
        .contains("sandbox"));
}

#[tokio::test]
async fn single_range_is_206_with_content_range() {
    let (site, server) = site();
    let d = data();
    for proto in PROTOS {
        let tls = site.tls(false, &[proto]);
        for (spec, start, end) in [
            ("bytes=0-99", 0, 100),
            ("bytes=99990-", 99_990, 100_000),
            ("bytes=-10", 99_990, 100_000),
            ("bytes=50000-999999", 50_000, 100_000),
        ] {
            let got = fetch(
                &server,
                tls.clone(),
                req("GET", &server.url("/pkg/setup.bin")).header("range", spec),
            )
            .await;
            assert_eq!(got.status, 206, "{spec}");
            assert_eq!(
                got.header("content-range"),
                Some(format!("bytes {start}-{}/100000", end - 1).as_str())
            );
            assert_eq!(
                got.header("content-length"),
                Some((end - start).to_string().as_str())
            );
            assert_eq!(got.body, &d[start..end], "{spec}");
        }
    }
}

/// Split a multipart/byteranges body into (content-range, bytes) parts.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("\r\n--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let mut pos = find(text, delim.as_bytes(), 0).expect("first boundary");
    loop {
        pos += delim.len();
        if text[pos..].starts_with(b"--") {
            assert_eq!(&text[pos..], b"--\r\n", "closing delimiter");
            break;
        }
        let head_end = find(text, b"\r\n\r\n", pos).unwrap();
        let head = String::from_utf8(text[pos..head_end].to_vec()).unwrap();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("part has Content-Range")
            .to_string();
        let next = find(text, delim.as_bytes(), head_end + 4).unwrap();
        parts.push((range, text[head_end + 4..next].to_vec()));
        pos = next;
    }
    parts
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[tokio::test]
async fn multiple_ranges_are_multipart_checked_byte_by_byte() {
    let (site, server) = site();
    let d = data();
    for proto in PROTOS {
        let tls = site.tls(false, &[proto]);
        // Overlapping 100-199 and 150-299 merge into 100-299.
        let got = fetch(
            &server,
            tls.clone(),
            req("GET", &server.url("/pkg/setup.bin"))
                .header("range", "bytes=0-9, 150-299, 100-199, -5"),
        )
        .await;
        assert_eq!(got.status, 206);
        let ct = got.header("content-type").unwrap().to_string();
        let boundary = ct
            .strip_prefix("multipart/byteranges; boundary=")
            .expect(&ct);
        assert_eq!(
            got.header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            got.body.len()
        );
        let parts = parse_multipart(&got.body, boundary);
        let expect = [(0, 10), (100, 300), (99_995, 100_000)];
        assert_eq!(parts.len(), expect.len());
        for ((range, bytes), (s, e)) in parts.iter().zip(expect) {
            assert_eq!(range, &format!("bytes {s}-{}/100000", e - 1));
            assert_eq!(bytes, &d[s..e]);
        }
    }
}

#[tokio::test]
async fn too_many_ranges_are_ignored_and_malformed_ones_too() {
    let (site, server) = site();
    let tls = site.tls(false, &[Protocol::Http2]);
    let many: Vec<String> = (0..17)
        .map(|i| format!("{}-{}", i * 100, i * 100 + 10))
        .collect();
    for spec in [
        format!("bytes={}", many.join(",")),
        "bytes=5-2".into(),
        "bytes=abc".into(),
        "items=0-1".into(),
    ] {
        let got = fetch(
            &server,
            tls.clone(),
            req("GET", &server.url("/pkg/setup.bin")).header("range", &spec),
        )
        .await;
        assert_eq!(got.status, 200, "{spec}");
        assert_eq!(
            got.body.len(),
            100_000,
            "never more than one pass over the file"
        );
    }
}

#[tokio::test]
async fn unsatisfiable_ranges_are_416() {
    let (site, server) = site();
    let tls = site.tls(false, &[Protocol::Http1]);
    for (path, spec, size) in [
        ("/pkg/setup.bin", "bytes=100000-", 100_000),
        ("/pkg/empty.bin", "bytes=0-", 0),
        ("/pkg/setup.bin", "bytes=-0", 100_000),
    ] {
        let got = fetch(
            &server,
            tls.clone(),
            req("GET", &server.url(path)).header("range", spec),
        )
        .await;
        assert_eq!(got.status, 416, "{spec}");
        assert_eq!(
            got.header("content-range"),
            Some(format!("bytes */{size}").as_str())
        );
    }
}

#[tokio::test]
async fn conditionals_follow_rfc_9110() {
    let (site, server) = site();
    let tls = site.tls(false, &[Protocol::Http2]);
    let url = server.url("/pkg/setup.bin");
    let first = fetch(&server, tls.clone(), req("GET", &url)).await;
    let etag = first.header("etag").unwrap().to_string();
    let lm = first.header("last-modified").unwrap().to_string();
    let get = |name: &'static str, value: String| {
        let tls = tls.clone();
        let url = url.clone();
        let server = &server;
        async move { fetch(server, tls, req("GET", &url).header(name, value)).await }
    };
    assert_eq!(get("if-none-match", etag.clone()).await.status, 304);
    assert_eq!(
        get("if-none-match", format!("W/{etag}")).await.status,
        304,
        "weak comparison"
    );
    assert_eq!(get("if-none-match", "\"other\"".into()).await.status, 200);
    assert_eq!(get("if-modified-since", lm.clone()).await.status, 304);
    assert_eq!(
        get("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT".into())
            .await
            .status,
        200
    );
    assert_eq!(get("if-match", "\"other\"".into()).await.status, 412);
    assert_eq!(
        get("if-match", format!("W/{etag}")).await.status,
        412,
        "strong comparison"
    );
    assert_eq!(get("if-match", etag.clone()).await.status, 200);
    assert_eq!(
        get(
            "if-unmodified-since",
            "Thu, 01 Jan 1970 00:00:00 GMT".into()
        )
        .await
        .status,
        412
    );
    assert_eq!(get("if-unmodified-since", lm.clone()).await.status, 200);
    let not_modified = get("if-none-match", etag.clone()).await;
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    assert!(not_modified.body.is_empty());

    // If-Range: a current validator honours the range, a stale one sends everything.
    let r = fetch(
        &server,
        tls.clone(),
        req("GET", &url)
            .header("range", "bytes=0-9")
            .header("if-range", &etag),
    )
    .await;
    assert_eq!(r.status, 206);
    let r = fetch(
        &server,
        tls.clone(),
        req("GET", &url)
            .header("range", "bytes=0-9")
            .header("if-range", "\"stale\""),
    )
    .await;
    assert_eq!((r.status, r.body.len()), (200, 100_000));
    let r = fetch(
        &server,
        tls.clone(),
        req("GET", &url)
            .header("range", "bytes=0-9")
            .header("if-range", &lm),
    )
    .await;
    assert_eq!(r.status, 206);
    // BITS resumes with a ranged GET and If-Unmodified-Since.
    let r = fetch(
        &server,
        tls,
        req("GET", &url)
            .header("range", "bytes=50000-")
            .header("if-unmodified-since", &lm),
    )
    .await;
    assert_eq!((r.status, r.body.len()), (206, 50_000));
}

#[tokio::test]
async fn curl_resume_produces_an_identical_file() {
    let (site, server) = site();
    let out = site.path("download.bin");
    std::fs::write(&out, &data()[..12_345]).unwrap();
    let ca = site.path("certs/ca.crt");
    let (code, _, err) = curl(&[
        "-sS",
        "-C",
        "-",
        "--cacert",
        ca.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        &server.url("/pkg/setup.bin"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), data());
    assert!(
        server.log().contains("status=206"),
        "the resume used a range"
    );
}
