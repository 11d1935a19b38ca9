//! `Authorization: Basic` parsing: `parse_basic` on any header value.
//! Accepted credentials have a non-empty user name without control
//! characters or `:`, and encoding them again parses to the same user.
#![no_main]

use base64::Engine as _;
use distpoint::auth::parse_basic;
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let Ok(creds) = parse_basic(&value) else {
        return;
    };
    let user = creds.user();
    assert!(!user.is_empty());
    assert!(
        !user.chars().any(|c| c.is_control() || c == ':'),
        "{user:?}"
    );
    // Debug never shows the password.
    assert!(format!("{creds:?}").contains("<redacted>"));
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
    let again = parse_basic(&HeaderValue::try_from(format!("Basic {token}")).unwrap()).unwrap();
    assert_eq!(again.user(), user);
});
