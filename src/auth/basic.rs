//! HTTP Basic parsing (RFC 7617) and argon2id password hashes.

use std::fmt;
use std::io::Read;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;

use super::AuthError;

/// Largest accepted argon2 memory cost, in KiB (256 MiB).
///
/// The PHC string comes from the config and sets the memory every verification allocates;
/// with `max_concurrent` verifications at once, an absurd `m=` would take the server down.
const MAX_M_COST_KIB: u32 = 256 * 1024;
/// Largest accepted argon2 time cost: beyond this one verification takes seconds.
const MAX_T_COST: u32 = 16;
/// Largest accepted argon2 parallelism (lanes); verification runs on one thread anyway.
const MAX_P_COST: u32 = 16;

/// User name and password from a `Basic` Authorization header.
///
/// `Debug` shows the user name only: the password must never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    user: String,
    password: String,
}

impl BasicCredentials {
    /// The user name (safe to log: it has no control characters).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password, for verification only.
    pub(super) fn password(&self) -> &str {
        &self.password
    }

    /// Splits into (user, password) so the password can move into a blocking task.
    pub(super) fn into_parts(self) -> (String, String) {
        (self.user, self.password)
    }
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parses an `Authorization: Basic ...` header value per RFC 7617.
///
/// The scheme is case-insensitive, the token is standard padded base64, the decoded text
/// must be UTF-8 and is split at the first ':' (so passwords may contain ':'). An empty
/// user name or one with control characters is refused: no real client sends one, and it
/// keeps the user name safe to log. Any other scheme is [`AuthError::Malformed`].
pub fn parse_basic(value: &::http::HeaderValue) -> Result<BasicCredentials, AuthError> {
    let text = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = text
        .trim_matches(|c| c == ' ' || c == '\t')
        .split_once(' ')
        .ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthError::Malformed);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim_start_matches(' '))
        .map_err(|_| AuthError::Malformed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Malformed)?;
    let (user, password) = decoded.split_once(':').ok_or(AuthError::Malformed)?;
    if user.is_empty() || user.chars().any(char::is_control) {
        return Err(AuthError::Malformed);
    }
    Ok(BasicCredentials {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

/// Why `hash-password` could not make a hash.
#[derive(Debug)]
pub enum HashPasswordError {
    /// The password is empty; an account with an empty password is almost surely a mistake.
    Empty,
    /// The system random source could not be read for the salt.
    Random(std::io::Error),
    /// argon2 refused the input (e.g. an absurdly long password).
    Hash(String),
}

impl fmt::Display for HashPasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashPasswordError::Empty => f.write_str("refusing to hash an empty password"),
            HashPasswordError::Random(e) => {
                write!(f, "cannot read random salt from /dev/urandom: {e}")
            }
            HashPasswordError::Hash(e) => write!(f, "argon2 hashing failed: {e}"),
        }
    }
}

impl std::error::Error for HashPasswordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HashPasswordError::Random(e) => Some(e),
            HashPasswordError::Empty | HashPasswordError::Hash(_) => None,
        }
    }
}

/// `distpoint hash-password`: argon2id with default params (m=19456,t=2,p=1) and a random
/// salt; returns the PHC string.
pub fn hash_password(password: &str) -> Result<String, HashPasswordError> {
    if password.is_empty() {
        return Err(HashPasswordError::Empty);
    }
    let salt = random_salt().map_err(HashPasswordError::Random)?;
    hash_with_salt(password, &salt, Params::default())
}

/// 16 random bytes (the PHC recommendation for a salt).
fn random_salt() -> std::io::Result<[u8; 16]> {
    // argon2's `OsRng` needs rand_core's `getrandom` feature, which this crate's
    // dependencies do not enable; the kernel's random device is the same source.
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    Ok(salt)
}

/// Hashes with explicit salt and params (tests use cheap params; the dummy a fixed salt).
pub(super) fn hash_with_salt(
    password: &str,
    salt: &[u8],
    params: Params,
) -> Result<String, HashPasswordError> {
    let salt = SaltString::encode_b64(salt).map_err(|e| HashPasswordError::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashPasswordError::Hash(e.to_string()))
}

/// Why a `password_hash` is refused. The message never repeats the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashCheckError {
    /// Not a PHC string at all.
    NotPhc(argon2::password_hash::Error),
    /// A PHC string for another algorithm (named).
    NotArgon2id(String),
    /// No salt or no hash output.
    Incomplete,
    /// Parameters argon2 refuses.
    BadParams(argon2::password_hash::Error),
    /// Parameters above the limits: memory KiB, iterations, lanes.
    TooCostly(u32, u32, u32),
}

