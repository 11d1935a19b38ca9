//! File manifest parsing: `FileManifest::from_json` on any text. What it
//! accepts must be consistent (`check`) and round-trip through `to_json`.
#![no_main]

use distpoint::integrity::FileManifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = FileManifest::from_json(text) else {
        return;
    };
    m.check()
        .expect("from_json accepted an inconsistent manifest");
    let again = FileManifest::from_json(&m.to_json()).expect("own JSON parses");
    assert_eq!(again, m);
    for i in 0..m.chunks.len() as u64 {
        let (start, end) = m.chunk_range(i);
        assert!(
            start < end && end <= m.size,
            "chunk {i}: {start}..{end} of {}",
            m.size
        );
    }
});
