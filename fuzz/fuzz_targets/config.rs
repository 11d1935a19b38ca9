//! Config parsing: `Config::parse` on any text must return a config or an
//! error that names the file (`file:line:col: message` or `file: message`),
//! never panic.
//!
//! The text is parsed as if it lived in a fixture folder that has a
//! `content` subfolder and test certificates, so that inputs can get past
//! the TOML layer into validation.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use distpoint::config::Config;
use libfuzzer_sys::fuzz_target;

fn fixture() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let root =
            std::env::temp_dir().join(format!("distpoint-fuzz-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("content/PKG00001")).unwrap();
        std::fs::create_dir_all(root.join("pub")).unwrap();
        let files = distpoint::devcerts::write_dev_certs(&root.join("certs")).unwrap();
        drop(files);
        root.join("distpoint.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = fixture();
    match Config::parse(path, text) {
        Ok(config) => {
            // What check-config prints must not panic either.
            let _ = config.describe();
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with(&path.display().to_string()),
                "error does not name the file: {shown}"
            );
        }
    }
});