impl std::fmt::Display for HashCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const HINT: &str = "make one with `distpoint hash-password`";
        match self {
            HashCheckError::NotPhc(e) => write!(f, "not a PHC string ({e}); {HINT}"),
            HashCheckError::NotArgon2id(alg) => {
                write!(f, "password hash uses {alg}, expected argon2id; {HINT}")
            }
            HashCheckError::Incomplete => {
                f.write_str("password hash has no salt or no hash output")
            }
            HashCheckError::BadParams(e) => write!(f, "invalid argon2 parameters: {e}"),
            HashCheckError::TooCostly(m, t, p) => write!(
                f,
                "argon2 parameters m={m},t={t},p={p} are too costly \
                 (at most m={MAX_M_COST_KIB},t={MAX_T_COST},p={MAX_P_COST})"
            ),
        }
    }
}

impl std::error::Error for HashCheckError {}

/// For the config module: accepts `password_hash` only if it is a parseable argon2id PHC
/// string with a salt, a hash and params within sane bounds (memory ≤ 256 MiB, t ≤ 16,
/// p ≤ 16).
pub fn check_password_hash(phc: &str) -> Result<(), HashCheckError> {
    parse_argon2id(phc).map(|_| ())
}

fn parse_argon2id(phc: &str) -> Result<PasswordHash<'_>, HashCheckError> {
    let hash = PasswordHash::new(phc).map_err(HashCheckError::NotPhc)?;
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return Err(HashCheckError::NotArgon2id(hash.algorithm.to_string()));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(HashCheckError::Incomplete);
    }
    let params = Params::try_from(&hash).map_err(HashCheckError::BadParams)?;
    if params.m_cost() > MAX_M_COST_KIB
        || params.t_cost() > MAX_T_COST
        || params.p_cost() > MAX_P_COST
    {
        return Err(HashCheckError::TooCostly(
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
        ));
    }
    Ok(hash)
}

/// A fixed hash with the default params, verified against when the user is unknown or its
/// hash is unusable, so that the time taken does not reveal which user names exist.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        // Tests run unoptimised, where the default params cost about a second per verification.
        #[cfg(test)]
        let params = tests::cheap_params();
        #[cfg(not(test))]
        let params = Params::default();
        // A fixed salt is fine: nobody is meant to match this hash, only to spend the time.
        hash_with_salt("distpoint-dummy-password", b"distpoint-dummy!", params)
            .expect("argon2 params and a 16-byte salt are valid")
    })
}

/// What one verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The password matches the account's hash.
    Match,
    /// The password does not match, or the account's hash is unusable.
    Mismatch,
    /// There is no such account (the dummy hash was verified instead).
    UnknownUser,
}

