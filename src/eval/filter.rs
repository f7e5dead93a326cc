//! The manifest's ground truth names an attack's packets with a Wireshark display filter
//! (`(ip.addr==A && ip.addr==V && tcp) && frame.time_epoch >= T0 && ...`). This reads the
//! subset of the display-filter language those filters use and matches it against parsed
//! packets, so that a window is positive only when it holds attack packets the attacker sent.
//!
//! The subset, with Wireshark 4.0's meaning (the version the manifest was measured with):
//! - protocols, true when present: `eth arp ip ipv6 tcp udp icmp icmpv6 dns` (`dns`: UDP
//!   port 53, or TCP port 53 with a payload);
//! - fields: `eth.src/dst/addr`, `ip.src/dst/addr` (IPv4), `ipv6.src/dst/addr`,
//!   `tcp.srcport/dstport/port`, `udp.srcport/dstport/port`, `tcp.flags.fin/syn/reset/push/
//!   ack/urg/ece/cwr`, `arp.opcode`, `arp.src.hw_mac`, `arp.src.proto_ipv4`, `arp.dst.hw_mac`,
//!   `arp.dst.proto_ipv4`, `icmp.type/code`, `icmpv6.type/code`, `dns.flags.response` (DNS
//!   over UDP), `frame.len` (the length on the wire) and `frame.time_epoch` (seconds, compared
//!   to the nanosecond); a field alone tests that it is present;
//! - comparisons `==` `!=` `===` `!==` `<` `<=` `>` `>=` (and `eq ne any_eq all_ne all_eq
//!   any_ne lt le gt ge`); a field that occurs twice in a packet (`ip.addr`, `tcp.port`,
//!   `eth.addr`) matches `==` when either occurrence does, `!=` when the field is present and
//!   neither occurrence equals (`!=` is `all_ne`: `ip.addr != A` drops every packet to or
//!   from A, and every packet without IPv4), `===` when all do, `!==` when one does not;
//! - sets: `f in {a, b, c}`, elements separated by commas, ranges `lo..hi` among them
//!   (`tcp.port in {80, 8000..8080}`; Wireshark 4.0 refuses the older space-separated
//!   `{80 443}`, and so does this), and `f not in {...}`, which is `!(f in {...})`;
//! - values: MAC addresses (`:` or `-`), IPv4 and IPv6 addresses with an optional `/bits`
//!   network (`ip.addr == 192.168.1.0/24`), integers in decimal, `0x` hex, `0b` binary or
//!   octal with a leading `0`, `True`/`False` for flags;
//! - `&&` `||` `!` (and `and or not`), parentheses; `!` binds tighter than `&&`, `&&` than
//!   `||`.
//!
//! Anything else (another field, `contains`, `matches`, slices, functions, strings, host
//! names) is an error that names it. Addresses are those the pipeline's parser reads: packets
//! it cannot parse up to the network layer match nothing, and the IP and transport headers
//! quoted inside ICMP errors are not read (Wireshark counts them as `ip.addr`, `udp`, ...).

use std::cmp::Ordering;
use std::net::IpAddr;

use crate::wire::{App, Mac, Net, Summary, Transport};

/// A parsed display filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// The protocol or field is present.
    Has(Field),
    /// `field op value`.
    Cmp(Field, Op, Lit),
    /// `field in {...}`: one of the field's occurrences is in the set.
    In(Field, Vec<Elem>),
}

/// The protocols and fields the filters may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Eth,
    EthSrc,
    EthDst,
    EthAddr,
    Arp,
    ArpOpcode,
    ArpSrcMac,
    ArpSrcIp,
    ArpDstMac,
    ArpDstIp,
    Ip,
    IpSrc,
    IpDst,
    IpAddr,
    Ipv6,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Addr,
    Tcp,
    TcpSrcPort,
    TcpDstPort,
    TcpPort,
    /// One of `tcp.flags.*`: the flag's bit in the flags byte.
    TcpFlag(u8),
    Udp,
    UdpSrcPort,
    UdpDstPort,
    UdpPort,
    Icmp,
    IcmpType,
    IcmpCode,
    Icmpv6,
    Icmpv6Type,
    Icmpv6Code,
    Dns,
    DnsResponse,
    FrameLen,
    FrameTimeEpoch,
}

/// What a field holds, which says how its values are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    /// A protocol: only its presence can be tested.
    Proto,
    Mac,
    Ipv4,
    Ipv6,
    /// An unsigned integer at most this large.
    Uint(u64),
    Bool,
    /// Epoch seconds, held as nanoseconds.
    Time,
}

