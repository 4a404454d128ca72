//! Where webhooks may be sent: public http(s) addresses only, so that a webhook cannot
//! make this service reach into its own network (SSRF: the cloud metadata endpoint,
//! databases, admin ports).
//!
//! Link-local and cloud metadata addresses ([`is_metadata`]) are refused whatever the
//! policy: allowing private targets (local development) never opens the instance's
//! credentials to a webhook.
//!
//! The check runs on the addresses a name resolves to, at creation and again at every
//! delivery: the HTTP client resolves through [`CheckingResolver`], which drops
//! internal addresses, so a name that later resolves elsewhere (DNS rebinding) is
//! refused too. Redirects are never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || first == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64 onto v4
                && v6 != Ipv6Addr::LOCALHOST
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Whether `ip` is link-local or a cloud metadata endpoint, in any of its forms: never
/// a webhook's target, however the policy is set. 169.254.0.0/16 (AWS, GCP and Azure
/// metadata among it), 100.100.100.200 (Alibaba Cloud), fe80::/10, fd00:ec2::254 (AWS
/// over IPv6), and IPv4 ones written as IPv6 (mapped, compatible, NAT64, 6to4).
pub fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_metadata_v4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            (segments[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
                || embedded_v4(v6).is_some_and(is_metadata_v4)
        }
    }
}

fn is_metadata_v4(ip: Ipv4Addr) -> bool {
    ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200)
}

/// The IPv4 address an IPv6 one carries: mapped (`::ffff:a.b.c.d`), compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(low)
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else {
        None
    }
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("must be an http or https URL")]
    Scheme,
    #[error("must name a host")]
    NoHost,
    #[error("must not carry credentials")]
    Credentials,
    #[error("does not resolve")]
    Unresolved,
    #[error("resolves to an internal address")]
    Internal,
    #[error("resolves to a link-local or cloud metadata address")]
    Metadata,
}

/// The policy: internal addresses refused unless `allow_private`; link-local and
/// metadata addresses refused always.
#[derive(Debug, Clone, Copy)]
pub struct TargetPolicy {
    pub allow_private: bool,
}

impl TargetPolicy {
    fn allows(&self, ip: IpAddr) -> bool {
        !is_metadata(ip) && (self.allow_private || is_public(ip))
    }

    /// Whether a host that resolves to `addrs` may be a target: every one of them
    /// must be allowed (the client may connect to any).
    pub fn check_addrs(&self, addrs: &[IpAddr]) -> Result<(), Refused> {
        if addrs.is_empty() {
            Err(Refused::Unresolved)
        } else if addrs.iter().any(|ip| is_metadata(*ip)) {
            Err(Refused::Metadata)
        } else if addrs.iter().all(|ip| self.allows(*ip)) {
            Ok(())
        } else {
            Err(Refused::Internal)
        }
    }

    /// Checks a webhook URL: scheme, host, and every address the host resolves to.
    pub async fn check(&self, url: &str) -> Result<Url, Refused> {
        let (url, addrs) = self.resolve(url).await?;
        self.check_addrs(&addrs?).map(|()| url)
    }

    /// Checks a webhook URL being registered: as [`Self::check`], except that a name
    /// that does not resolve (yet) is accepted. Its deliveries check it again, and
    /// whatever it resolves to then must pass.
    pub async fn check_new(&self, url: &str) -> Result<Url, Refused> {
        match self.resolve(url).await? {
            (url, Err(Refused::Unresolved)) => Ok(url),
            (url, addrs) => self.check_addrs(&addrs?).map(|()| url),
        }
    }

    /// The URL, and the addresses its host is or resolves to.
    async fn resolve(&self, url: &str) -> Result<(Url, Result<Vec<IpAddr>, Refused>), Refused> {
        let url = Url::parse(url).map_err(|_| Refused::Scheme)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::Credentials);
        }
        let host = url.host_str().ok_or(Refused::NoHost)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs = match host.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![ip]),
            Err(_) => tokio::net::lookup_host((host, 0))
                .await
                .map(|addrs| addrs.map(|a| a.ip()).collect())
                .map_err(|_| Refused::Unresolved),
        };
        Ok((url, addrs))
    }
}

/// A resolver for the webhook client that keeps only allowed addresses, so the
/// address connected to is the address checked.
#[derive(Debug, Clone)]
pub struct CheckingResolver {
    pub policy: TargetPolicy,
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|addr| policy.allows(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Refused::Internal) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client webhooks are sent with: checked resolution, no redirects, no
/// proxies from the environment, a timeout.
pub fn client(
    policy: TargetPolicy,
    timeout: std::time::Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckingResolver { policy }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent("Switchyard-Webhooks/1")
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_private: false,
    };
    const OPEN: TargetPolicy = TargetPolicy {
        allow_private: true,
    };

