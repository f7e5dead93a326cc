//! Packet parsing: captured bytes in, a small `Copy` [`Summary`] out, without allocating.
//!
//! One file per protocol, each with a `field` module of byte offsets and a length check
//! before any access (after smoltcp's `wire`). IPv4/IPv6 slicing is etherparse's; the rest is
//! ours. [`parse`] is the entry point: a packet whose link or network header is damaged is a
//! [`Malformed`] error; damage above that (a cut TCP header, a broken DNS name) keeps what
//! was readable and is reported in [`Summary::issue`], so every packet still counts.

pub mod arp;
pub mod dhcp;
pub mod dns;
pub mod ethernet;
pub mod icmp;
pub mod ip;
pub mod mining;
pub mod sll;
pub mod tcp;
pub mod udp;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::capture::{LinkType, Packet};
pub use ethernet::Mac;

/// The protocol layer where a packet was found damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Ethernet,
    Vlan,
    Sll,
    Arp,
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Icmp,
    Dns,
    Dhcp,
}

/// What was wrong at that layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Fewer bytes than the header needs.
    Truncated,
    /// The bytes are there but make no sense.
    Invalid,
    /// The header's checksum does not match its bytes (damaged on the way).
    Checksum,
    /// An address no station can send from (multicast, broadcast, loopback, reserved).
    Address,
}

/// Why a packet (or part of it) could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed {
    pub layer: Layer,
    pub problem: Problem,
}

impl Malformed {
    pub const fn truncated(layer: Layer) -> Malformed {
        Malformed {
            layer,
            problem: Problem::Truncated,
        }
    }
    pub const fn invalid(layer: Layer) -> Malformed {
        Malformed {
            layer,
            problem: Problem::Invalid,
        }
    }

    pub const fn checksum(layer: Layer) -> Malformed {
        Malformed {
            layer,
            problem: Problem::Checksum,
        }
    }
    pub const fn address(layer: Layer) -> Malformed {
        Malformed {
            layer,
            problem: Problem::Address,
        }
    }

    /// Number of distinct reasons, for counting them in an array.
    pub const COUNT: usize = 44;

    /// A dense index in `0..COUNT`.
    pub fn index(&self) -> usize {
        self.layer as usize * 4 + self.problem as usize
    }

    /// The reason at `index`, inverse of [`Malformed::index`].
    pub fn from_index(index: usize) -> Malformed {
        const LAYERS: [Layer; 11] = [
            Layer::Ethernet,
            Layer::Vlan,
            Layer::Sll,
            Layer::Arp,
            Layer::Ipv4,
            Layer::Ipv6,
            Layer::Tcp,
            Layer::Udp,
            Layer::Icmp,
            Layer::Dns,
            Layer::Dhcp,
        ];
        let problem = [
            Problem::Truncated,
            Problem::Invalid,
            Problem::Checksum,
            Problem::Address,
        ][index % 4];
        Malformed {
            layer: LAYERS[(index / 4) % LAYERS.len()],
            problem,
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layer = format!("{:?}", self.layer).to_lowercase();
        let problem = match self.problem {
            Problem::Truncated => "truncated",
            Problem::Invalid => "invalid",
            Problem::Checksum => "checksum",
            Problem::Address => "address",
        };
        write!(f, "{layer}-{problem}")
    }
}

/// Counts of damaged packets (and damaged upper layers) per reason.
#[derive(Clone, Debug)]
pub struct MalformedCounts([u64; Malformed::COUNT]);

impl Default for MalformedCounts {
    fn default() -> MalformedCounts {
        MalformedCounts([0; Malformed::COUNT])
    }
}

impl MalformedCounts {
    pub fn add(&mut self, m: Malformed) {
        self.0[m.index()] += 1;
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    pub fn get(&self, m: Malformed) -> u64 {
        self.0[m.index()]
    }
    /// The non-zero counts with their reasons.
    pub fn iter(&self) -> impl Iterator<Item = (Malformed, u64)> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (Malformed::from_index(i), n))
    }
}