/// Every name the filters may use, with its field and type.
const FIELDS: &[(&str, Field, Ty)] = {
    use crate::wire::tcp::flags;
    const U8: Ty = Ty::Uint(u8::MAX as u64);
    const U16: Ty = Ty::Uint(u16::MAX as u64);
    &[
        ("eth", Field::Eth, Ty::Proto),
        ("eth.src", Field::EthSrc, Ty::Mac),
        ("eth.dst", Field::EthDst, Ty::Mac),
        ("eth.addr", Field::EthAddr, Ty::Mac),
        ("arp", Field::Arp, Ty::Proto),
        ("arp.opcode", Field::ArpOpcode, U16),
        ("arp.src.hw_mac", Field::ArpSrcMac, Ty::Mac),
        ("arp.src.proto_ipv4", Field::ArpSrcIp, Ty::Ipv4),
        ("arp.dst.hw_mac", Field::ArpDstMac, Ty::Mac),
        ("arp.dst.proto_ipv4", Field::ArpDstIp, Ty::Ipv4),
        ("ip", Field::Ip, Ty::Proto),
        ("ip.src", Field::IpSrc, Ty::Ipv4),
        ("ip.dst", Field::IpDst, Ty::Ipv4),
        ("ip.addr", Field::IpAddr, Ty::Ipv4),
        ("ipv6", Field::Ipv6, Ty::Proto),
        ("ipv6.src", Field::Ipv6Src, Ty::Ipv6),
        ("ipv6.dst", Field::Ipv6Dst, Ty::Ipv6),
        ("ipv6.addr", Field::Ipv6Addr, Ty::Ipv6),
        ("tcp", Field::Tcp, Ty::Proto),
        ("tcp.srcport", Field::TcpSrcPort, U16),
        ("tcp.dstport", Field::TcpDstPort, U16),
        ("tcp.port", Field::TcpPort, U16),
        ("tcp.flags.fin", Field::TcpFlag(flags::FIN), Ty::Bool),
        ("tcp.flags.syn", Field::TcpFlag(flags::SYN), Ty::Bool),
        ("tcp.flags.reset", Field::TcpFlag(flags::RST), Ty::Bool),
        ("tcp.flags.push", Field::TcpFlag(flags::PSH), Ty::Bool),
        ("tcp.flags.ack", Field::TcpFlag(flags::ACK), Ty::Bool),
        ("tcp.flags.urg", Field::TcpFlag(0x20), Ty::Bool),
        ("tcp.flags.ece", Field::TcpFlag(0x40), Ty::Bool),
        ("tcp.flags.cwr", Field::TcpFlag(0x80), Ty::Bool),
        ("udp", Field::Udp, Ty::Proto),
        ("udp.srcport", Field::UdpSrcPort, U16),
        ("udp.dstport", Field::UdpDstPort, U16),
        ("udp.port", Field::UdpPort, U16),
        ("icmp", Field::Icmp, Ty::Proto),
        ("icmp.type", Field::IcmpType, U8),
        ("icmp.code", Field::IcmpCode, U8),
        ("icmpv6", Field::Icmpv6, Ty::Proto),
        ("icmpv6.type", Field::Icmpv6Type, U8),
        ("icmpv6.code", Field::Icmpv6Code, U8),
        ("dns", Field::Dns, Ty::Proto),
        ("dns.flags.response", Field::DnsResponse, Ty::Bool),
        ("frame.len", Field::FrameLen, Ty::Uint(u32::MAX as u64)),
        ("frame.time_epoch", Field::FrameTimeEpoch, Ty::Time),
    ]
};

/// A comparison; the `!=` family as Wireshark 4.0 defines it (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `==`: any occurrence equals.
    AnyEq,
    /// `!=`: the field is present and no occurrence equals.
    AllNe,
    /// `===`: the field is present and every occurrence equals.
    AllEq,
    /// `!==`: some occurrence does not equal.
    AnyNe,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One value a field holds in a packet (flags as 0 or 1, time in nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    Mac(Mac),
    Ip(IpAddr),
    Uint(u64),
}

/// A value written in a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lit {
    Value(Value),
    /// An address with `/bits`: any address of that network equals it.
    Net(IpAddr, u8),
}

/// An element of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    One(Lit),
    /// `lo..hi`, both ends included.
    Range(Value, Value),
}

fn key(v: &Value) -> Option<u128> {
    match v {
        Value::Mac(m) => Some(m.0.iter().fold(0u128, |a, &b| a << 8 | u128::from(b))),
        Value::Ip(IpAddr::V4(a)) => Some(u128::from(u32::from(*a))),
        Value::Ip(IpAddr::V6(a)) => Some(u128::from(*a)),
        Value::Uint(u) => Some(u128::from(*u)),
    }
}

/// Orders two values of one kind (IPv4 before IPv6 never compares).
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    let same = matches!(
        (a, b),
        (Value::Mac(_), Value::Mac(_))
            | (Value::Uint(_), Value::Uint(_))
            | (Value::Ip(IpAddr::V4(_)), Value::Ip(IpAddr::V4(_)))
            | (Value::Ip(IpAddr::V6(_)), Value::Ip(IpAddr::V6(_)))
    );
    same.then(|| key(a).cmp(&key(b)))
}

impl Lit {
    fn equals(&self, v: &Value) -> bool {
        match self {
            Lit::Value(x) => x == v,
            Lit::Net(net, bits) => matches!(v, Value::Ip(ip) if in_net(*ip, *net, *bits)),
        }
    }
}

impl Elem {
    fn holds(&self, v: &Value) -> bool {
        match self {
            Elem::One(l) => l.equals(v),
            Elem::Range(lo, hi) => {
                order(lo, v).is_some_and(Ordering::is_le)
                    && order(v, hi).is_some_and(Ordering::is_le)
            }
        }
    }
}

/// A field's occurrences in one packet (at most two: source and destination).
struct Values {
    v: [Value; 2],
    n: usize,
}

impl Values {
    const NONE: Values = Values {
        v: [Value::Uint(0); 2],
        n: 0,
    };
    fn one(a: Value) -> Values {
        Values { v: [a, a], n: 1 }
    }
    fn two(a: Value, b: Value) -> Values {
        Values { v: [a, b], n: 2 }
    }
    fn iter(&self) -> impl Iterator<Item = &Value> {
        self.v[..self.n].iter()
    }
}

fn opt(v: Option<Value>) -> Values {
    v.map_or(Values::NONE, Values::one)
}

/// Marks a protocol as present.
const PRESENT: Value = Value::Uint(1);

