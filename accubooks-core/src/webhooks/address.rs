//! The SSRF guard: where an endpoint may point.
//!
//! The receiver is the internet. Unless `WEBHOOK_ALLOW_PRIVATE=1`, an
//! endpoint URL must be `https://` and every address it reaches must be
//! public. The URL is parsed with the `url` crate, as reqwest parses it, so
//! the host checked is the host connected to: decimal (`2130706433`),
//! octal and hex parts (`0177.0.0.1`, `0x7f.1`) and short forms (`127.1`)
//! are normalised to dotted quads before the check. A name is checked at
//! creation (what it resolves to then) and at every delivery *after* DNS:
//! [`GuardedResolver`] hands reqwest only the public addresses of a name,
//! so the connection can only go to an address that was checked (no
//! window for DNS rebinding between a check and the connect).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

/// The longest endpoint URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// How long the check at creation waits for DNS.
const CREATION_LOOKUP: Duration = Duration::from_secs(3);

/// Why a URL may not be an endpoint: a sentence for the 422 answer and for
/// a delivery's `last_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

/// Whether `ip` is an address of the public internet: not loopback,
/// unspecified, private (10/8, 172.16/12, 192.168/16), shared (CGNAT
/// 100.64/10), link-local (169.254/16, with the cloud metadata address),
/// multicast, broadcast, reserved, documentation or benchmarking; for IPv6
/// only global unicast (2000::/3) outside documentation, Teredo and ORCHID,
/// and the IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) and 6to4
/// forms are judged by the IPv4 address they embed.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let forbidden = a == 0 // "this network", 0.0.0.0 included
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !forbidden
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded = |high: u16, low: u16| {
        let [h1, h2] = high.to_be_bytes();
        let [l1, l2] = low.to_be_bytes();
        Ipv4Addr::new(h1, h2, l1, l2)
    };
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible; :: and ::1 fall
    // in it as 0.0.0.0 and 0.0.0.1, both forbidden).
    if segments[..5] == [0; 5] && (segments[5] == 0xffff || segments[5] == 0) {
        return is_public_v4(embedded(segments[6], segments[7]));
    }
    // NAT64, well-known prefix 64:ff9b::/96; the local-use 64:ff9b:1::/48
    // translates to whatever the operator chose: refused.
    if segments[0] == 0x64 && segments[1] == 0xff9b {
        return segments[2..6] == [0; 4] && is_public_v4(embedded(segments[6], segments[7]));
    }
    // 6to4: 2002:AABB:CCDD::/48 reaches the IPv4 address AABBCCDD.
    if segments[0] == 0x2002 {
        return is_public_v4(embedded(segments[1], segments[2]));
    }
    let global_unicast = segments[0] & 0xe000 == 0x2000;
    let documentation = segments[0] == 0x2001 && segments[1] == 0x0db8;
    // Teredo (2001::/32) embeds an obfuscated IPv4 address; ORCHID
    // (2001:10::/28, 2001:20::/28) is not routable.
    let teredo = segments[0] == 0x2001 && segments[1] == 0;
    let orchid =
        segments[0] == 0x2001 && (segments[1] & 0xfff0 == 0x10 || segments[1] & 0xfff0 == 0x20);
    global_unicast && !documentation && !teredo && !orchid
}

/// The host of an endpoint URL: an address, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP literal, normalised by the URL parser.
    Address(IpAddr),
    /// A DNS name.
    Name(String),
}