/// The network layer of a packet.
#[derive(Clone, Copy, Debug)]
pub enum Net {
    Arp(arp::Arp),
    Ip {
        src: IpAddr,
        dst: IpAddr,
        fragment: bool,
    },
    /// Any other EtherType (EAPOL, LLDP, 802.3 LLC frames...).
    Other(u16),
}

/// The transport layer of an IP packet.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    None,
    Tcp(tcp::Tcp),
    Udp {
        src_port: u16,
        dst_port: u16,
        payload_len: u32,
    },
    Icmp(icmp::Icmp),
}

/// What the application payload said, for the protocols the features read.
#[derive(Clone, Copy, Debug)]
pub enum App<'a> {
    None,
    Dns(dns::Dns),
    /// An mDNS message, and in a response the offset of the announced host name in `msg`.
    Mdns {
        dns: dns::Dns,
        msg: &'a [u8],
        host: Option<usize>,
    },
    Dhcp(dhcp::Dhcp<'a>),
    /// A TCP segment that carries a crypto-mining protocol message ([`mining`]), and who
    /// sends such a message.
    Mining(mining::Side),
}

/// Everything later stages need to know about one packet.
#[derive(Clone, Copy, Debug)]
pub struct Summary<'a> {
    pub ts_ns: u64,
    pub src_mac: Mac,
    /// [`Mac::UNKNOWN`] where the link layer does not say (Linux cooked captures).
    pub dst_mac: Mac,
    pub vlan: Option<u16>,
    pub wire_len: u32,
    pub net: Net,
    pub transport: Transport,
    pub app: App<'a>,
    /// Damage found above the network layer; what was readable is still here.
    pub issue: Option<Malformed>,
}

impl Summary<'_> {
    /// The same summary with nothing borrowed from the packet's bytes, when it borrows
    /// nothing (not a DHCP or mDNS message): it can then outlive them.
    pub fn detach(self) -> Option<Summary<'static>> {
        let app = match self.app {
            App::None => App::None,
            App::Dns(d) => App::Dns(d),
            App::Mining(side) => App::Mining(side),
            App::Mdns { .. } | App::Dhcp(_) => return None,
        };
        Some(Summary {
            ts_ns: self.ts_ns,
            src_mac: self.src_mac,
            dst_mac: self.dst_mac,
            vlan: self.vlan,
            wire_len: self.wire_len,
            net: self.net,
            transport: self.transport,
            app,
            issue: self.issue,
        })
    }
}

/// Well-known ports that select an application parser.
pub mod port {
    pub const FTP: u16 = 21;
    pub const SSH: u16 = 22;
    pub const TELNET: u16 = 23;
    pub const TELNET_ALT: u16 = 2323;
    pub const DNS: u16 = 53;
    pub const DHCP_SERVER: u16 = 67;
    pub const DHCP_CLIENT: u16 = 68;
    pub const NTP: u16 = 123;
    pub const MDNS: u16 = 5353;
}

/// MAC used for raw-IP captures, which have no link layer: a locally administered address
/// derived from a LAN IPv4 address, or from the low bytes of an IPv6 address.
pub fn pseudo_mac(ip: &IpAddr) -> Mac {
    if !ip::is_local(ip) {
        return PSEUDO_GATEWAY;
    }
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            Mac([0x02, 0x00, o[0], o[1], o[2], o[3]])
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            Mac([0x06, o[11], o[12], o[13], o[14], o[15]])
        }
    }
}

/// In raw-IP captures, every address off the LAN is behind this one pseudo gateway.
pub const PSEUDO_GATEWAY: Mac = Mac([0x02, 0xff, 0xff, 0xff, 0xff, 0xff]);