impl Field {
    fn values(self, s: &Summary<'_>) -> Values {
        let ip = |v6: bool| match s.net {
            Net::Ip { src, dst, .. } if src.is_ipv6() == v6 => Some((src, dst)),
            _ => None,
        };
        let arp = match s.net {
            Net::Arp(a) => Some(a),
            _ => None,
        };
        let tcp = match s.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        };
        let udp = match s.transport {
            Transport::Udp {
                src_port, dst_port, ..
            } => Some((src_port, dst_port)),
            _ => None,
        };
        let icmp = |v6: bool| match s.transport {
            Transport::Icmp(i) if i.v6 == v6 => Some(i),
            _ => None,
        };
        let addrs = |v6: bool, pick: fn(IpAddr, IpAddr) -> Values| {
            ip(v6).map_or(Values::NONE, |(a, b)| pick(a, b))
        };
        let ports = |p: Option<(u16, u16)>, pick: fn(u16, u16) -> Values| {
            p.map_or(Values::NONE, |(a, b)| pick(a, b))
        };
        fn src(a: IpAddr, _: IpAddr) -> Values {
            Values::one(Value::Ip(a))
        }
        fn dst(_: IpAddr, b: IpAddr) -> Values {
            Values::one(Value::Ip(b))
        }
        fn both(a: IpAddr, b: IpAddr) -> Values {
            Values::two(Value::Ip(a), Value::Ip(b))
        }
        fn sport(a: u16, _: u16) -> Values {
            Values::one(Value::Uint(a.into()))
        }
        fn dport(_: u16, b: u16) -> Values {
            Values::one(Value::Uint(b.into()))
        }
        fn bports(a: u16, b: u16) -> Values {
            Values::two(Value::Uint(a.into()), Value::Uint(b.into()))
        }
        let tcp_ports = tcp.map(|t| (t.src_port, t.dst_port));
        match self {
            Field::Eth => Values::one(PRESENT),
            Field::EthSrc => Values::one(Value::Mac(s.src_mac)),
            Field::EthDst => Values::one(Value::Mac(s.dst_mac)),
            Field::EthAddr => Values::two(Value::Mac(s.src_mac), Value::Mac(s.dst_mac)),
            Field::Arp => opt(arp.map(|_| PRESENT)),
            Field::ArpOpcode => opt(arp.map(|a| Value::Uint(a.op.into()))),
            Field::ArpSrcMac => opt(arp.map(|a| Value::Mac(a.sender_mac))),
            Field::ArpSrcIp => opt(arp.map(|a| Value::Ip(crate::wire::v4(a.sender_ip)))),
            Field::ArpDstMac => opt(arp.map(|a| Value::Mac(a.target_mac))),
            Field::ArpDstIp => opt(arp.map(|a| Value::Ip(crate::wire::v4(a.target_ip)))),
            Field::Ip => opt(ip(false).map(|_| PRESENT)),
            Field::IpSrc => addrs(false, src),
            Field::IpDst => addrs(false, dst),
            Field::IpAddr => addrs(false, both),
            Field::Ipv6 => opt(ip(true).map(|_| PRESENT)),
            Field::Ipv6Src => addrs(true, src),
            Field::Ipv6Dst => addrs(true, dst),
            Field::Ipv6Addr => addrs(true, both),
            Field::Tcp => opt(tcp.map(|_| PRESENT)),
            Field::TcpSrcPort => ports(tcp_ports, sport),
            Field::TcpDstPort => ports(tcp_ports, dport),
            Field::TcpPort => ports(tcp_ports, bports),
            Field::TcpFlag(bit) => opt(tcp.map(|t| Value::Uint(u64::from(t.flags & bit != 0)))),
            Field::Udp => opt(udp.map(|_| PRESENT)),
            Field::UdpSrcPort => ports(udp, sport),
            Field::UdpDstPort => ports(udp, dport),
            Field::UdpPort => ports(udp, bports),
            Field::Icmp => opt(icmp(false).map(|_| PRESENT)),
            Field::IcmpType => opt(icmp(false).map(|i| Value::Uint(i.kind.into()))),
            Field::IcmpCode => opt(icmp(false).map(|i| Value::Uint(i.code.into()))),
            Field::Icmpv6 => opt(icmp(true).map(|_| PRESENT)),
            Field::Icmpv6Type => opt(icmp(true).map(|i| Value::Uint(i.kind.into()))),
            Field::Icmpv6Code => opt(icmp(true).map(|i| Value::Uint(i.code.into()))),
            Field::Dns => {
                let dns = |(a, b): (u16, u16)| a == 53 || b == 53;
                let over_udp = udp.is_some_and(dns);
                let over_tcp =
                    tcp.is_some_and(|t| t.payload_len > 0 && dns((t.src_port, t.dst_port)));
                opt((over_udp || over_tcp).then_some(PRESENT))
            }
            Field::DnsResponse => match s.app {
                App::Dns(d) => Values::one(Value::Uint(d.response.into())),
                _ => Values::NONE,
            },
            Field::FrameLen => Values::one(Value::Uint(s.wire_len.into())),
            Field::FrameTimeEpoch => Values::one(Value::Uint(s.ts_ns)),
        }
    }
}

// ---- reading a filter ----

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A field name, a keyword or a value.
    Word(String),
    /// An operator or punctuation.
    Punct(&'static str),
    /// A double-quoted string (no field here takes one).
    Str(String),
}