    #[tokio::test]
    async fn internal_targets_are_refused_by_default() {
        for url in [
            "http://10.0.0.1/hook",
            "http://127.0.0.1:8080/hook",
            "http://localhost:8080/hook",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://192.168.1.10/hook",
            "http://172.16.0.1/hook",
            "http://100.64.0.1/hook",
            "http://0.0.0.0/hook",
            "http://[fd00::1]/hook",
        ] {
            assert_eq!(STRICT.check(url).await, Err(Refused::Internal), "{url}");
        }
    }

    #[tokio::test]
    async fn only_http_urls_without_credentials_are_accepted() {
        assert_eq!(
            STRICT.check("ftp://93.184.215.14/").await,
            Err(Refused::Scheme)
        );
        assert_eq!(
            STRICT.check("file:///etc/passwd").await,
            Err(Refused::Scheme)
        );
        assert_eq!(STRICT.check("not a url").await, Err(Refused::Scheme));
        assert_eq!(
            STRICT.check("https://user:pw@93.184.215.14/").await,
            Err(Refused::Credentials)
        );
        assert!(STRICT.check("https://93.184.215.14/hook").await.is_ok());
        assert!(
            STRICT
                .check("http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn metadata_and_link_local_targets_are_refused_even_when_private_ones_are_allowed() {
        for policy in [STRICT, OPEN] {
            for url in [
                "http://169.254.169.254/latest/meta-data",
                "http://169.254.0.1/",
                "http://169.254.255.255:8080/",
                "http://100.100.100.200/latest/meta-data",
                "http://[fe80::1]/",
                "http://[febf:ffff::1]/",
                "http://[fd00:ec2::254]/latest/meta-data",
                "http://[::ffff:169.254.169.254]/",
                "http://[::ffff:a9fe:a9fe]/",
                "http://[::169.254.169.254]/",
                "http://[64:ff9b::a9fe:a9fe]/",
                "http://[2002:a9fe:a9fe::1]/",
                "http://[::ffff:100.100.100.200]/",
                // The integer and short forms a URL parser reads as 169.254.169.254.
                "http://2852039166/",
                "http://0xa9.0xfe.0xa9.0xfe/",
                "http://169.254.43518/",
            ] {
                assert_eq!(policy.check(url).await, Err(Refused::Metadata), "{url}");
            }
        }
    }

    #[test]
    fn a_name_is_refused_if_any_address_it_resolves_to_is_metadata() {
        let resolved =
            |list: &[&str]| -> Vec<IpAddr> { list.iter().map(|ip| ip.parse().unwrap()).collect() };
        for policy in [STRICT, OPEN] {
            assert_eq!(
                policy.check_addrs(&resolved(&["93.184.215.14", "169.254.169.254"])),
                Err(Refused::Metadata)
            );
            assert_eq!(
                policy.check_addrs(&resolved(&["fe80::a", "2606:2800:21f:cb07::1"])),
                Err(Refused::Metadata)
            );
            assert_eq!(policy.check_addrs(&[]), Err(Refused::Unresolved));
            assert_eq!(policy.check_addrs(&resolved(&["93.184.215.14"])), Ok(()));
        }
        assert_eq!(
            OPEN.check_addrs(&resolved(&["10.0.0.5", "127.0.0.1"])),
            Ok(())
        );
        assert_eq!(
            STRICT.check_addrs(&resolved(&["10.0.0.5"])),
            Err(Refused::Internal)
        );
        // Neighbours of the refused ranges stay what the policy says.
        assert_eq!(OPEN.check_addrs(&resolved(&["169.253.255.255"])), Ok(()));
        assert_eq!(OPEN.check_addrs(&resolved(&["100.100.100.201"])), Ok(()));
        assert_eq!(OPEN.check_addrs(&resolved(&["fec0::1"])), Ok(()));
    }

    #[tokio::test]
    async fn the_resolver_drops_metadata_addresses_whatever_the_policy() {
        // A literal address reaches the resolver as a name when a client resolves it.
        let resolver = CheckingResolver { policy: OPEN };
        let name: Name = "169.254.169.254".parse().unwrap();
        assert!(resolver.resolve(name).await.is_err());
        let name: Name = "127.0.0.1".parse().unwrap();
        assert!(resolver.resolve(name).await.is_ok());
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_may_be_registered_but_not_delivered_to() {
        let url = "https://no-such-host.invalid/hook";
        assert!(STRICT.check_new(url).await.is_ok());
        assert_eq!(STRICT.check(url).await, Err(Refused::Unresolved));
        // What resolves, or is an address, is checked at registration too.
        assert_eq!(
            OPEN.check_new("http://169.254.169.254/").await,
            Err(Refused::Metadata)
        );
        assert_eq!(
            STRICT.check_new("http://localhost:9/hook").await,
            Err(Refused::Internal)
        );
    }

    #[tokio::test]
    async fn allowing_private_targets_admits_loopback() {
        assert!(OPEN.check("http://127.0.0.1:9/hook").await.is_ok());
        assert!(OPEN.check("http://localhost:9/hook").await.is_ok());
    }
}
