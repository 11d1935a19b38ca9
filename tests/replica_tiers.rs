//! Site → region → branch, three real servers with their own PKIs: the site
//! publishes and signs; the region pulls from it with a client certificate;
//! the branch pulls from the region with a Basic account. The package
//! arrives byte-identical with the site's manifest bytes and signature; a
//! one-chunk update of a 64 MiB file crosses each link as at most two
//! chunks (counted in the upstream's access log); a chunk tampered at the
//! site reaches neither, and both keep the last good version.

mod replica;
mod support;

use distpoint::transfer::Protocol;
use replica::*;
use std::time::Duration;
use support::*;

const MIB: usize = 1 << 20;
const LONG: Duration = Duration::from_secs(120);

fn sha(b: &[u8]) -> String {
    distpoint::integrity::hex(&distpoint::integrity::sha256(b))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_package_flows_site_to_region_to_branch_and_updates_cross_as_changed_chunks() {
    let mut site = Origin::new();
    let mut big = unique(64 * MIB, 1);
    site.site.file("content/pkg/big.bin", &big);
    site.site
        .file("content/pkg/sub/dir/small file.txt", b"hello, branch\n");
    site.site.file("content/pkg/empty", b"");
    let h1 = publish(&site.pkg(), &site.key, 1, &[]);
    site.start(&["cert:region01"]);

    let mut region = Replica::new(
        &site.site,
        &[site.server().url("/pkg")],
        &site.public_key(),
        Login::Cert(&site.site, "region01"),
        "allow = [\"user:branch01\"]\n",
        "",
    );
    region.start();
    let st = region.wait_status("region's first sync", LONG, |s| {
        s["package_hash"] == h1.as_str()
    });
    assert_eq!(st["sequence"], 1);
    assert_eq!(st["last_result"], "ok", "{st}");

    let mut branch = Replica::new(
        &region.site,
        &[region.server().url("/pkg")],
        &site.public_key(),
        Login::Basic("branch01"),
        "anonymous = true\n",
        "",
    );
    branch.start();
    // Its own start-up sync may have run before the region had a version.
    let (code, st) = branch.sync();
    assert_eq!(code, 0, "{st}");
    assert_eq!(st["package_hash"], h1.as_str(), "{st}");

    // Byte-identical, with the site's exact manifest bytes and signature.
    let tls = branch.site.tls(false, &[Protocol::Http1]);
    let b = branch.server();
    let manifest = std::fs::read(site.site.path("content/pkg/.distpoint/manifest.json")).unwrap();
    let sig = std::fs::read(site.site.path("content/pkg/.distpoint/manifest.json.sig")).unwrap();
    let got = fetch(b, tls.clone(), req("GET", &b.url("/pkg/?manifest"))).await;
    assert_eq!((got.status, sha(&got.body)), (200, sha(&manifest)));
    let got = fetch(b, tls.clone(), req("GET", &b.url("/pkg/?signature"))).await;
    assert_eq!(got.body, sig);
    let got = fetch(b, tls.clone(), req("GET", &b.url("/pkg/big.bin"))).await;
    assert_eq!((got.status, got.body.len()), (200, big.len()));
    assert!(got.body == big, "big.bin differs at the branch");
    let got = fetch(
        b,
        tls.clone(),
        req("GET", &b.url("/pkg/sub/dir/small%20file.txt")),
    )
    .await;
    assert_eq!(got.body, b"hello, branch\n");
    let got = fetch(b, tls.clone(), req("GET", &b.url("/pkg/empty"))).await;
    assert_eq!((got.status, got.body.len()), (200, 0));
    // Not served from the replica's dir itself, nor its metadata.
    let got = fetch(
        b,
        tls.clone(),
        req("GET", &b.url("/pkg/.distpoint/current")),
    )
    .await;
    assert_eq!(got.status, 404);

    // One changed chunk in the middle of the 64 MiB file.
    big[30 * MIB + 17..30 * MIB + 117].copy_from_slice(&[0xAB; 100]);
    site.site.file("content/pkg/big.bin", &big);
    let h2 = publish(&site.pkg(), &site.key, 2, &[]);
    let log0 = bytes_sent(&site.server().log(), "cert:region01", "/pkg/");
    let (code, st) = region.sync();
    assert_eq!(
        (code, st["package_hash"].as_str()),
        (0, Some(h2.as_str())),
        "{st}"
    );
    let sent = bytes_sent(&site.server().log(), "cert:region01", "/pkg/") - log0;
    eprintln!(
        "one-chunk update of 64 MiB, site -> region: {sent} content bytes sent by the site; \
         region status: {} bytes fetched (documents included), {} reused",
        st["bytes_fetched"], st["bytes_reused"]
    );
    assert!(
        sent <= 2 * MIB as u64,
        "{sent} bytes crossed for one changed chunk"
    );
    assert!(
        st["bytes_fetched"].as_u64().unwrap() <= 2 * MIB as u64 + 16384,
        "{st}"
    );
    assert!(
        st["bytes_reused"].as_u64().unwrap() >= 62 * MIB as u64,
        "{st}"
    );

    let log0 = bytes_sent(&region.server().log(), "user:branch01", "/pkg/");
    let (code, st) = branch.sync();
    assert_eq!(
        (code, st["package_hash"].as_str()),
        (0, Some(h2.as_str())),
        "{st}"
    );
    let sent = bytes_sent(&region.server().log(), "user:branch01", "/pkg/") - log0;
    eprintln!("one-chunk update of 64 MiB, region -> branch: {sent} content bytes");
    assert!(sent <= 2 * MIB as u64, "{sent}");
    let got = fetch(b, tls.clone(), req("GET", &b.url("/pkg/big.bin"))).await;
    assert!(
        got.body == big,
        "big.bin differs at the branch after the update"
    );
    // The old version's folder is gone once nothing reads it.
    let end = std::time::Instant::now() + LONG;
    while branch.versions().len() != 1 {
        assert!(std::time::Instant::now() < end, "{:?}", branch.versions());
        std::thread::sleep(Duration::from_millis(20));
    }

    // A new release whose changed chunk is then tampered with at the site:
    // the site never sends it; region and branch keep version 2.
    big[40 * MIB..40 * MIB + 8].copy_from_slice(b"release3");
    site.site.file("content/pkg/big.bin", &big);
    let h3 = publish(&site.pkg(), &site.key, 3, &[]);
    assert_ne!(h3, h2);
    tamper(
        &site.site.path("content/pkg/big.bin"),
        40 * MIB + 3,
        b"EVIL",
    );
    let (code, st) = region.sync();
    assert_eq!(code, 2, "{st}");
    assert_eq!(st["last_result"], "refused", "{st}");
    assert_eq!(st["package_hash"], h2.as_str(), "{st}");
    assert!(
        region.server().log().contains("keeping the version served"),
        "{}",
        region.server().log()
    );
    let (code, st) = branch.sync();
    assert_eq!(
        (code, st["last_result"].as_str()),
        (0, Some("unchanged")),
        "{st}"
    );
    let got = fetch(b, tls.clone(), req("GET", &b.url("/pkg/big.bin"))).await;
    assert_eq!(got.status, 200);
    assert!(got.body[40 * MIB..40 * MIB + 8] != *b"release3" && got.body == big_v2(&big));
    let rtls = region.site.tls(false, &[Protocol::Http1]);
    let r = region.server();
    let got = fetch(
        r,
        rtls,
        req("GET", &r.url("/pkg/?manifest")).header("authorization", basic("branch01", PASSWORD)),
    )
    .await;
    assert_eq!(sha(&got.body), h2);
}

/// Version 2's content: version 3 less its change at 40 MiB.
fn big_v2(v3: &[u8]) -> Vec<u8> {
    let mut v2 = v3.to_vec();
    v2[40 * MIB..40 * MIB + 8].copy_from_slice(&unique(64 * MIB, 1)[40 * MIB..40 * MIB + 8]);
    v2
}
