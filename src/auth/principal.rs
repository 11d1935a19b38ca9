//! Principals, allow-list entries, request identities and the account directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Who made a request. Typed so that a certificate CN can never be confused with a user name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// A user that proved its password with HTTP Basic.
    User(String),
    /// A client certificate (by its subject CN) that TLS verified against `client_ca`.
    Cert(String),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(name) => write!(f, "user:{name}"),
            Principal::Cert(cn) => write!(f, "cert:{cn}"),
        }
    }
}

/// An entry of an allow list or a group: `user:NAME`, `cert:CN` or `group:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalRef {
    /// `user:NAME`: the Basic account `NAME`.
    User(String),
    /// `cert:CN`: a verified client certificate whose subject CN is `CN`.
    Cert(String),
    /// `group:NAME`: every member of `[groups] NAME`.
    Group(String),
}

impl fmt::Display for PrincipalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrincipalRef::User(name) => write!(f, "user:{name}"),
            PrincipalRef::Cert(cn) => write!(f, "cert:{cn}"),
            PrincipalRef::Group(name) => write!(f, "group:{name}"),
        }
    }
}

/// Why a string is not a valid [`PrincipalRef`]; the message is meant for `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsePrincipalError {
    message: String,
}

impl fmt::Display for ParsePrincipalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParsePrincipalError {}

impl FromStr for PrincipalRef {
    type Err = ParsePrincipalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |message: String| ParsePrincipalError { message };
        // The kind is case-sensitive on purpose: the config is strict everywhere else too,
        // and one spelling per kind keeps allow lists greppable.
        let (kind, name) = match s.split_once(':') {
            Some((kind @ ("user" | "cert" | "group"), name)) => (kind, name),
            _ => {
                return Err(err(format!(
                    "expected user:NAME, cert:CN or group:NAME, got {s:?}"
                )))
            }
        };
        if name.is_empty() {
            return Err(err(format!("empty name in {s:?}")));
        }
        if name.chars().any(char::is_control) {
            return Err(err(format!("control character in {s:?}")));
        }
        Ok(match kind {
            "user" => {
                check_user_name(name).map_err(|e| err(format!("{e} in {s:?}")))?;
                PrincipalRef::User(name.to_owned())
            }
            "cert" => PrincipalRef::Cert(name.to_owned()),
            _ => PrincipalRef::Group(name.to_owned()),
        })
    }
}

/// Why a user name or group member is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// An empty user name.
    Empty,
    /// A ':' in a user name.
    Colon,
    /// A control character in a user name.
    Control,
    /// A group listed as a member of a group.
    NestedGroup(PrincipalRef),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("empty user name"),
            NameError::Colon => f.write_str("a user name cannot contain ':'"),
            NameError::Control => f.write_str("a user name cannot contain control characters"),
            NameError::NestedGroup(m) => write!(
                f,
                "groups cannot contain other groups ({m}); list its users and certificates instead"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a user name, for `[users.NAME]` and `user:NAME`: it must be non-empty, without
/// ':' (HTTP Basic splits user and password at the first ':', so such a user could never
/// log in) and without control characters (they could never be sent, and they would garble
/// logs).
pub fn check_user_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.contains(':') {
        Err(NameError::Colon)
    } else if name.chars().any(char::is_control) {
        Err(NameError::Control)
    } else {
        Ok(())
    }
}

/// Checks one member of a `[groups]` entry: members must be `user:` or `cert:`.
///
/// Nested groups are not supported (no cycles, and an allow list stays readable with one
/// level of indirection). The config module should report this error; [`Directory`]
/// itself ignores such a member, so it grants nothing even if validation is skipped.
pub fn check_group_member(member: &PrincipalRef) -> Result<(), NameError> {
    match member {
        PrincipalRef::Group(_) => Err(NameError::NestedGroup(member.clone())),
        PrincipalRef::User(_) | PrincipalRef::Cert(_) => Ok(()),
    }
}

/// Everything the request presented, after verification. Empty = anonymous.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The Basic user whose password was verified.
    pub user: Option<String>,
    /// The CN of a client certificate that TLS verified.
    pub cert: Option<String>,
}

impl Identity {
    /// True if the request presented no credentials at all.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_none() && self.cert.is_none()
    }

    /// The principals this identity proves: the user first, then the certificate.
    pub fn principals(&self) -> Vec<Principal> {
        let user = self.user.iter().cloned().map(Principal::User);
        let cert = self.cert.iter().cloned().map(Principal::Cert);
        user.chain(cert).collect()
    }
}

impl fmt::Display for Identity {
    /// The access-log form: `user:alice`, `cert:x`, `user:alice+cert:x`, or `-` when anonymous.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let principals = self.principals();
        if principals.is_empty() {
            return f.write_str("-");
        }
        for (i, p) in principals.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The accounts and groups of one config snapshot (built by the config module).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// User name → argon2id PHC string.
    users: BTreeMap<String, String>,
    /// Group name → members (`user:`/`cert:` only; `group:` members are ignored).
    groups: BTreeMap<String, Vec<PrincipalRef>>,
}

