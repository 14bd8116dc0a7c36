//! Which network addresses `fetch_paid` may reach. An agent's URLs can come from a prompt
//! injection, so by default only public addresses are fetched: loopback, private (RFC 1918,
//! CGNAT, IPv6 ULA), link-local (which holds the cloud metadata services, 169.254.169.254 and
//! fd00:ec2::254) and other special ranges are refused unless the configuration allows them.
//!
//! The check runs in the DNS resolver the HTTP client uses, so a name cannot resolve to a
//! public address for a check and to a private one for the connection; IP-literal URLs are
//! checked before sending.
//!
//! The environment's proxy settings (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) are ignored: a
//! proxy resolves the target itself, past the resolver. A proxy is used only when configured
//! (`[fetch] proxy`); then every address the target name resolves to here must be allowed
//! before the request goes to the proxy, and the proxy's own resolution is outside this guard
//! (documented in the README).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// What may be reached besides public addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetPolicy {
    /// 127.0.0.0/8 and ::1 (the demo turns this on).
    pub allow_loopback: bool,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7.
    pub allow_private: bool,
    /// 169.254/16 and fe80::/10, where cloud metadata services live.
    pub allow_link_local: bool,
}

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{host} is refused: {reason} addresses are not fetched unless allowed in the configuration ([fetch] {setting} = true)"
)]
pub struct Blocked {
    pub host: String,
    pub reason: &'static str,
    pub setting: &'static str,
}

/// The class of an address that is not public, if it is not.
fn special(ip: IpAddr) -> Option<(&'static str, &'static str)> {
    const LOOPBACK: (&str, &str) = ("loopback", "allow_loopback");
    const PRIVATE: (&str, &str) = ("private-network", "allow_private");
    const LINK_LOCAL: (&str, &str) = ("link-local or cloud-metadata", "allow_link_local");
    const OTHER: (&str, &str) = ("reserved, unspecified or multicast", "(none: never)");
    match ip {
        IpAddr::V4(v4) => special_v4(v4, LOOPBACK, PRIVATE, LINK_LOCAL, OTHER),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return special_v4(v4, LOOPBACK, PRIVATE, LINK_LOCAL, OTHER);
            }
            let seg = v6.segments();
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                // NAT64: judge the embedded IPv4 address.
                let v4 = Ipv4Addr::new(
                    (seg[6] >> 8) as u8,
                    seg[6] as u8,
                    (seg[7] >> 8) as u8,
                    seg[7] as u8,
                );
                return special_v4(v4, LOOPBACK, PRIVATE, LINK_LOCAL, OTHER);
            }
            if v6.is_loopback() {
                Some(LOOPBACK)
            } else if (seg[0] & 0xfe00) == 0xfc00 {
                Some(PRIVATE)
            } else if (seg[0] & 0xffc0) == 0xfe80 {
                Some(LINK_LOCAL)
            } else if v6.is_unspecified()
                || v6.is_multicast()
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)
                || (seg[0] & 0xffc0) == 0xfec0
                || v6
                    .to_ipv4()
                    .is_some_and(|v4| seg[5] == 0 && !v4.is_unspecified())
            {
                // Deprecated IPv4-compatible ::a.b.c.d, documentation, site-local: never fetched.
                Some(OTHER)
            } else {
                None
            }
        }
    }
}

fn special_v4(
    v4: Ipv4Addr,
    loopback: (&'static str, &'static str),
    private: (&'static str, &'static str),
    link_local: (&'static str, &'static str),
    other: (&'static str, &'static str),
) -> Option<(&'static str, &'static str)> {
    let o = v4.octets();
    if v4.is_loopback() {
        Some(loopback)
    } else if v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        Some(private)
    } else if v4.is_link_local() {
        Some(link_local)
    } else if v4.is_unspecified()
        || o[0] == 0
        || v4.is_broadcast()
        || v4.is_multicast()
        || o[0] >= 240
        || v4.is_documentation()
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
    {
        Some(other)
    } else {
        None
    }
}

impl NetPolicy {
    /// Allow loopback only (the demo and local tests).
    pub fn loopback() -> NetPolicy {
        NetPolicy {
            allow_loopback: true,
            ..NetPolicy::default()
        }
    }

    /// Everything (for tests that need private addresses).
    #[cfg(test)]
    pub(crate) fn allow_all() -> NetPolicy {
        NetPolicy {
            allow_loopback: true,
            allow_private: true,
            allow_link_local: true,
        }
    }

