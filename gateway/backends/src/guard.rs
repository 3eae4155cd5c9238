//! The destination guard: tenant-supplied destinations (webhook URLs, provider
//! endpoint overrides, SMTP relays) may not reach loopback, private,
//! link-local, multicast, reserved or cloud-metadata addresses, unless the
//! operator allows them (`allow_private`).
//!
//! The check runs on the *resolved* address, and callers connect to the
//! address that passed (never resolving the name a second time), so a name
//! that resolves to a public address when checked and to `127.0.0.1` when
//! connected (DNS rebinding) cannot slip through.
//!
//! Allowlist entries: an address (`127.0.0.1`, `::1`), a network
//! (`10.0.0.0/8`, `fd00::/8`), either with a port (`127.0.0.1:1025`,
//! `[::1]:8080`), or a host name (`mail.internal`, `*.corp.example`,
//! `mail.internal:25`) whose every address is then allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A destination refused by the guard: its message in English and keyed (for
/// readers of other languages). It names only what the tenant gave (the
/// host, and the kind of address); the address a name resolved to is not shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String, pub herald_core::i18n::Msg);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Why a destination could not be resolved to an address that may be used.
#[derive(Debug)]
pub enum ResolveError {
    /// Every address is refused: a permanent failure.
    Refused(Refused),
    /// The name did not resolve (may be transient).
    Lookup(String),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Refused(r) => r.fmt(f),
            ResolveError::Lookup(m) => f.write_str(m),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Net {
        addr: IpAddr,
        prefix: u8,
    },
    /// Lowercase, without a trailing dot; `*.x` matches names under `x`.
    Host(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Allow {
    target: Target,
    port: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct Guard {
    allow: Vec<Allow>,
    /// The setting that allows an address, named in refusals.
    setting: String,
}

impl Guard {
    /// A guard allowing `entries`; `setting` names the configuration key in
    /// error messages (e.g. `transport.allow_private`).
    pub fn new(entries: &[String], setting: &str) -> Result<Self, String> {
        let mut g = Guard { allow: Vec::new(), setting: setting.to_string() };
        for e in entries {
            g.allow(e).map_err(|m| format!("{setting}: {e:?}: {m}"))?;
        }
        Ok(g)
    }

    /// Allow one more entry (same syntax as the configuration).
    pub fn allow(&mut self, entry: &str) -> Result<(), String> {
        self.allow.push(parse_entry(entry)?);
        Ok(())
    }

    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// Whether `ip` (reached as `host:port`) may be used. `host` is what the
    /// tenant gave: a name, or the address itself.
    pub fn check(&self, host: &str, port: u16, ip: IpAddr) -> Result<(), Refused> {
        let Some(kind) = non_public(ip) else { return Ok(()) };
        let host = normalize_host(host);
        if self.allow.iter().any(|a| a.matches(&host, port, ip)) {
            return Ok(());
        }
        let literal = host.parse::<IpAddr>().is_ok();
        let why = if literal {
            herald_core::msg!("guard.private_address", host = host, kind = kind, setting = self.setting)
        } else {
            herald_core::msg!("guard.resolves_private", host = host, kind = kind, setting = self.setting)
        };
        Err(Refused(why.to_string(), why))
    }

    /// Check a literal address or `localhost` name without resolving (a quick
    /// check for forms; the connect-time check is the real defence). Other
    /// names pass.
    pub fn check_literal(&self, host: &str, port: u16) -> Result<(), Refused> {
        let h = normalize_host(host);
        if let Ok(ip) = h.parse::<IpAddr>() {
            return self.check(&h, port, ip);
        }
        if h == "localhost" || h.ends_with(".localhost") {
            return self.check(&h, port, IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        Ok(())
    }

    /// Resolve `host:port` and keep the addresses that pass, in resolver
    /// order. Connect to these, never to the name again.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        let h = normalize_host(host);
        if let Ok(ip) = h.parse::<IpAddr>() {
            self.check(&h, port, ip).map_err(ResolveError::Refused)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let addrs: Vec<SocketAddr> =
            tokio::net::lookup_host((h.as_str(), port)).await.map_err(|e| ResolveError::Lookup(format!("cannot resolve {h}: {e}")))?.collect();
        let mut refused = None;
        let mut ok = Vec::new();
        for a in addrs {
            match self.check(&h, port, a.ip()) {
                Ok(()) => ok.push(a),
                Err(r) => refused = refused.or(Some(r)),
            }
        }
        match (ok.is_empty(), refused) {
            (false, _) => Ok(ok),
            (true, Some(r)) => Err(ResolveError::Refused(r)),
            (true, None) => Err(ResolveError::Lookup(format!("cannot resolve {h}: no addresses"))),
        }
    }
}

impl Allow {
    fn matches(&self, host: &str, port: u16, ip: IpAddr) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.target {
            Target::Net { addr, prefix } => in_net(canonical(ip), *addr, *prefix),
            Target::Host(h) => match h.strip_prefix("*.") {
                Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(suffix) && host[..host.len() - suffix.len()].ends_with('.'),
                None => host == h,
            },
        }
    }
}

fn normalize_host(host: &str) -> String {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.trim_end_matches('.').to_ascii_lowercase()
}

fn parse_entry(entry: &str) -> Result<Allow, String> {
    let e = entry.trim();
    if e.is_empty() {
        return Err("empty entry".into());
    }
    if let Some((net, bits)) = e.split_once('/') {
        let addr: IpAddr = net.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| "not an address/prefix".to_string())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = bits.parse().ok().filter(|p| *p <= max).ok_or_else(|| format!("prefix must be 0–{max}"))?;
        return Ok(Allow { target: Target::Net { addr: canonical(addr), prefix }, port: None });
    }
    if let Ok(sa) = e.parse::<SocketAddr>() {
        return Ok(Allow { target: single(sa.ip()), port: Some(sa.port()) });
    }
    if let Ok(ip) = e.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(Allow { target: single(ip), port: None });
    }
    let (host, port) = match e.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?)),
        None => (e, None),
    };
    let name = host.strip_prefix("*.").unwrap_or(host);
    let valid = !name.is_empty() && name.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    if !valid {
        return Err("not an address, network or host name".into());
    }
    Ok(Allow { target: Target::Host(normalize_host(host)), port })
}

