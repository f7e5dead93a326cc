//! The manifest's ground truth names an attack's packets with a Wireshark display filter
//! (`(ip.addr==A && ip.addr==V && tcp) && frame.time_epoch >= T0 && ...`). This reads the
//! small vocabulary those filters use and matches it against parsed packets, so that a
//! window is positive only when it holds attack packets the attacker sent. Time conditions
//! are left to the attack's time range. An unknown term is an error that names it.

use std::net::IpAddr;

use crate::wire::{Mac, Net, Summary, Transport};

/// A parsed display filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// Matches every packet (what a time condition becomes).
    All,
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Proto(Proto),
    Addr(Side, Addr),
    Port(Option<Proto>, Side, u16),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    Arp,
    Dns,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    Src,
    Dst,
    Either,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Addr {
    Ip(IpAddr),
    Net(IpAddr, u8),
    Mac(Mac),
}

fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let two = |a: char, b: char| c == a && next == Some(b);
        if c.is_whitespace() || c == '(' || c == ')' || c == '!' || two('&', '&') || two('|', '|') {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            match c {
                '(' | ')' | '!' => out.push(c.to_string()),
                '&' | '|' => {
                    chars.next();
                    out.push(format!("{c}{c}"));
                }
                _ => {}
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    // "a >= b" written with spaces becomes one term
    let mut joined: Vec<String> = Vec::new();
    let mut i = 0;
    while i < out.len() {
        if i + 2 < out.len() && ["==", ">=", "<=", ">", "<", "!="].contains(&out[i + 1].as_str()) {
            joined.push(format!("{}{}{}", out[i], out[i + 1], out[i + 2]));
            i += 3;
        } else {
            joined.push(out[i].clone());
            i += 1;
        }
    }
    joined
}

fn addr(v: &str) -> Result<Addr, String> {
    if let Some(m) = Mac::parse(v) {
        return Ok(Addr::Mac(m));
    }
    if let Some((ip, bits)) = v.split_once('/') {
        let ip: IpAddr = ip.parse().map_err(|_| format!("{v:?} is not an address"))?;
        let bits: u8 = bits
            .parse()
            .map_err(|_| format!("{v:?} is not a network"))?;
        return Ok(Addr::Net(ip, bits));
    }
    v.parse()
        .map(Addr::Ip)
        .map_err(|_| format!("{v:?} is not an address"))
}

fn term(t: &str) -> Result<Filter, String> {
    if t.starts_with("frame.time") {
        return Ok(Filter::All);
    }
    let proto = |p: &str| match p {
        "tcp" => Some(Proto::Tcp),
        "udp" => Some(Proto::Udp),
        "icmp" => Some(Proto::Icmp),
        "arp" => Some(Proto::Arp),
        "dns" => Some(Proto::Dns),
        _ => None,
    };
    if let Some(p) = proto(t) {
        return Ok(Filter::Proto(p));
    }
    let (field, value) = t
        .split_once("==")
        .ok_or_else(|| format!("unsupported filter term {t:?}"))?;
    let side = |s: &str| match s {
        "src" | "srcport" => Some(Side::Src),
        "dst" | "dstport" => Some(Side::Dst),
        "addr" | "port" => Some(Side::Either),
        _ => None,
    };
    let (layer, what) = field
        .split_once('.')
        .ok_or_else(|| format!("unsupported filter term {t:?}"))?;
    let unsupported = || format!("unsupported filter term {t:?}");
    let s = side(what).ok_or_else(unsupported)?;
    match layer {
        "ip" | "ipv6" | "eth" if what.ends_with("port") => Err(unsupported()),
        "ip" | "ipv6" | "eth" => Ok(Filter::Addr(s, addr(value)?)),
        "tcp" | "udp" if what.ends_with("port") => {
            let port = value.parse().map_err(|_| unsupported())?;
            Ok(Filter::Port(proto(layer), s, port))
        }
        _ => Err(unsupported()),
    }
}

struct Parser {
    t: Vec<String>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.t.get(self.i).map(String::as_str)
    }
    fn or(&mut self) -> Result<Filter, String> {
        let mut f = self.and()?;
        while matches!(self.peek(), Some("||" | "or")) {
            self.i += 1;
            f = Filter::Or(Box::new(f), Box::new(self.and()?));
        }
        Ok(f)
    }
    fn and(&mut self) -> Result<Filter, String> {
        let mut f = self.unary()?;
        while matches!(self.peek(), Some("&&" | "and")) {
            self.i += 1;
            f = Filter::And(Box::new(f), Box::new(self.unary()?));
        }
        Ok(f)
    }
    fn unary(&mut self) -> Result<Filter, String> {
        match self.peek() {
            Some("!" | "not") => {
                self.i += 1;
                Ok(Filter::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.i += 1;
                let f = self.or()?;
                if self.peek() != Some(")") {
                    return Err("unbalanced parentheses".into());
                }
                self.i += 1;
                Ok(f)
            }
            Some(t) => {
                let f = term(t)?;
                self.i += 1;
                Ok(f)
            }
            None => Err("the filter ends too early".into()),
        }
    }
}

impl Filter {
    /// Parses a display filter of the manifest's vocabulary.
    pub fn parse(s: &str) -> Result<Filter, String> {
        let mut p = Parser { t: tokens(s), i: 0 };
        let f = p.or().map_err(|e| format!("filter {s:?}: {e}"))?;
        if p.i != p.t.len() {
            return Err(format!("filter {s:?}: unexpected {:?}", p.t[p.i]));
        }
        Ok(f)
    }

    /// Whether a parsed packet matches.
    pub fn matches(&self, s: &Summary<'_>) -> bool {
        let ips = match s.net {
            Net::Ip { src, dst, .. } => Some((src, dst)),
            _ => None,
        };
        let ports = match s.transport {
            Transport::Tcp(t) => Some((Proto::Tcp, t.src_port, t.dst_port)),
            Transport::Udp {
                src_port, dst_port, ..
            } => Some((Proto::Udp, src_port, dst_port)),
            _ => None,
        };
        let side = |side: Side, src: bool, dst: bool| match side {
            Side::Src => src,
            Side::Dst => dst,
            Side::Either => src || dst,
        };
        match self {
            Filter::All => true,
            Filter::And(a, b) => a.matches(s) && b.matches(s),
            Filter::Or(a, b) => a.matches(s) || b.matches(s),
            Filter::Not(a) => !a.matches(s),
            Filter::Proto(p) => match p {
                Proto::Tcp => matches!(s.transport, Transport::Tcp(_)),
                Proto::Udp => matches!(s.transport, Transport::Udp { .. }),
                Proto::Icmp => matches!(s.transport, Transport::Icmp(_)),
                Proto::Arp => matches!(s.net, Net::Arp(_)),
                Proto::Dns => ports.is_some_and(|(_, a, b)| a == 53 || b == 53),
            },
            Filter::Addr(sd, Addr::Mac(m)) => side(*sd, s.src_mac == *m, s.dst_mac == *m),
            Filter::Addr(sd, Addr::Ip(ip)) => {
                ips.is_some_and(|(a, b)| side(*sd, a == *ip, b == *ip))
            }
            Filter::Addr(sd, Addr::Net(net, bits)) => {
                ips.is_some_and(|(a, b)| side(*sd, in_net(a, *net, *bits), in_net(b, *net, *bits)))
            }
            Filter::Port(p, sd, port) => ports.is_some_and(|(proto, a, b)| {
                p.is_none_or(|p| p == proto) && side(*sd, a == *port, b == *port)
            }),
        }
    }
}

fn in_net(a: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_manifest_vocabulary() {
        let f = Filter::parse(
            "(ip.addr==192.168.1.128 && ip.addr==64.13.134.52 && tcp) && frame.time_epoch >= 1615221599.999999 && frame.time_epoch <= 1615221623.085344",
        )
        .unwrap();
        let ip = |s: &str| Addr::Ip(s.parse().unwrap());
        let and = |a, b| Filter::And(Box::new(a), Box::new(b));
        assert_eq!(
            f,
            and(
                and(
                    and(
                        and(
                            Filter::Addr(Side::Either, ip("192.168.1.128")),
                            Filter::Addr(Side::Either, ip("64.13.134.52"))
                        ),
                        Filter::Proto(Proto::Tcp)
                    ),
                    Filter::All
                ),
                Filter::All
            )
        );
        assert_eq!(
            Filter::parse("arp && eth.src==c4:2c:03:3b:6c:aa").unwrap(),
            and(
                Filter::Proto(Proto::Arp),
                Filter::Addr(
                    Side::Src,
                    Addr::Mac(Mac::parse("c4:2c:03:3b:6c:aa").unwrap())
                )
            )
        );
        assert_eq!(
            Filter::parse("ip.addr==192.168.1.129 && tcp.port==22").unwrap(),
            and(
                Filter::Addr(Side::Either, ip("192.168.1.129")),
                Filter::Port(Some(Proto::Tcp), Side::Either, 22)
            )
        );
        assert!(Filter::parse("ip.src==10.0.0.135 && udp || !icmp").is_ok());
        assert!(in_net(
            "192.168.1.7".parse().unwrap(),
            "192.168.1.0".parse().unwrap(),
            24
        ));
        for bad in [
            "http.request",
            "(tcp",
            "tcp)",
            "ip.ttl==3",
            "ip.addr==nothing",
            "",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}