const PUNCT: &[&str] = &[
    "===", "!==", "==", "!=", "<=", ">=", "&&", "||", "..", "<", ">", "!", "(", ")", "{", "}", ",",
];

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
        } else if c == '"' {
            let mut end = None;
            let mut escaped = false;
            for (i, c) in rest.char_indices().skip(1) {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.ok_or("a string is not closed")?;
            out.push(Tok::Str(rest[1..end].to_string()));
            rest = &rest[end + 1..];
        } else if let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) {
            out.push(Tok::Punct(p));
            rest = &rest[p.len()..];
        } else if "=&|~".contains(c) {
            let op: String = rest.chars().take_while(|c| "=&|~".contains(*c)).collect();
            return Err(format!("unsupported operator {op:?}"));
        } else {
            // a word ends at white space, punctuation, a quote or a range's ".."
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                if c.is_whitespace() || "(){},!=<>&|~\"".contains(c) || rest[i..].starts_with("..")
                {
                    end = i;
                    break;
                }
            }
            out.push(Tok::Word(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    Ok(out)
}

fn op(t: &Tok) -> Option<Op> {
    Some(match t {
        Tok::Punct("==") => Op::AnyEq,
        Tok::Punct("!=") => Op::AllNe,
        Tok::Punct("===") => Op::AllEq,
        Tok::Punct("!==") => Op::AnyNe,
        Tok::Punct("<") => Op::Lt,
        Tok::Punct("<=") => Op::Le,
        Tok::Punct(">") => Op::Gt,
        Tok::Punct(">=") => Op::Ge,
        Tok::Word(w) => match w.as_str() {
            "eq" | "any_eq" => Op::AnyEq,
            "ne" | "all_ne" => Op::AllNe,
            "all_eq" => Op::AllEq,
            "any_ne" => Op::AnyNe,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            _ => return None,
        },
        _ => return None,
    })
}

fn is_word(t: Option<&Tok>, w: &str) -> bool {
    matches!(t, Some(Tok::Word(x)) if x == w)
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("{w:?}"),
        Tok::Punct(p) => format!("{p:?}"),
        Tok::Str(s) => format!("the string {s:?}"),
    }
}

/// An unsigned integer as Wireshark writes one: decimal, 0x hex, 0b binary, 0 octal.
fn uint(v: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = v.strip_prefix("0x").or(v.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(b) = v.strip_prefix("0b").or(v.strip_prefix("0B")) {
        (b, 2)
    } else if v.len() > 1 && v.starts_with('0') {
        (&v[1..], 8)
    } else {
        (v, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Epoch seconds with at most nine decimals, as nanoseconds.
fn epoch_ns(v: &str) -> Option<u64> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || frac.len() > 9 {
        return None;
    }
    let frac_ns: u64 = format!("{frac:0<9}").parse().ok()?;
    int.parse::<u64>()
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(frac_ns)
}

fn lit(name: &str, ty: Ty, v: &str) -> Result<Lit, String> {
    let bad = |what: &str| format!("{name}: {v:?} is not {what}");
    let net = |v6: bool| -> Result<Lit, String> {
        let what = if v6 {
            "an IPv6 address"
        } else {
            "an IPv4 address (host names are not resolved)"
        };
        let (addr, bits) = match v.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (v, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| bad(what))?;
        if ip.is_ipv6() != v6 {
            return Err(bad(what));
        }
        match bits {
            None => Ok(Lit::Value(Value::Ip(ip))),
            Some(b) => {
                let max = if v6 { 128 } else { 32 };
                match b.parse::<u8>() {
                    Ok(bits) if bits <= max => Ok(Lit::Net(ip, bits)),
                    _ => Err(bad(&format!("a network (/0 to /{max})"))),
                }
            }
        }
    };
    match ty {
        Ty::Proto => Err(format!(
            "{name} is a protocol: only its presence can be tested"
        )),
        Ty::Mac => Mac::parse(v)
            .map(|m| Lit::Value(Value::Mac(m)))
            .ok_or_else(|| bad("a MAC address")),
        Ty::Ipv4 => net(false),
        Ty::Ipv6 => net(true),
        Ty::Uint(max) => match uint(v) {
            Some(u) if u <= max => Ok(Lit::Value(Value::Uint(u))),
            Some(_) => Err(format!("{name}: {v} is more than {max}")),
            None => Err(bad("an unsigned integer")),
        },
        Ty::Bool => match v {
            "True" | "TRUE" => Ok(Lit::Value(Value::Uint(1))),
            "False" | "FALSE" => Ok(Lit::Value(Value::Uint(0))),
            _ => uint(v)
                .map(|u| Lit::Value(Value::Uint(u64::from(u != 0))))
                .ok_or_else(|| bad("True, False or a number")),
        },
        Ty::Time => epoch_ns(v)
            .map(|ns| Lit::Value(Value::Uint(ns)))
            .ok_or_else(|| bad("epoch seconds (at most nine decimals)")),
    }
}

struct Parser {
    t: Vec<Tok>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.t.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn expect(&mut self, p: &'static str) -> Result<(), String> {
        match self.next() {
            Some(Tok::Punct(x)) if x == p => Ok(()),
            Some(t) => Err(format!("expected {p:?}, found {}", show(&t))),
            None => Err(format!("expected {p:?}, found the end")),
        }
    }
    fn or(&mut self) -> Result<Filter, String> {
        let mut f = self.and()?;
        while matches!(self.peek(), Some(Tok::Punct("||"))) || is_word(self.peek(), "or") {
            self.i += 1;
            f = Filter::Or(Box::new(f), Box::new(self.and()?));
        }
        Ok(f)
    }
    fn and(&mut self) -> Result<Filter, String> {
        let mut f = self.unary()?;
        while matches!(self.peek(), Some(Tok::Punct("&&"))) || is_word(self.peek(), "and") {
            self.i += 1;
            f = Filter::And(Box::new(f), Box::new(self.unary()?));
        }
        Ok(f)
    }
    fn unary(&mut self) -> Result<Filter, String> {
        match self.next() {
            Some(Tok::Punct("!")) => Ok(Filter::Not(Box::new(self.unary()?))),
            Some(Tok::Word(w)) if w == "not" => Ok(Filter::Not(Box::new(self.unary()?))),
            Some(Tok::Punct("(")) => {
                let f = self.or()?;
                self.expect(")")?;
                Ok(f)
            }
            Some(Tok::Word(w)) => self.test(&w),
            Some(t) => Err(format!("unexpected {}", show(&t))),
            None => Err("the filter ends too early".into()),
        }
    }
    /// A test on the field `name`: its presence, a comparison or a set.
    fn test(&mut self, name: &str) -> Result<Filter, String> {
        let &(name, field, ty) = FIELDS
            .iter()
            .find(|f| f.0 == name)
            .ok_or_else(|| format!("unsupported field {name:?}"))?;
        let needs_value = |ty: Ty| {
            if ty == Ty::Proto {
                Err(format!(
                    "{name} is a protocol: only its presence can be tested"
                ))
            } else {
                Ok(())
            }
        };
        if let Some(o) = self.peek().and_then(op) {
            needs_value(ty)?;
            self.i += 1;
            let v = self.value()?;
            let l = lit(name, ty, &v)?;
            let ordered = !matches!(o, Op::AnyEq | Op::AllNe | Op::AllEq | Op::AnyNe);
            if ordered && (ty == Ty::Bool || matches!(l, Lit::Net(..))) {
                return Err(format!("{name}: {v} cannot be ordered"));
            }
            return Ok(Filter::Cmp(field, o, l));
        }
        let negated = is_word(self.peek(), "not") && is_word(self.t.get(self.i + 1), "in");
        if is_word(self.peek(), "in") || negated {
            needs_value(ty)?;
            self.i += 1 + usize::from(negated);
            let set = Filter::In(field, self.set(name, ty)?);
            return Ok(if negated {
                Filter::Not(Box::new(set))
            } else {
                set
            });
        }
        match self.peek() {
            Some(Tok::Word(w)) if !["and", "or"].contains(&w.as_str()) => {
                Err(format!("unsupported operator {w:?} after {name}"))
            }
            _ => Ok(Filter::Has(field)),
        }
    }
    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Word(w)) => Ok(w),
            Some(t) => Err(format!("expected a value, found {}", show(&t))),
            None => Err("expected a value, found the end".into()),
        }
    }
    /// `{a, b, lo..hi}`, after `in`.
    fn set(&mut self, name: &str, ty: Ty) -> Result<Vec<Elem>, String> {
        self.expect("{")?;
        let mut out = Vec::new();
        loop {
            let v = self.value()?;
            let lo = lit(name, ty, &v)?;
            if matches!(self.peek(), Some(Tok::Punct(".."))) {
                self.i += 1;
                let w = self.value()?;
                match (lo, lit(name, ty, &w)?) {
                    (Lit::Value(a), Lit::Value(b)) if ty != Ty::Bool => out.push(Elem::Range(a, b)),
                    _ => return Err(format!("{name}: {v}..{w} is not a range")),
                }
            } else {
                out.push(Elem::One(lo));
            }
            match self.next() {
                Some(Tok::Punct(",")) => {}
                Some(Tok::Punct("}")) => return Ok(out),
                Some(t) => {
                    return Err(format!(
                        "{name} in {{...}}: expected \",\" or \"}}\", found {} (elements are separated by commas)",
                        show(&t)
                    ))
                }
                None => return Err(format!("{name} in {{...}}: the set is not closed")),
            }
        }
    }
}