fn single(ip: IpAddr) -> Target {
    let ip = canonical(ip);
    Target::Net { addr: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }
}

/// IPv4-mapped IPv6 addresses as IPv4, so `127.0.0.0/8` covers `::ffff:127.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The kind of a non-public address, or `None` for a public one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let n = u32::from(ip);
    let within = |net: [u8; 4], prefix: u8| in_net(IpAddr::V4(ip), IpAddr::V4(Ipv4Addr::from(net)), prefix);
    Some(if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        "cloud metadata"
    } else if within([0, 0, 0, 0], 8) {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local"
    } else if within([100, 64, 0, 0], 10) {
        "shared address space (CGNAT)"
    } else if ip.is_multicast() {
        "multicast"
    } else if n == u32::MAX {
        "broadcast"
    } else if within([240, 0, 0, 0], 4)
        || within([192, 0, 0, 0], 24)
        || within([192, 0, 2, 0], 24)
        || within([198, 18, 0, 0], 15)
        || within([198, 51, 100, 0], 24)
        || within([203, 0, 113, 0], 24)
    {
        "reserved"
    } else {
        return None;
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let within = |net: Ipv6Addr, prefix: u8| in_net(IpAddr::V6(ip), IpAddr::V6(net), prefix);
    let embedded = |bits: u128| Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let n = u128::from(ip);
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some("cloud metadata");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // IPv4 inside IPv6: mapped (::ffff:0:0/96), compatible (::/96), NAT64
    // (64:ff9b::/96, 64:ff9b:1::/48) and 6to4 (2002::/16) carry an IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    if within(Ipv6Addr::UNSPECIFIED, 96) || within(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return non_public_v4(embedded(n));
    }
    if within(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48) {
        return Some("reserved");
    }
    if within(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return non_public_v4(embedded(n >> 80));
    }
    Some(if ip.is_unique_local() || within(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10) {
        "private"
    } else if ip.is_unicast_link_local() {
        "link-local"
    } else if ip.is_multicast() {
        "multicast"
    } else if within(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32)
        || within(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64)
        || within(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23)
    {
        "reserved"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_named() {
        for (a, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.255.1.2", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.1.1", "link-local"),
            ("169.254.169.254", "cloud metadata"),
            ("100.64.0.1", "shared address space (CGNAT)"),
            ("100.127.255.255", "shared address space (CGNAT)"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a00:1", "private"),
            ("2002:7f00:1::", "loopback"),
            ("2001:db8::1", "reserved"),
        ] {
            assert_eq!(non_public(ip(a)), Some(kind), "{a}");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert_eq!(non_public(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn refusals_name_the_setting_and_hide_resolved_addresses() {
        let g = Guard::new(&[], "transport.allow_private").unwrap();
        assert!(g.check("example.com", 443, ip("93.184.216.34")).is_ok());
        let e = g.check("127.0.0.1", 80, ip("127.0.0.1")).unwrap_err().0;
        assert_eq!(e, "destination 127.0.0.1 is a private address (loopback); allow it with transport.allow_private");
        let e = g.check("Internal.Example.", 80, ip("10.9.8.7")).unwrap_err().0;
        assert!(e.contains("internal.example resolves to a private address (private)") && !e.contains("10.9.8.7"), "{e}");
        assert!(g.check_literal("[::1]", 80).is_err());
        assert!(g.check_literal("LOCALHOST", 80).is_err());
        assert!(g.check_literal("app.localhost", 80).is_err());
        assert!(g.check_literal("example.com", 80).is_ok());
    }

    #[test]
    fn the_allowlist_admits_networks_addresses_ports_and_names() {
        let entries: Vec<String> =
            ["10.0.0.0/8", "127.0.0.1:1025", "::1", "mail.internal", "*.corp.example:8443", "fd00::/8"].iter().map(|s| s.to_string()).collect();
        let g = Guard::new(&entries, "x").unwrap();
        assert!(g.check("10.2.3.4", 80, ip("10.2.3.4")).is_ok());
        assert!(g.check("any.name", 80, ip("10.2.3.4")).is_ok());
        assert!(g.check("any.name", 80, ip("::ffff:10.2.3.4")).is_ok(), "mapped addresses match IPv4 networks");
        assert!(g.check("127.0.0.1", 1025, ip("127.0.0.1")).is_ok());
        assert!(g.check("127.0.0.1", 1026, ip("127.0.0.1")).is_err(), "the port is part of the entry");
        assert!(g.check("[::1]", 9, ip("::1")).is_ok());
        assert!(g.check("mail.internal", 25, ip("192.168.0.5")).is_ok());
        assert!(g.check("other.internal", 25, ip("192.168.0.5")).is_err());
        assert!(g.check("a.corp.example", 8443, ip("172.16.0.1")).is_ok());
        assert!(g.check("corp.example", 8443, ip("172.16.0.1")).is_err());
        assert!(g.check("a.corp.example", 443, ip("172.16.0.1")).is_err());
        assert!(g.check("x", 1, ip("fd12::1")).is_ok());
        for bad in ["10.0.0.0/33", "::/129", "host:port", "", "a b", "1.2.3.4/x"] {
            assert!(Guard::new(&[bad.to_string()], "transport.allow_private").unwrap_err().contains("transport.allow_private"), "{bad}");
        }
    }

    #[tokio::test]
    async fn resolving_checks_every_address() {
        let g = Guard::new(&[], "x").unwrap();
        assert!(matches!(g.resolve("localhost", 80).await, Err(ResolveError::Refused(_))));
        assert!(matches!(g.resolve("127.0.0.1", 80).await, Err(ResolveError::Refused(_))));
        assert!(matches!(g.resolve("[::ffff:7f00:1]", 80).await, Err(ResolveError::Refused(_))));
        assert_eq!(g.resolve("8.8.8.8", 53).await.unwrap(), vec!["8.8.8.8:53".parse().unwrap()]);
        let open = Guard::new(&["127.0.0.0/8".into(), "::1".into()], "x").unwrap();
        assert!(open.resolve("localhost", 80).await.unwrap().iter().all(|a| a.ip().is_loopback()));
    }
}
