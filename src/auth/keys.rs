//! What failures are counted for: a client (an IPv4 address or an IPv6 /64) and an
//! account (a user name as presented, whether or not it exists).

use std::net::{IpAddr, Ipv6Addr};

use sha2::{Digest, Sha256};

/// The unit clients are counted, queued and locked out by: an IPv4 address or an IPv6 /64.
///
/// One subscriber usually gets a whole /64, so per-address counting would let it rotate
/// addresses for free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct ClientKey(IpAddr);

impl ClientKey {
    /// The key for a peer address.
    pub(super) fn of(ip: IpAddr) -> ClientKey {
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; grouping those by /64
        // would put every IPv4 client in one bucket, so they count as plain IPv4.
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

/// An account failures are counted for: the first 16 bytes of SHA-256 of the user name.
///
/// Unknown user names are accounts too, so that which names exist cannot be learnt from
/// how the throttle answers. Hashing bounds an entry's size whatever the name's length
/// (up to the largest request head), and keeps names (sometimes a mistyped password) out
/// of memory dumps of the table. 128 bits make a collision, which would only make two
/// names share a count, out of reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct AccountKey([u8; 16]);

impl AccountKey {
    /// The key for a user name as it appears in a Basic header.
    pub(super) fn of(user: &str) -> AccountKey {
        let digest = Sha256::digest(user.as_bytes());
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        AccountKey(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        assert_eq!(ClientKey::of(a).to_string(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let other: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        let plain = ClientKey::of(IpAddr::from([192, 0, 2, 1]));
        assert_eq!(ClientKey::of(mapped), plain);
        assert_eq!(plain.to_string(), "192.0.2.1");
        assert_ne!(ClientKey::of(mapped), ClientKey::of(other));
    }

    #[test]
    fn accounts_are_user_names_exactly() {
        assert_eq!(AccountKey::of("alice"), AccountKey::of("alice"));
        assert_ne!(AccountKey::of("alice"), AccountKey::of("Alice"));
        assert_ne!(AccountKey::of("alice"), AccountKey::of("alice "));
        // Any length costs the same 16 bytes.
        let long = "x".repeat(16_000);
        assert_ne!(AccountKey::of(&long), AccountKey::of(&long[1..]));
    }
}
