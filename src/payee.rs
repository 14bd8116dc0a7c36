//! Who is paid, as the per-host cap and the distrust of sellers count it: one server however it
//! is named.
//!
//! A URL names a server by a host name or an address, and the same server answers to many
//! spellings: `127.0.0.1`, `[::ffff:127.0.0.1]` and `localhost`; `api.example.com` and
//! `www.example.com`. A payee is therefore a set of keys, and two payments go to one server
//! when their key sets share a key:
//!
//! - `dns:<registrable domain>` for a host name (Public Suffix List: `api.example.co.uk` ->
//!   `example.co.uk`, while `alice.github.io` and `bob.github.io` stay apart), or the whole
//!   name when it has no registrable domain (`localhost`, an intranet name);
//! - `ip:<address>` for every address the server was reached at or its name resolves to:
//!   IPv4 as is (IPv4-mapped IPv6 is IPv4), IPv6 by its /64 (one host's allocation, so an
//!   attacker cannot take a fresh identity per address of their block).
//!
//! Sites sharing an address (a CDN) share a per-host cap and a distrust: the conservative
//! choice, since the cap and the distrust exist to stop money leaving.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

/// The identity of a payee: its display host and the keys it is known by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payee {
    /// The host as shown to people and kept in the ledger (lower case, no trailing dot).
    pub host: String,
    /// Every key of this server (see the module docs); never empty.
    keys: BTreeSet<String>,
}

impl Payee {
    /// The payee a URL host names, before any address is known. `host` is a URL's host text:
    /// a name, an IPv4 address, or an IPv6 address with or without brackets.
    pub fn of_host(host: &str) -> Payee {
        let trimmed = host.trim_start_matches('[').trim_end_matches(']');
        let mut payee = Payee {
            host: crate::budget::normalize_host(trimmed),
            keys: BTreeSet::new(),
        };
        match trimmed.parse::<IpAddr>() {
            Ok(ip) => {
                payee.host = canonical_ip(ip).to_string();
                payee.add_address(ip);
            }
            Err(_) => {
                let key = name_key(&payee.host);
                payee.keys.insert(key);
            }
        }
        payee
    }

    /// A payee as stored: its host and keys (from [`Payee::key_list`]).
    pub fn from_parts(host: &str, keys: &[String]) -> Payee {
        let mut payee = Payee::of_host(host);
        payee.keys.extend(keys.iter().cloned());
        payee
    }

    /// Another address this server is reached at, or its name resolves to.
    pub fn add_address(&mut self, ip: IpAddr) {
        self.keys.insert(ip_key(ip));
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(String::as_str)
    }

    /// The keys as a vector (for storage).
    pub fn key_list(&self) -> Vec<String> {
        self.keys.iter().cloned().collect()
    }

    /// The keys as a JSON array (bound as one SQL parameter, read with `json_each`).
    pub(crate) fn keys_json(&self) -> String {
        serde_json::Value::from(self.key_list()).to_string()
    }
}

/// IPv4-mapped IPv6 addresses are their IPv4 address.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn ip_key(ip: IpAddr) -> String {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("ip:{net}/64")
        }
    }
}

/// `dns:` and the registrable domain of `name`, or the whole name when it has none.
fn name_key(name: &str) -> String {
    let registrable = psl::domain_str(name).filter(|d| d.contains('.'));
    format!("dns:{}", registrable.unwrap_or(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(host: &str) -> Vec<String> {
        Payee::of_host(host).key_list()
    }

    #[test]
    fn one_server_however_spelled() {
        assert_eq!(keys("127.0.0.1"), ["ip:127.0.0.1"]);
        assert_eq!(keys("[::ffff:127.0.0.1]"), ["ip:127.0.0.1"]);
        assert_eq!(keys("::ffff:7f00:1"), ["ip:127.0.0.1"]);
        assert_eq!(Payee::of_host("[::ffff:127.0.0.1]").host, "127.0.0.1");
        assert_eq!(keys("[2001:db8:1:2::5]"), keys("2001:db8:1:2:ffff::9"));
        assert_ne!(keys("2001:db8:1:2::5"), keys("2001:db8:1:3::5"));
        let mut localhost = Payee::of_host("localhost");
        assert_eq!(localhost.key_list(), ["dns:localhost"]);
        localhost.add_address("127.0.0.1".parse().unwrap_or(IpAddr::V4([0; 4].into())));
        assert!(localhost.keys().any(|k| k == "ip:127.0.0.1"));
    }

    #[test]
    fn subdomains_of_one_registrable_domain_are_one_payee() {
        assert_eq!(keys("api.example.com"), ["dns:example.com"]);
        assert_eq!(keys("WWW.Example.COM."), ["dns:example.com"]);
        assert_eq!(keys("a.b.example.co.uk"), ["dns:example.co.uk"]);
        // Private suffixes of the list keep their users apart.
        assert_ne!(keys("alice.github.io"), keys("bob.github.io"));
        // No registrable domain: the name itself.
        assert_eq!(keys("intranet"), ["dns:intranet"]);
        assert_eq!(keys("co.uk"), ["dns:co.uk"]);
    }
}