/// Parses one captured packet of the given link type.
pub fn parse<'a>(link: LinkType, pkt: &Packet<'a>) -> Result<Summary<'a>, Malformed> {
    let (src_mac, dst_mac, vlan, ethertype, payload) = match link {
        LinkType::Ethernet => {
            let f = ethernet::parse(pkt.data)?;
            (f.src, f.dst, f.vlan, f.ethertype, f.payload)
        }
        LinkType::LinuxSll | LinkType::LinuxSll2 => {
            let c = if link == LinkType::LinuxSll {
                sll::parse_v1(pkt.data)?
            } else {
                sll::parse_v2(pkt.data)?
            };
            (c.src, c.dst, None, c.protocol, c.payload)
        }
        LinkType::RawIp => {
            let ethertype = match pkt.data.first().map(|b| b >> 4) {
                Some(6) => ethernet::ethertype::IPV6,
                _ => ethernet::ethertype::IPV4,
            };
            (Mac::UNKNOWN, Mac::UNKNOWN, None, ethertype, pkt.data)
        }
    };
    let mut s = Summary {
        ts_ns: pkt.ts_ns,
        src_mac,
        dst_mac,
        vlan,
        wire_len: pkt.wire_len,
        net: Net::Other(ethertype),
        transport: Transport::None,
        app: App::None,
        issue: None,
    };
    match ethertype {
        ethernet::ethertype::ARP => s.net = Net::Arp(arp::parse(payload)?),
        ethernet::ethertype::IPV4 | ethernet::ethertype::IPV6 => {
            let ip = ip::parse(payload)?;
            s.net = Net::Ip {
                src: ip.src,
                dst: ip.dst,
                fragment: ip.fragment,
            };
            if link == LinkType::RawIp {
                s.src_mac = pseudo_mac(&ip.src);
                s.dst_mac = pseudo_mac(&ip.dst);
            }
            if !ip.l4.is_empty() {
                if let Err(m) = parse_transport(&mut s, &ip) {
                    s.issue = Some(m);
                }
            }
        }
        _ => {}
    }
    Ok(s)
}

/// Protocol numbers.
mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

fn parse_transport<'a>(s: &mut Summary<'a>, ip: &ip::Ip<'a>) -> Result<(), Malformed> {
    match ip.protocol {
        proto::TCP => {
            let t = tcp::parse(ip.l4, ip.l4_wire_len)?;
            s.transport = Transport::Tcp(t);
            if t.payload_len > 0 {
                if let Some(side) = mining::message(tcp::captured_payload(ip.l4)) {
                    s.app = App::Mining(side);
                }
            }
        }
        proto::ICMP | proto::ICMPV6 => {
            s.transport = Transport::Icmp(icmp::parse(
                ip.l4,
                ip.l4_wire_len,
                ip.protocol == proto::ICMPV6,
            )?)
        }
        proto::UDP => {
            let u = udp::parse(ip.l4, ip.l4_wire_len)?;
            s.transport = Transport::Udp {
                src_port: u.src_port,
                dst_port: u.dst_port,
                payload_len: u.payload_len,
            };
            s.app = parse_app(&u)?;
        }
        _ => {}
    }
    Ok(())
}

fn parse_app<'a>(u: &udp::Udp<'a>) -> Result<App<'a>, Malformed> {
    let either = |p: u16| u.src_port == p || u.dst_port == p;
    Ok(if either(port::MDNS) {
        let dns = dns::parse(u.payload)?;
        let host = if dns.response {
            dns::host_name(u.payload).unwrap_or(None)
        } else {
            None
        };
        App::Mdns {
            dns,
            msg: u.payload,
            host,
        }
    } else if either(port::DNS) {
        App::Dns(dns::parse(u.payload)?)
    } else if (u.src_port, u.dst_port) == (port::DHCP_CLIENT, port::DHCP_SERVER)
        || (u.src_port, u.dst_port) == (port::DHCP_SERVER, port::DHCP_CLIENT)
    {
        App::Dhcp(dhcp::parse(u.payload)?)
    } else {
        App::None
    })
}