impl Filter {
    /// Parses a display filter of the subset the module doc lists; an error names the term
    /// it cannot read.
    pub fn parse(s: &str) -> Result<Filter, String> {
        let fail = |e: String| format!("filter {s:?}: {e}");
        let mut p = Parser {
            t: lex(s).map_err(fail)?,
            i: 0,
        };
        let f = p.or().map_err(fail)?;
        match p.peek() {
            None => Ok(f),
            Some(t) => Err(fail(format!("unexpected {}", show(t)))),
        }
    }

    /// Whether a parsed packet matches.
    pub fn matches(&self, s: &Summary<'_>) -> bool {
        match self {
            Filter::And(a, b) => a.matches(s) && b.matches(s),
            Filter::Or(a, b) => a.matches(s) || b.matches(s),
            Filter::Not(a) => !a.matches(s),
            Filter::Has(f) => f.values(s).n > 0,
            Filter::Cmp(f, o, l) => {
                let vals = f.values(s);
                let mut v = vals.iter();
                let ord = |v: &Value, want: fn(Ordering) -> bool| match l {
                    Lit::Value(x) => order(v, x).is_some_and(want),
                    Lit::Net(..) => false,
                };
                match o {
                    Op::AnyEq => v.any(|v| l.equals(v)),
                    Op::AllNe => vals.n > 0 && v.all(|v| !l.equals(v)),
                    Op::AllEq => vals.n > 0 && v.all(|v| l.equals(v)),
                    Op::AnyNe => v.any(|v| !l.equals(v)),
                    Op::Lt => v.any(|v| ord(v, Ordering::is_lt)),
                    Op::Le => v.any(|v| ord(v, Ordering::is_le)),
                    Op::Gt => v.any(|v| ord(v, Ordering::is_gt)),
                    Op::Ge => v.any(|v| ord(v, Ordering::is_ge)),
                }
            }
            Filter::In(f, set) => f.values(s).iter().any(|v| set.iter().any(|e| e.holds(v))),
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

    fn parse(s: &str) -> Filter {
        Filter::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn ip(s: &str) -> Value {
        Value::Ip(s.parse().unwrap())
    }

    fn eq(f: Field, v: Value) -> Filter {
        Filter::Cmp(f, Op::AnyEq, Lit::Value(v))
    }

    #[test]
    fn reads_the_manifest_vocabulary() {
        let ns = |s: u64, frac: u64| Value::Uint(s * 1_000_000_000 + frac);
        assert_eq!(
            parse("(ip.addr==192.168.1.128 && ip.addr==64.13.134.52 && tcp) && frame.time_epoch >= 1615221599.999999 && frame.time_epoch <= 1615221623.085344"),
            and(
                and(
                    and(
                        and(
                            eq(Field::IpAddr, ip("192.168.1.128")),
                            eq(Field::IpAddr, ip("64.13.134.52"))
                        ),
                        Filter::Has(Field::Tcp)
                    ),
                    Filter::Cmp(
                        Field::FrameTimeEpoch,
                        Op::Ge,
                        Lit::Value(ns(1615221599, 999_999_000))
                    )
                ),
                Filter::Cmp(
                    Field::FrameTimeEpoch,
                    Op::Le,
                    Lit::Value(ns(1615221623, 85_344_000))
                )
            )
        );
        assert_eq!(
            parse("arp && eth.src==c4:2c:03:3b:6c:aa"),
            and(
                Filter::Has(Field::Arp),
                eq(
                    Field::EthSrc,
                    Value::Mac(Mac::parse("c4:2c:03:3b:6c:aa").unwrap())
                )
            )
        );
        assert_eq!(
            parse("eth.src==de:ad:be:ef:aa:bb && udp.dstport==67"),
            and(
                eq(
                    Field::EthSrc,
                    Value::Mac(Mac::parse("de:ad:be:ef:aa:bb").unwrap())
                ),
                eq(Field::UdpDstPort, Value::Uint(67))
            )
        );
        assert_eq!(
            parse("(ip.src==192.168.1.130 && ip.dst in {10.0.0.1,10.0.0.2,10.0.0.254} && tcp)"),
            and(
                and(
                    eq(Field::IpSrc, ip("192.168.1.130")),
                    Filter::In(
                        Field::IpDst,
                        ["10.0.0.1", "10.0.0.2", "10.0.0.254"]
                            .map(|a| Elem::One(Lit::Value(ip(a))))
                            .to_vec()
                    )
                ),
                Filter::Has(Field::Tcp)
            )
        );
        assert_eq!(
            parse("ip.src==192.168.1.130 && tcp.flags.ack==1 && tcp.flags.syn==0"),
            and(
                and(
                    eq(Field::IpSrc, ip("192.168.1.130")),
                    eq(Field::TcpFlag(0x10), Value::Uint(1))
                ),
                eq(Field::TcpFlag(0x02), Value::Uint(0))
            )
        );
    }

    #[test]
    fn reads_sets_ranges_words_and_precedence() {
        let port = |p| Elem::One(Lit::Value(Value::Uint(p)));
        // spaces around elements and ranges, with or without spaces around ".."
        assert_eq!(
            parse("tcp.port in { 80 , 443, 8000..8080, 9000 .. 9001 }"),
            Filter::In(
                Field::TcpPort,
                vec![
                    port(80),
                    port(443),
                    Elem::Range(Value::Uint(8000), Value::Uint(8080)),
                    Elem::Range(Value::Uint(9000), Value::Uint(9001)),
                ]
            )
        );
        assert_eq!(
            parse("ip.addr in {10.0.0.5..10.0.0.9, 192.168.1.0/24}"),
            Filter::In(
                Field::IpAddr,
                vec![
                    Elem::Range(ip("10.0.0.5"), ip("10.0.0.9")),
                    Elem::One(Lit::Net("192.168.1.0".parse().unwrap(), 24)),
                ]
            )
        );
        // "not in" is the negation of "in"
        assert_eq!(
            parse("udp.port not in {53}"),
            Filter::Not(Box::new(Filter::In(Field::UdpPort, vec![port(53)])))
        );
        // English words, and the precedence the Wireshark manual gives:
        // "A and B or not C or D and not E or F" is (A and B) or (not C) or (D and (not E)) or F
        let [a, b, c, d, e, f] = ["tcp", "udp", "arp", "icmp", "ip", "ipv6"];
        let w = parse(&format!("{a} and {b} or not {c} or {d} and not {e} or {f}"));
        let s = parse(&format!("{a} && {b} || !{c} || {d} && !{e} || {f}"));
        let has = |x| Filter::Has(x);
        let or = |x, y| Filter::Or(Box::new(x), Box::new(y));
        let not = |x| Filter::Not(Box::new(x));
        let want = or(
            or(
                or(and(has(Field::Tcp), has(Field::Udp)), not(has(Field::Arp))),
                and(has(Field::Icmp), not(has(Field::Ip))),
            ),
            has(Field::Ipv6),
        );
        assert_eq!(w, want);
        assert_eq!(s, want);
        assert_eq!(
            parse("tcp.port eq 0x16 and tcp.flags.syn == True"),
            and(
                eq(Field::TcpPort, Value::Uint(22)),
                eq(Field::TcpFlag(0x02), Value::Uint(1))
            )
        );
        assert_eq!(parse("!(tcp)"), not(has(Field::Tcp)));
        assert_eq!(parse("not(tcp)"), not(has(Field::Tcp)));
        assert_eq!(parse("tcp.port"), has(Field::TcpPort));
        assert_eq!(
            parse("eth.dst == ff-ff-ff-ff-ff-ff"),
            eq(Field::EthDst, Value::Mac(Mac::BROADCAST))
        );
        assert_eq!(parse("tcp.port == 010"), eq(Field::TcpPort, Value::Uint(8)));
        assert_eq!(
            parse("ipv6.addr == fe80::1"),
            eq(Field::Ipv6Addr, ip("fe80::1"))
        );
    }

    #[test]
    fn an_unsupported_term_is_an_error_naming_it() {
        for (bad, named) in [
            ("http.request", "\"http.request\""),
            ("ip.ttl==3", "\"ip.ttl\""),
            ("dns.qry.name contains \"dnscat\"", "\"dns.qry.name\""),
            ("tcp.payload contains 47.45.54", "\"tcp.payload\""),
            ("frame.time >= \"2021-03-08 16:40:00\"", "\"frame.time\""),
            ("eth.src[0:3] == 00:00:83", "\"eth.src[0:3]\""),
            ("ip.addr#2 == 10.0.0.1", "\"ip.addr#2\""),
            ("tcp.flags & 0x02", "\"&\""),
            ("tcp.flags == 0x02", "\"tcp.flags\""),
            ("tcp.port ~= 80", "\"~=\""),
            ("ip.src = 10.0.0.1", "\"=\""),
            ("tcp.port matches \"8\"", "\"matches\""),
            ("all tcp.port > 1024", "\"all\""),
            ("ip.addr==nothing", "\"nothing\""),
            ("ip.addr==www.example.org", "host names"),
            ("ip.addr==fe80::1", "IPv4"),
            ("ipv6.addr==10.0.0.1", "IPv6"),
            ("ip.addr==10.0.0.0/33", "network"),
            ("tcp.port==65536", "65535"),
            ("tcp.port==-1", "\"-1\""),
            ("tcp.flags.syn==yes", "\"yes\""),
            ("tcp == 1", "protocol"),
            ("tcp.port in {80 443}", "commas"),
            ("tcp.port in {80,}", "\"}\""),
            ("tcp.port in {}", "\"}\""),
            ("tcp.port in {80..}", "\"}\""),
            ("tcp.port in {1..2..3}", "\"..\""),
            ("tcp.port in {80", "not closed"),
            ("ip.addr > 10.0.0.0/8", "ordered"),
            ("frame.time_epoch >= 1615221599.9999999999", "nine decimals"),
            ("ip.src == 10.0.0.1 ip.dst == 10.0.0.2", "\"ip.dst\""),
            ("(tcp", "the end"),
            ("tcp)", "\")\""),
            ("tcp &&", "ends too early"),
            ("", "ends too early"),
        ] {
            match Filter::parse(bad) {
                Ok(f) => panic!("{bad} parsed: {f:?}"),
                Err(e) => assert!(e.contains(named), "{bad}: {e}"),
            }
        }
    }

    /// A packet to test matching on: TCP, UDP or ARP between two stations.
    fn packet<'a>(buf: &'a mut Vec<u8>, kind: &str) -> Summary<'a> {
        use crate::capture::{LinkType, Packet};
        let a = [0x02, 0, 0, 0, 0, 0xaa];
        let b = [0x02, 0, 0, 0, 0, 0xbb];
        buf.clear();
        buf.extend(b);
        buf.extend(a);
        match kind {
            "arp" => {
                buf.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
                buf.extend(a);
                buf.extend([10, 0, 0, 1]);
                buf.extend([0; 6]);
                buf.extend([10, 0, 0, 2]);
            }
            _ => {
                let (proto, l4): (u8, Vec<u8>) = match kind {
                    // 40000 -> 22, SYN
                    "tcp" => (
                        6,
                        vec![
                            0x9c, 0x40, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0,
                            0, 0, 0,
                        ],
                    ),
                    // 68 -> 67
                    _ => (17, vec![0, 68, 0, 67, 0, 8, 0, 0]),
                };
                buf.extend([
                    0x08,
                    0x00,
                    0x45,
                    0,
                    0,
                    20 + l4.len() as u8,
                    0,
                    0,
                    0x40,
                    0,
                    64,
                    proto,
                    0,
                    0,
                ]);
                buf.extend([10, 0, 0, 1, 10, 0, 0, 2]);
                buf.extend(l4);
            }
        }
        let p = Packet {
            ts_ns: 1_615_221_600_000_001_000,
            data: buf,
            wire_len: buf.len() as u32,
        };
        crate::wire::parse(LinkType::Ethernet, &p).unwrap()
    }

    #[test]
    fn matches_as_wireshark_does() {
        let mut buf = Vec::new();
        // what each filter matches among a TCP SYN, a UDP datagram and an ARP request, all
        // from 02:00:00:00:00:aa / 10.0.0.1 to 02:00:00:00:00:bb / 10.0.0.2
        for (filter, want) in [
            ("tcp", "tcp"),
            ("ip", "tcp udp"),
            ("!ip", "arp"),
            ("ip.addr == 10.0.0.2", "tcp udp"),
            ("ip.addr == 10.0.0.0/24", "tcp udp"),
            // != is all_ne: the field must be there, and neither address may equal
            ("ip.addr != 10.0.0.2", ""),
            ("ip.addr != 10.0.0.3", "tcp udp"),
            ("!(ip.addr == 10.0.0.2)", "arp"),
            ("ip.addr !== 10.0.0.2", "tcp udp"),
            ("ip.addr === 10.0.0.2", ""),
            ("ip.src != 10.0.0.2", "tcp udp"),
            ("ip.dst in {10.0.0.1, 10.0.0.2}", "tcp udp"),
            ("ip.dst in {10.0.0.3..10.0.0.9}", ""),
            ("ip.dst in {10.0.0.0..10.0.0.9}", "tcp udp"),
            ("ip.dst not in {10.0.0.2}", "arp"),
            ("tcp.port == 22", "tcp"),
            ("tcp.port in {20..30}", "tcp"),
            ("tcp.port > 30000", "tcp"),
            ("tcp.port < 20", ""),
            ("tcp.dstport == 40000", ""),
            ("tcp.srcport == 40000", "tcp"),
            ("udp.port == 67 || tcp.port == 22", "tcp udp"),
            ("udp.srcport == 68 and udp.dstport == 67", "udp"),
            ("tcp.flags.syn == 1 && tcp.flags.ack == 0", "tcp"),
            ("tcp.flags.syn == 0", ""),
            ("tcp.flags.reset", "tcp"),
            ("arp.opcode == 1", "arp"),
            (
                "arp.dst.proto_ipv4 == 10.0.0.2 && arp.src.hw_mac == 02:00:00:00:00:aa",
                "arp",
            ),
            ("eth.src == 02:00:00:00:00:aa", "tcp udp arp"),
            ("eth.addr == 02:00:00:00:00:bb", "tcp udp arp"),
            ("eth.dst == 02:00:00:00:00:aa", ""),
            ("eth.dst != 02:00:00:00:00:aa", "tcp udp arp"),
            (
                "frame.time_epoch >= 1615221599.999999 && frame.time_epoch <= 1615221600.000001",
                "tcp udp arp",
            ),
            ("frame.time_epoch < 1615221600.000001", ""),
            ("frame.time_epoch == 1615221600.000001000", "tcp udp arp"),
            ("frame.len >= 60", ""),
            ("dns || icmp || ipv6", ""),
        ] {
            let f = parse(filter);
            let got: Vec<&str> = ["tcp", "udp", "arp"]
                .into_iter()
                .filter(|k| f.matches(&packet(&mut buf, k)))
                .collect();
            assert_eq!(got.join(" "), want, "{filter}");
        }
    }

    /// The shared data's manifest, or `None` after saying loudly why not.
    fn shared_manifest(test: &str) -> Option<(std::path::PathBuf, serde_json::Value)> {
        let data = std::env::var_os("IOTAD_SHARED_DATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
            });
        let path = data.join("MANIFEST.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("\n*** SKIPPED {test}: no {} ***\n", path.display());
            return None;
        };
        Some((
            data,
            serde_json::from_str(&text).expect("MANIFEST.json is JSON"),
        ))
    }