/// The CPU-heavy part: run it on a blocking thread. `phc` is the account's hash, if any.
pub(super) fn verify(phc: Option<&str>, password: &str) -> Verdict {
    let argon2 = Argon2::default();
    // The algorithm, version and params come from the PHC string, not from `argon2`.
    let check = |hash: &PasswordHash<'_>| argon2.verify_password(password.as_bytes(), hash).is_ok();
    let spend_dummy_time = || {
        let dummy = PasswordHash::new(dummy_hash()).expect("the dummy hash is a valid PHC string");
        // The result is ignored: only the time spent matters.
        let _ = check(&dummy);
    };
    match phc {
        None => {
            spend_dummy_time();
            Verdict::UnknownUser
        }
        Some(phc) => match parse_argon2id(phc) {
            Ok(hash) if check(&hash) => Verdict::Match,
            Ok(_) => Verdict::Mismatch,
            Err(_) => {
                spend_dummy_time();
                Verdict::Mismatch
            }
        },
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use ::http::HeaderValue;

    /// Cheap params so that tests do not spend seconds in argon2.
    pub(crate) fn cheap_params() -> Params {
        Params::new(256, 1, 1, None).unwrap()
    }

    /// A hash of `password` with [`cheap_params`] and a random salt.
    pub(crate) fn cheap_hash(password: &str) -> String {
        hash_with_salt(password, &random_salt().unwrap(), cheap_params()).unwrap()
    }

    fn header(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    fn basic(raw: &[u8]) -> HeaderValue {
        header(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }

    fn malformed(v: &HeaderValue) -> bool {
        matches!(parse_basic(v), Err(AuthError::Malformed))
    }

    #[test]
    fn malformed_headers_are_rejected() {
        // No scheme, other schemes, empty values.
        assert!(malformed(&header("YWxpY2U6cHc=")));
        assert!(malformed(&header("Bearer x")));
        assert!(malformed(&header("Digest username=\"alice\"")));
        assert!(malformed(&header("")));
        assert!(malformed(&header("Basic")));
        assert!(malformed(&header("Basic ")));
        // A scheme that only starts with "Basic".
        assert!(malformed(&header("BasicX YWxpY2U6cHc=")));
        // Bad base64: wrong alphabet (URL-safe), missing padding, junk after the token.
        assert!(malformed(&header("Basic YWxpY2U6cHc")));
        assert!(malformed(&header("Basic !!!!")));
        assert!(malformed(&header("Basic YWxpY2U6cHc= extra")));
        let urlsafe = base64::engine::general_purpose::URL_SAFE.encode(b"alice:??>??>");
        assert!(urlsafe.contains('-') || urlsafe.contains('_'), "{urlsafe}");
        assert!(malformed(&header(&format!("Basic {urlsafe}"))));
    }

    #[test]
    fn no_colon_non_utf8_and_bad_user_names_are_rejected() {
        assert!(malformed(&basic(b"alicepw")));
        assert!(malformed(&basic(b"alice\xff:pw")));
        assert!(malformed(&basic(b"alice:p\xc3w")));
        assert!(malformed(&basic(b":pw")));
        assert!(malformed(&basic(b"ali\nce:pw")));
        // The header itself is not visible ASCII.
        let v = HeaderValue::from_bytes(b"Basic \xe4").unwrap();
        assert!(malformed(&v));
    }

    #[test]
    fn valid_headers_parse() {
        let c = parse_basic(&basic(b"alice:pw")).unwrap();
        assert_eq!((c.user(), c.password()), ("alice", "pw"));
        // Scheme case-insensitive; surrounding and separating whitespace tolerated.
        let c = parse_basic(&header("bAsIc   YWxpY2U6cHc= ")).unwrap();
        assert_eq!((c.user(), c.password()), ("alice", "pw"));
        // Split at the first colon: the password keeps its colons.
        let c = parse_basic(&basic(b"alice:a:b::c")).unwrap();
        assert_eq!((c.user(), c.password()), ("alice", "a:b::c"));
        // Empty password is syntactically fine (verification decides).
        let c = parse_basic(&basic(b"alice:")).unwrap();
        assert_eq!(c.password(), "");
        // UTF-8 in both parts.
        let c = parse_basic(&basic("jürgen:pässwörd".as_bytes())).unwrap();
        assert_eq!((c.user(), c.password()), ("jürgen", "pässwörd"));
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = parse_basic(&basic(b"alice:s3cret-pw")).unwrap();
        let dbg = format!("{c:?}");
        assert!(dbg.contains("alice") && !dbg.contains("s3cret-pw"), "{dbg}");
    }

    #[test]
    fn check_password_hash_rejects_bad_hashes() {
        for bad in [
            "",
            "plaintext",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
        ] {
            assert!(check_password_hash(bad).is_err(), "{bad:?} accepted");
        }
        // Other argon2 variants and other algorithms are refused.
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, cheap_params())
            .hash_password(b"pw", &SaltString::encode_b64(&[7; 16]).unwrap())
            .unwrap()
            .to_string();
        let e = check_password_hash(&argon2i).unwrap_err().to_string();
        assert!(
            e.contains("argon2i") && e.contains("expected argon2id"),
            "{e}"
        );
        assert!(check_password_hash("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
        // Too costly params.
        let huge = cheap_hash("pw").replace("m=256", "m=4194304");
        let e = check_password_hash(&huge).unwrap_err().to_string();
        assert!(e.contains("too costly"), "{e}");
    }

    #[test]
    fn verify_outcomes() {
        let phc = cheap_hash("pw");
        assert_eq!(verify(Some(&phc), "pw"), Verdict::Match);
        assert_eq!(verify(Some(&phc), "pw "), Verdict::Mismatch);
        assert_eq!(verify(Some(&phc), ""), Verdict::Mismatch);
        assert_eq!(verify(Some("not a hash"), "pw"), Verdict::Mismatch);
        assert_eq!(verify(None, "pw"), Verdict::UnknownUser);
        // Even the dummy password does not log an unknown user in.
        assert_eq!(
            verify(None, "distpoint-dummy-password"),
            Verdict::UnknownUser
        );
    }

    #[test]
    fn hash_password_uses_default_params_and_verifies() {
        let phc = hash_password("correct horse:battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(check_password_hash(&phc), Ok(()));
        assert_eq!(verify(Some(&phc), "correct horse:battery"), Verdict::Match);
        assert_eq!(verify(Some(&phc), "correct horse"), Verdict::Mismatch);
        // Random salt: the same password hashes differently.
        assert_ne!(random_salt().unwrap(), random_salt().unwrap());
        assert_ne!(cheap_hash("pw"), cheap_hash("pw"));
        assert!(matches!(hash_password(""), Err(HashPasswordError::Empty)));
    }
}