/// The IPv4 address as a `u32`, for compact tables.
pub fn v4_bits(ip: &IpAddr) -> Option<u32> {
    match ip {
        IpAddr::V4(a) => Some(u32::from(*a)),
        IpAddr::V6(_) => None,
    }
}

/// `Ipv4Addr` from ARP's byte array.
pub fn v4(bytes: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(data: &[u8]) -> Packet<'_> {
        Packet {
            ts_ns: 1,
            data,
            wire_len: data.len() as u32,
        }
    }

    // Ethernet / 802.1Q VLAN 100 / IPv4 192.168.1.129 -> 52.1.2.3 / TCP 40000 -> 443 SYN
    const TAGGED_SYN: [u8; 58] = [
        0x00, 0x1c, 0x7f, 0x53, 0xd0, 0x28, 0xf4, 0xb8, 0x5e, 0xff, 0x2b, 0x1b, 0x81, 0x00, 0x00,
        0x64, 0x08, 0x00, //
        0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 192, 168, 1, 129,
        52, 1, 2, 3, //
        0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];

    #[test]
    fn tagged_tcp_syn() {
        let s = parse(LinkType::Ethernet, &pkt(&TAGGED_SYN)).unwrap();
        assert_eq!(s.src_mac.to_string(), "f4:b8:5e:ff:2b:1b");
        assert_eq!(s.vlan, Some(100));
        let Net::Ip { src, dst, fragment } = s.net else {
            panic!("not IP: {:?}", s.net)
        };
        assert_eq!(
            (src.to_string().as_str(), dst.to_string().as_str(), fragment),
            ("192.168.1.129", "52.1.2.3", false)
        );
        let Transport::Tcp(t) = s.transport else {
            panic!("not TCP")
        };
        assert!(t.is_syn());
        assert_eq!(t.dst_port, 443);
        assert!(s.issue.is_none());
    }

    #[test]
    fn damaged_transport_keeps_the_ip_layer() {
        let cut = &TAGGED_SYN[..18 + 20 + 10];
        let s = parse(
            LinkType::Ethernet,
            &Packet {
                ts_ns: 1,
                data: cut,
                wire_len: 58,
            },
        )
        .unwrap();
        assert!(matches!(s.net, Net::Ip { .. }));
        assert!(matches!(s.transport, Transport::None));
        assert_eq!(s.issue, Some(Malformed::truncated(Layer::Tcp)));
        assert_eq!(s.wire_len, 58);
    }

    #[test]
    fn raw_ip_gets_pseudo_macs() {
        let s = parse(LinkType::RawIp, &pkt(&TAGGED_SYN[18..])).unwrap();
        assert_eq!(s.src_mac, Mac([2, 0, 192, 168, 1, 129]));
        assert_eq!(s.dst_mac, PSEUDO_GATEWAY);
    }

    #[test]
    fn link_damage_is_an_error() {
        assert_eq!(
            parse(LinkType::Ethernet, &pkt(&TAGGED_SYN[..10])).unwrap_err(),
            Malformed::truncated(Layer::Ethernet)
        );
        assert_eq!(
            parse(LinkType::Ethernet, &pkt(&TAGGED_SYN[..20])).unwrap_err(),
            Malformed::truncated(Layer::Ipv4)
        );
        assert_eq!(
            parse(LinkType::LinuxSll2, &pkt(&TAGGED_SYN[..10])).unwrap_err(),
            Malformed::truncated(Layer::Sll)
        );
    }

    #[test]
    fn reason_indexes_round_trip() {
        for i in 0..Malformed::COUNT {
            assert_eq!(Malformed::from_index(i).index(), i);
        }
        assert_eq!(Malformed::invalid(Layer::Dhcp).to_string(), "dhcp-invalid");
    }
}
