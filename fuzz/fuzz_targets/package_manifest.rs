//! Package manifest parsing, as the server and `fetch --package` do it
//! (`serde_json` into `PackageManifest`, then `file()` per entry): no panic,
//! what is accepted round-trips, and every file manifest `file()` returns is
//! consistent.
#![no_main]

use distpoint::integrity::PackageManifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(package) = serde_json::from_slice::<PackageManifest>(data) else {
        return;
    };
    let text = serde_json::to_vec(&package).unwrap();
    let again: PackageManifest = serde_json::from_slice(&text).expect("own JSON parses");
    assert_eq!(again, package);
    for rel in package.files.keys() {
        if let Some(Ok(m)) = package.file(rel) {
            m.check().expect("file() returned an inconsistent manifest");
            assert_eq!(m.chunk_size, package.chunk_size);
        }
    }
});