impl Directory {
    /// Builds a directory from `[users.NAME] password_hash` and `[groups]`.
    pub fn new(
        users: BTreeMap<String, String>,
        groups: BTreeMap<String, Vec<PrincipalRef>>,
    ) -> Self {
        Directory { users, groups }
    }

    /// True if `[users.NAME]` exists.
    pub fn has_user(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    /// True if `[groups] NAME` exists.
    pub fn has_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// The user names, sorted (for logging config changes; never the hashes).
    pub fn user_names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// True if `name` exists in both directories with a different password hash.
    /// Lets a config reload report a password change without ever exposing a hash.
    pub fn password_changed(&self, other: &Directory, name: &str) -> bool {
        matches!((self.users.get(name), other.users.get(name)), (Some(a), Some(b)) if a != b)
    }

    /// The groups and their members, sorted by group name.
    pub fn groups(&self) -> impl Iterator<Item = (&str, &[PrincipalRef])> {
        self.groups.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The PHC string of a user, if the user exists.
    pub(super) fn password_hash(&self, name: &str) -> Option<&str> {
        self.users.get(name).map(String::as_str)
    }

    /// True if any principal of `identity` is named by `allow` directly or through a group.
    pub fn is_allowed(&self, identity: &Identity, allow: &[PrincipalRef]) -> bool {
        let user = identity.user.as_deref();
        let cert = identity.cert.as_deref();
        // Each kind is compared only with its own kind: a certificate whose CN is "alice"
        // must never count as user alice.
        let matches = |r: &PrincipalRef| match r {
            PrincipalRef::User(name) => user == Some(name.as_str()),
            PrincipalRef::Cert(cn) => cert == Some(cn.as_str()),
            PrincipalRef::Group(_) => false,
        };
        allow.iter().any(|r| match r {
            PrincipalRef::Group(g) => self
                .groups
                .get(g)
                .is_some_and(|members| members.iter().any(matches)),
            direct => matches(direct),
        })
    }

    /// For `check-config`: expand an allow list into the concrete principals it names
    /// (groups expanded), sorted, deduped.
    ///
    /// Unknown groups and nested `group:` members expand to nothing, as they grant nothing.
    pub fn expand(&self, allow: &[PrincipalRef]) -> Vec<Principal> {
        let mut out = BTreeSet::new();
        let mut add = |r: &PrincipalRef| match r {
            PrincipalRef::User(name) => {
                out.insert(Principal::User(name.clone()));
            }
            PrincipalRef::Cert(cn) => {
                out.insert(Principal::Cert(cn.clone()));
            }
            PrincipalRef::Group(_) => {}
        };
        for r in allow {
            match r {
                PrincipalRef::Group(g) => {
                    self.groups.get(g).into_iter().flatten().for_each(&mut add)
                }
                direct => add(direct),
            }
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> PrincipalRef {
        s.parse().unwrap()
    }

    fn user(name: &str) -> Identity {
        Identity {
            user: Some(name.into()),
            cert: None,
        }
    }

    fn cert(cn: &str) -> Identity {
        Identity {
            user: None,
            cert: Some(cn.into()),
        }
    }

    fn dir() -> Directory {
        let users = BTreeMap::from([("alice".into(), "x".into()), ("bob".into(), "y".into())]);
        let groups = BTreeMap::from([
            (
                "clients".into(),
                vec![r("user:alice"), r("cert:client01.example.com")],
            ),
            ("outer".into(), vec![r("group:clients"), r("user:carol")]),
        ]);
        Directory::new(users, groups)
    }

    #[test]
    fn parse_rejects_missing_or_unknown_kind() {
        let e = "alice".parse::<PrincipalRef>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"expected user:NAME, cert:CN or group:NAME, got "alice""#
        );
        for bad in [
            "",
            ":alice",
            "User:alice",
            "role:admin",
            "users:alice",
            " user:alice",
        ] {
            assert!(bad.parse::<PrincipalRef>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parse_rejects_empty_names_and_bad_characters() {
        for bad in ["user:", "cert:", "group:"] {
            let e = bad.parse::<PrincipalRef>().unwrap_err();
            assert!(e.to_string().contains("empty name"), "{e}");
        }
        let e = "user:a:b".parse::<PrincipalRef>().unwrap_err();
        assert!(e.to_string().contains("cannot contain ':'"), "{e}");
        assert!("user:a\nb".parse::<PrincipalRef>().is_err());
        assert!("cert:a\u{7f}".parse::<PrincipalRef>().is_err());
        assert!(check_user_name("alice").is_ok() && check_user_name("jürgen.o'neil").is_ok());
        for bad in ["", "a:b", "a\tb", "a\u{0}"] {
            assert!(check_user_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parse_and_display_round_trip() {
        assert_eq!(r("user:alice"), PrincipalRef::User("alice".into()));
        assert_eq!(
            r("cert:client01.example.com"),
            PrincipalRef::Cert("client01.example.com".into())
        );
        assert_eq!(r("group:clients"), PrincipalRef::Group("clients".into()));
        // A CN may contain ':' (only user names are split by Basic).
        assert_eq!(r("cert:a:b"), PrincipalRef::Cert("a:b".into()));
        for s in ["user:alice", "cert:a:b", "group:g", "user:Ünïcode"] {
            assert_eq!(r(s).to_string(), s);
        }
        assert_eq!(Principal::User("alice".into()).to_string(), "user:alice");
        assert_eq!(
            Principal::Cert("c.example".into()).to_string(),
            "cert:c.example"
        );
    }

    #[test]
    fn identity_display_and_principals() {
        assert_eq!(Identity::default().to_string(), "-");
        assert!(Identity::default().is_anonymous());
        assert!(Identity::default().principals().is_empty());
        assert_eq!(user("alice").to_string(), "user:alice");
        assert_eq!(cert("x").to_string(), "cert:x");
        let both = Identity {
            user: Some("alice".into()),
            cert: Some("x".into()),
        };
        assert!(!both.is_anonymous());
        assert_eq!(both.to_string(), "user:alice+cert:x");
        assert_eq!(
            both.principals(),
            vec![Principal::User("alice".into()), Principal::Cert("x".into())]
        );
    }

    #[test]
    fn anonymous_is_never_allowed_by_an_allow_list() {
        let d = dir();
        assert!(!d.is_allowed(&Identity::default(), &[r("user:alice"), r("group:clients")]));
        assert!(!d.is_allowed(&user("alice"), &[]));
    }

    #[test]
    fn cert_cn_equal_to_user_name_grants_nothing_of_that_user() {
        let d = dir();
        assert!(!d.is_allowed(&cert("alice"), &[r("user:alice")]));
        assert!(!d.is_allowed(&cert("alice"), &[r("group:clients")]));
        // And the other way round.
        assert!(!d.is_allowed(
            &user("client01.example.com"),
            &[r("cert:client01.example.com")]
        ));
        assert!(!d.is_allowed(&user("client01.example.com"), &[r("group:clients")]));
    }

    #[test]
    fn names_must_match_exactly() {
        let d = dir();
        assert!(!d.is_allowed(&user("Alice"), &[r("user:alice")]));
        assert!(!d.is_allowed(&user("alice "), &[r("user:alice")]));
        assert!(!d.is_allowed(
            &cert("CLIENT01.example.com"),
            &[r("cert:client01.example.com")]
        ));
        // A group name is not a user name.
        assert!(!d.is_allowed(&user("clients"), &[r("group:clients")]));
    }

    #[test]
    fn direct_entries_allow() {
        let d = dir();
        assert!(d.is_allowed(&user("alice"), &[r("user:bob"), r("user:alice")]));
        assert!(d.is_allowed(&cert("c.example"), &[r("cert:c.example")]));
        assert!(!d.is_allowed(&user("bob"), &[r("user:alice")]));
    }

    #[test]
    fn group_membership_of_both_kinds_allows() {
        let d = dir();
        let allow = [r("group:clients")];
        assert!(d.is_allowed(&user("alice"), &allow));
        assert!(d.is_allowed(&cert("client01.example.com"), &allow));
        assert!(!d.is_allowed(&user("bob"), &allow));
        assert!(!d.is_allowed(&cert("client02.example.com"), &allow));
        // Either principal of a combined identity is enough.
        let both = Identity {
            user: Some("bob".into()),
            cert: Some("client01.example.com".into()),
        };
        assert!(d.is_allowed(&both, &allow));
    }

    #[test]
    fn unknown_group_allows_nobody() {
        let d = dir();
        assert!(!d.is_allowed(&user("alice"), &[r("group:nope")]));
        assert!(d.expand(&[r("group:nope")]).is_empty());
    }

    #[test]
    fn nested_group_member_is_ignored_and_rejected_by_validation() {
        let d = dir();
        // "outer" contains group:clients, which is not followed.
        assert!(!d.is_allowed(&user("alice"), &[r("group:outer")]));
        assert!(!d.is_allowed(&cert("client01.example.com"), &[r("group:outer")]));
        assert!(d.is_allowed(&user("carol"), &[r("group:outer")]));
        assert_eq!(
            d.expand(&[r("group:outer")]),
            vec![Principal::User("carol".into())]
        );
        let e = check_group_member(&r("group:clients"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("group:clients"), "{e}");
        assert!(check_group_member(&r("user:alice")).is_ok());
        assert!(check_group_member(&r("cert:c")).is_ok());
    }

    #[test]
    fn expand_sorts_dedupes_and_expands_groups() {
        let d = dir();
        let got = d.expand(&[
            r("user:zed"),
            r("group:clients"),
            r("user:alice"),
            r("cert:b"),
        ]);
        assert_eq!(
            got,
            vec![
                Principal::User("alice".into()),
                Principal::User("zed".into()),
                Principal::Cert("b".into()),
                Principal::Cert("client01.example.com".into()),
            ]
        );
    }

    #[test]
    fn directory_lookups() {
        let d = dir();
        assert!(d.has_user("alice") && !d.has_user("carol") && !d.has_user(""));
        assert!(d.has_group("clients") && !d.has_group("alice"));
        assert_eq!(d.password_hash("bob"), Some("y"));
        assert_eq!(d.password_hash("nobody"), None);
    }
}
