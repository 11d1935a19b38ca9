//! Property tests: a manifest round-trips, and says what the bytes are.
//!
//! For any content (0 to 40 KiB, incompressible or runs of one byte) and any
//! chunk size: the file manifest's chunks are the SHA-256 of each chunk
//! taken independently, `root` is the hash of their concatenation, its JSON
//! parses back to the same manifest, and a package manifest with such
//! entries round-trips through JSON and `file()`.

use std::collections::BTreeMap;

use distpoint::integrity::manifest::root_of;
use distpoint::integrity::{hex, sha256, FileManifest, PackageManifest};
use proptest::prelude::*;

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40_000),
        (any::<u8>(), 0..40_000usize).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn chunk_size() -> impl Strategy<Value = u64> {
    prop_oneof![1..64u64, 4096..20_000u64, Just(4096), Just(1 << 20)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn file_manifest_round_trips_and_matches_the_bytes(data in content(), cs in chunk_size()) {
        let m = FileManifest::compute(&data[..], cs).unwrap();
        let expect: Vec<_> = data.chunks(cs as usize).map(sha256).collect();
        prop_assert_eq!(&m.chunks, &expect);
        prop_assert_eq!(m.root, root_of(&expect));
        prop_assert_eq!(m.sha256, sha256(&data));
        prop_assert_eq!(m.size, data.len() as u64);
        m.check().unwrap();
        let back = FileManifest::from_json(&m.to_json()).unwrap();
        prop_assert_eq!(&back, &m);
        for (i, c) in data.chunks(cs as usize).enumerate() {
            let (s, e) = m.chunk_range(i as u64);
            prop_assert_eq!(&data[s as usize..e as usize], c);
        }
    }

    #[test]
    fn package_manifest_round_trips(files in prop::collection::btree_map("[a-z]{1,8}(/[a-z0-9.]{1,8}){0,2}", content(), 0..5), cs in chunk_size()) {
        let mut entries = BTreeMap::new();
        let mut manifests = BTreeMap::new();
        for (name, data) in &files {
            let m = FileManifest::compute(&data[..], cs).unwrap();
            entries.insert(name.clone(), serde_json::json!({
                "size": m.size,
                "sha256": hex(&m.sha256),
                "root": hex(&m.root),
                "chunks": m.chunks.iter().map(|c| hex(c)).collect::<Vec<_>>(),
            }));
            manifests.insert(name.clone(), m);
        }
        // Built as JSON, as `publish` writes it, so that fields added to the
        // format later do not change this test.
        let json = serde_json::json!({"version": 1, "chunk_size": cs, "files": entries});
        let pkg: PackageManifest = serde_json::from_value(json).unwrap();
        let text = serde_json::to_string_pretty(&pkg).unwrap();
        let back: PackageManifest = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &pkg);
        for (name, m) in &manifests {
            let got = back.file(name).expect("listed").expect("consistent");
            prop_assert_eq!(&got, m);
        }
        prop_assert!(back.file("not/listed").is_none());
    }
}