    /// Check one address.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Blocked> {
        let Some((reason, setting)) = special(ip) else {
            return Ok(());
        };
        let allowed = match setting {
            "allow_loopback" => self.allow_loopback,
            "allow_private" => self.allow_private,
            "allow_link_local" => self.allow_link_local,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Blocked {
                host: host.to_owned(),
                reason,
                setting,
            })
        }
    }
}

impl NetPolicy {
    /// Check every address of `host`: all must be allowed (for a request whose connection
    /// this process does not make itself, through a proxy).
    pub(crate) fn check_all(&self, host: &str, addrs: &[IpAddr]) -> Result<(), Blocked> {
        addrs.iter().try_for_each(|ip| self.check(host, *ip))
    }
}

/// The addresses `host` resolves to (a name, or an IP literal without brackets).
pub async fn lookup(host: &str) -> std::io::Result<Vec<IpAddr>> {
    Ok(tokio::net::lookup_host((host, 0))
        .await?
        .map(|a| a.ip())
        .collect())
}

/// What names resolved to lately (all addresses, allowed or not), shared between the resolver
/// and whoever needs to know a server by its addresses ([`crate::payee`]).
#[derive(Debug, Clone, Default)]
pub struct Resolutions(Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<IpAddr>>>>);

/// Names remembered at most; the map starts over when full.
const RESOLUTIONS_KEPT: usize = 1024;

impl Resolutions {
    pub fn get(&self, name: &str) -> Option<Vec<IpAddr>> {
        let map = self.0.lock().ok()?;
        map.get(&name.to_ascii_lowercase()).cloned()
    }

    pub fn put(&self, name: &str, addrs: Vec<IpAddr>) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= RESOLUTIONS_KEPT {
                map.clear();
            }
            map.insert(name.to_ascii_lowercase(), addrs);
        }
    }
}

/// A DNS resolver for reqwest that only returns addresses the policy allows.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub policy: NetPolicy,
    /// A name resolved without the check: the configured proxy, which the operator chose.
    pub exempt: Option<String>,
    /// Where every resolution is written down.
    pub seen: Resolutions,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let exempt = self
            .exempt
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(name.as_str()));
        let seen = self.seen.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if exempt {
                let iter: reqwest::dns::Addrs = Box::new(addrs.into_iter());
                return Ok(iter);
            }
            seen.put(&host, addrs.iter().map(SocketAddr::ip).collect());
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match policy.check(&host, a.ip()) {
                    Ok(()) => true,
                    Err(b) => {
                        first_refusal.get_or_insert(b);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match first_refusal {
                    Some(b) => Box::new(b),
                    None => format!("{host} did not resolve to any address").into(),
                };
                return Err(err);
            }
            let iter: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(iter)
        })
    }
}

/// The resolver, shared; `exempt` names the configured proxy's host, if any; resolutions are
/// written to `seen`.
pub fn resolver(
    policy: NetPolicy,
    exempt: Option<&str>,
    seen: Resolutions,
) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver {
        policy,
        exempt: exempt.map(str::to_owned),
        seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> Option<&'static str> {
        NetPolicy::default()
            .check("h", s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
            .err()
            .map(|b| b.setting)
    }

    #[test]
    fn classes() {
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "93.184.216.34"] {
            assert_eq!(refused(ip), None, "{ip}");
        }
        for (ip, setting) in [
            ("127.0.0.1", "allow_loopback"),
            ("127.8.9.10", "allow_loopback"),
            ("::1", "allow_loopback"),
            ("::ffff:127.0.0.1", "allow_loopback"),
            ("64:ff9b::7f00:1", "allow_loopback"),
            ("10.1.2.3", "allow_private"),
            ("172.16.0.1", "allow_private"),
            ("192.168.1.1", "allow_private"),
            ("100.64.0.1", "allow_private"),
            ("fd00:ec2::254", "allow_private"),
            ("169.254.169.254", "allow_link_local"),
            ("::ffff:169.254.169.254", "allow_link_local"),
            ("fe80::1", "allow_link_local"),
            ("0.0.0.0", "(none: never)"),
            ("::", "(none: never)"),
            ("224.0.0.1", "(none: never)"),
            ("255.255.255.255", "(none: never)"),
            ("::127.0.0.1", "(none: never)"),
        ] {
            assert_eq!(refused(ip), Some(setting), "{ip}");
        }
        let lo = NetPolicy::loopback();
        assert!(
            lo.check(
                "h",
                "127.0.0.1"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            )
            .is_ok()
        );
        assert!(
            lo.check(
                "h",
                "10.0.0.1"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            )
            .is_err()
        );
        assert!(
            NetPolicy::allow_all()
                .check(
                    "h",
                    "0.0.0.0"
                        .parse()
                        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
                )
                .is_err()
        );
    }
}