    /// Every ground truth's filter and probe filter of `m`, with the packets the manifest
    /// says it selects: (file, filter, packets).
    fn filters(m: &serde_json::Value) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for c in m["captures"].as_array().expect("a captures list") {
            for g in c["ground_truth"].as_array().into_iter().flatten() {
                let file = c["file"].as_str().unwrap().to_string();
                for (f, n) in [
                    (&g["filter"], &g["packets"]),
                    (
                        &g["evidence"]["probe_filter"],
                        &g["evidence"]["probe_packets"],
                    ),
                ] {
                    if let Some(f) = f.as_str() {
                        out.push((file.clone(), f.to_string(), n.as_u64().unwrap()));
                    }
                }
            }
        }
        out
    }

    /// The one term of the shared manifest's filters left out: DNS query names are not
    /// parsed into text (only their length, labels and entropy).
    const LEFT_OUT: &str = "dns.qry.name";

    #[test]
    fn every_filter_of_the_shared_manifest_parses() {
        let Some((_, m)) = shared_manifest("every_filter_of_the_shared_manifest_parses") else {
            return;
        };
        let all = filters(&m);
        assert!(all.len() >= 2 * 28, "{} filters", all.len());
        for c in m["captures"].as_array().unwrap() {
            for g in c["ground_truth"].as_array().into_iter().flatten() {
                let f = g["filter"].as_str().expect("every label has a filter");
                parse(f);
            }
        }
        for (_, f, _) in &all {
            if let Err(e) = Filter::parse(f) {
                assert!(
                    e.contains(&format!("unsupported field \"{LEFT_OUT}\"")),
                    "{e}"
                );
            }
        }
    }

    /// Where the matcher knowingly selects fewer packets than tshark did: (filter, packets
    /// fewer, why).
    const FEWER: &[(&str, u64, &str)] = &[(
        "udp.srcport==161 && ip.dst==10.10.10.10",
        29,
        "ICMP errors quoting a reflected datagram: tshark reads the quoted IP and UDP headers",
    )];

    /// The strongest check of the matcher: each filter of the shared manifest selects
    /// exactly the packets the manifest says tshark found with it (less those of [`FEWER`]).
    #[test]
    fn every_filter_of_the_shared_manifest_selects_what_tshark_did() {
        let test = "every_filter_of_the_shared_manifest_selects_what_tshark_did";
        let Some((data, m)) = shared_manifest(test) else {
            return;
        };
        let mut by_file: std::collections::BTreeMap<String, Vec<(String, Filter, u64)>> =
            Default::default();
        for (file, f, n) in filters(&m) {
            if let Ok(parsed) = Filter::parse(&f) {
                by_file.entry(file).or_default().push((f, parsed, n));
            }
        }
        let mut wrong = Vec::new();
        for (file, fs) in &by_file {
            let mut counts = vec![0u64; fs.len()];
            let mut src = crate::capture::Source::open_file(&data.join(file), None).unwrap();
            let link = src.link();
            while let Some(p) = src.next().unwrap() {
                let Ok(s) = crate::wire::parse(link, &p) else {
                    continue;
                };
                for (n, (_, f, _)) in counts.iter_mut().zip(fs) {
                    *n += u64::from(f.matches(&s));
                }
            }
            for (got, (text, _, want)) in counts.iter().zip(fs) {
                let fewer = FEWER.iter().find(|k| k.0 == text).map_or(0, |k| k.1);
                if *got + fewer != *want {
                    wrong.push(format!("{file}: {text}: {got} packets, tshark {want}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