/// Parses an endpoint URL and checks what can be checked without DNS: its
/// length, its scheme (`https://`, or also `http://` when private addresses
/// are allowed), that it has a host, and, for an IP literal in any form, that
/// the address is public (unless allowed).
pub fn parse(text: &str, allow_private: bool) -> Result<(Url, Host), Forbidden> {
    if text.len() > MAX_URL_BYTES {
        return Err(Forbidden(format!(
            "url is {} bytes long; at most {MAX_URL_BYTES} are allowed.",
            text.len()
        )));
    }
    let url = Url::parse(text)
        .map_err(|err| Forbidden(format!("url is not a valid absolute URL ({err}).")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => {
            return Err(Forbidden(
                "url must start with https:// (http:// is allowed only with WEBHOOK_ALLOW_PRIVATE=1)."
                    .to_owned(),
            ));
        }
    }
    let host = match url.host_str() {
        None | Some("") => return Err(Forbidden("url must name a host.".to_owned())),
        Some(host) => host,
    };
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = match unbracketed.parse::<IpAddr>() {
        Ok(ip) => {
            if !allow_private && !is_public(ip) {
                return Err(Forbidden(format!(
                    "url points to {ip}, which is not a public internet address (loopback, \
                     private, link-local, metadata and reserved addresses are refused)."
                )));
            }
            Host::Address(ip)
        }
        Err(_) => Host::Name(unbracketed.to_owned()),
    };
    Ok((url, host))
}

/// The check at creation: [`parse`], then, for a name, every address it
/// resolves to now must be public. A name that does not resolve (yet) is
/// accepted: each delivery checks again after its own lookup.
pub async fn check_at_creation(text: &str, allow_private: bool) -> Result<Url, Forbidden> {
    let (url, host) = parse(text, allow_private)?;
    if allow_private {
        return Ok(url);
    }
    if let Host::Name(name) = host {
        let lookup =
            tokio::time::timeout(CREATION_LOOKUP, tokio::net::lookup_host((name.as_str(), 0)));
        if let Ok(Ok(addresses)) = lookup.await {
            let refused: Vec<IpAddr> = addresses
                .map(|a| a.ip())
                .filter(|ip| !is_public(*ip))
                .collect();
            if let Some(ip) = refused.first() {
                return Err(Forbidden(format!(
                    "url's host {name} resolves to {ip}, which is not a public internet address."
                )));
            }
        }
    }
    Ok(url)
}

/// A name that resolved only to refused addresses.
#[derive(Debug, thiserror::Error)]
#[error("the host {name} resolves only to addresses that are not public ({addresses}); refused")]
pub struct ForbiddenName {
    name: String,
    addresses: String,
}

/// A reqwest resolver that answers only the public addresses of a name,
/// and fails when there are none.
#[derive(Debug, Default)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let (public, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
                all.into_iter().partition(|a| is_public(a.ip()));
            if public.is_empty() {
                let addresses: Vec<String> = refused.iter().map(|a| a.ip().to_string()).collect();
                return Err(Box::new(ForbiddenName {
                    name,
                    addresses: addresses.join(", "),
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        parse(url, false).is_err()
    }

    #[test]
    fn every_forbidden_ipv4_class_is_refused() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "169.254.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.0.0.8",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "93.184.216.34",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn every_forbidden_ipv6_class_is_refused_with_its_embedded_forms() {
        for ip in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "2001:10::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::192.168.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "100::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn literal_forms_are_normalised_before_the_check() {
        for url in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://0x7f.0.0.1/",
            "https://127.1/",
            "https://127.0.1/",
            "https://0/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[0:0:0:0:0:ffff:127.0.0.1]:8443/hook",
            "https://[64:ff9b::169.254.169.254]/",
            "https://169.254.169.254/latest/meta-data/",
            "https://2852039166/",
            "https://user:pass@10.0.0.1/",
            "https://[fe80::1%25eth0]/",
        ] {
            assert!(refused(url), "{url}");
        }
        let (url, host) = parse("https://93.184.216.34:8443/x", false).unwrap();
        assert_eq!(host, Host::Address("93.184.216.34".parse().unwrap()));
        assert_eq!(url.port(), Some(8443));
        assert_eq!(
            parse("https://hooks.example.com/in", false).unwrap().1,
            Host::Name("hooks.example.com".to_owned())
        );
    }

    #[test]
    fn scheme_and_length_are_checked() {
        assert!(refused("http://93.184.216.34/"));
        assert!(refused("ftp://example.com/"));
        assert!(refused("not a url"));
        assert!(refused(&format!(
            "https://example.com/{}",
            "a".repeat(MAX_URL_BYTES)
        )));
        // Allowed private: http and loopback pass, the length still counts.
        assert!(parse("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(
            parse(
                &format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES)),
                true
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn a_name_of_loopback_is_refused_at_creation_and_by_the_resolver() {
        let err = check_at_creation("https://localhost/hook", false)
            .await
            .unwrap_err();
        assert!(err.0.contains("localhost"), "{err}");
        assert!(
            check_at_creation("http://localhost/hook", true)
                .await
                .is_ok()
        );
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = match GuardedResolver.resolve(name).await {
            Ok(_) => panic!("localhost resolved to something public"),
            Err(err) => err,
        };
        assert!(err.to_string().contains("not public"), "{err}");
    }
}
