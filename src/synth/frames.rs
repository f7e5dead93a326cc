//! Building the synthesizer's frames: Ethernet/IPv4 with TCP, UDP and ICMP through
//! etherparse's `PacketBuilder` (checksums included), ARP, and the DNS, mDNS, DHCP and NTP
//! payloads by hand. Each frame travels with [`Meta`], the synthesizer's own record of what
//! it is, from which the ground truth is counted without parsing anything.

use std::net::{IpAddr, Ipv4Addr};

use etherparse::PacketBuilder;

use crate::wire::Mac;

/// What the synthesizer knows about a frame it wrote.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// Index of the synthesized device that sent it.
    pub from: Option<u16>,
    /// Index of the synthesized device it is addressed to.
    pub to: Option<u16>,
    /// Index of the attack that produced it, if any.
    pub attack: Option<u16>,
    /// A TCP segment (of any flags, none included).
    pub tcp: bool,
    pub tcp_flags: u8,
    pub udp: bool,
    pub icmp: bool,
    pub arp_request_for: Option<[u8; 4]>,
    pub arp: bool,
    /// Remote IP and port seen from the sender.
    pub dst_ip: Option<Ipv4Addr>,
    pub dst_port: Option<u16>,
    /// The name queried, for DNS queries to port 53.
    pub dns_query: Option<String>,
    pub broadcast: bool,
    pub multicast: bool,
}

/// A frame with its record.
pub struct Frame {
    pub bytes: Vec<u8>,
    pub meta: Meta,
}

/// One end of a conversation.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    pub mac: Mac,
    pub ip: Ipv4Addr,
}

fn ip4(ip: Ipv4Addr) -> [u8; 4] {
    ip.octets()
}

/// A TCP segment from `a` to `b` through the LAN (the MACs are the link's ends).
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    payload: &[u8],
) -> Frame {
    use crate::wire::tcp::flags as f;
    let mut b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv4(ip4(src), ip4(dst), 64)
        .tcp(sport, dport, seq, 64240);
    if flags & f::SYN != 0 {
        b = b.syn();
    }
    if flags & f::ACK != 0 {
        b = b.ack(seq.wrapping_add(1));
    }
    if flags & f::RST != 0 {
        b = b.rst();
    }
    if flags & f::FIN != 0 {
        b = b.fin();
    }
    if flags & f::PSH != 0 {
        b = b.psh();
    }
    if flags & f::URG != 0 {
        b = b.urg(0);
    }
    let mut bytes = Vec::with_capacity(54 + payload.len());
    b.write(&mut bytes, payload)
        .expect("writing to a Vec cannot fail");
    Frame {
        bytes,
        meta: Meta {
            tcp: true,
            tcp_flags: flags,
            dst_ip: Some(dst),
            dst_port: Some(dport),
            ..Meta::default()
        },
    }
}

/// A UDP datagram.
pub fn udp(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Frame {
    let b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv4(ip4(src), ip4(dst), 64)
        .udp(sport, dport);
    let mut bytes = Vec::with_capacity(42 + payload.len());
    b.write(&mut bytes, payload)
        .expect("writing to a Vec cannot fail");
    Frame {
        bytes,
        meta: Meta {
            udp: true,
            dst_ip: Some(dst),
            dst_port: Some(dport),
            broadcast: dst_mac.is_broadcast(),
            multicast: dst_mac.is_multicast(),
            ..Meta::default()
        },
    }
}

/// An ICMP echo request carrying `payload`.
pub fn ping(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    seq: u16,
    payload: &[u8],
) -> Frame {
    let b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv4(ip4(src), ip4(dst), 64)
        .icmpv4_echo_request(id, seq);
    let mut bytes = Vec::new();
    b.write(&mut bytes, payload)
        .expect("writing to a Vec cannot fail");
    Frame {
        bytes,
        meta: Meta {
            icmp: true,
            dst_ip: Some(dst),
            ..Meta::default()
        },
    }
}

/// An ARP request (`target_mac` unknown, broadcast) or reply.
pub fn arp(op: u16, sender: Host, target_mac: Mac, target_ip: Ipv4Addr) -> Frame {
    let dst = if op == crate::wire::arp::REQUEST {
        Mac::BROADCAST
    } else {
        target_mac
    };
    let mut bytes = Vec::with_capacity(60);
    bytes.extend_from_slice(&dst.0);
    bytes.extend_from_slice(&sender.mac.0);
    bytes.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4]);
    bytes.extend_from_slice(&op.to_be_bytes());
    bytes.extend_from_slice(&sender.mac.0);
    bytes.extend_from_slice(&sender.ip.octets());
    bytes.extend_from_slice(&if op == crate::wire::arp::REQUEST {
        [0; 6]
    } else {
        target_mac.0
    });
    bytes.extend_from_slice(&target_ip.octets());
    bytes.resize(60, 0); // Ethernet minimum frame, as NICs pad it
    let request = op == crate::wire::arp::REQUEST && sender.ip != target_ip;
    Frame {
        bytes,
        meta: Meta {
            arp: true,
            arp_request_for: request.then(|| target_ip.octets()),
            broadcast: dst.is_broadcast(),
            ..Meta::default()
        },
    }
}

/// Encodes a DNS name in wire format.
fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
}

/// A DNS query message for `name` of type `qtype`.
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    put_name(&mut m, name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

/// The response to a query: one A record, or NXDOMAIN with none.
pub fn dns_response(id: u16, name: &str, qtype: u16, answer: Option<Ipv4Addr>) -> Vec<u8> {
    let mut m = Vec::with_capacity(48 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    let rcode = if answer.is_some() { 0 } else { 3 };
    m.extend_from_slice(&[
        0x81,
        0x80 | rcode,
        0,
        1,
        0,
        u8::from(answer.is_some()),
        0,
        0,
        0,
        0,
    ]);
    put_name(&mut m, name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if let Some(ip) = answer {
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
        m.extend_from_slice(&ip.octets());
    }
    m
}

/// An mDNS announcement: `host.local` has address `ip`.
pub fn mdns_announce(host: &str, ip: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    put_name(&mut m, &format!("{host}.local"));
    m.extend_from_slice(&[0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4]);
    m.extend_from_slice(&ip.octets());
    m
}

/// A DHCP request from `mac` for `ip`, with host name and vendor class options.
pub fn dhcp_request(mac: Mac, xid: u32, ip: Ipv4Addr, host: &str, vendor: &str) -> Vec<u8> {
    let mut m = vec![0u8; 240];
    m[0] = 1;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[28..34].copy_from_slice(&mac.0);
    m[236..240].copy_from_slice(&[99, 130, 83, 99]);
    m.extend_from_slice(&[53, 1, 3, 50, 4]);
    m.extend_from_slice(&ip.octets());
    m.push(12);
    m.push(host.len() as u8);
    m.extend_from_slice(host.as_bytes());
    m.push(60);
    m.push(vendor.len() as u8);
    m.extend_from_slice(vendor.as_bytes());
    m.push(255);
    m
}

/// A DHCP server's ack to `client` giving it `yiaddr` and naming `router` (option 3).
pub fn dhcp_ack(client: Mac, xid: u32, yiaddr: Ipv4Addr, router: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![0u8; 240];
    m[0] = 2;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[16..20].copy_from_slice(&yiaddr.octets());
    m[28..34].copy_from_slice(&client.0);
    m[236..240].copy_from_slice(&[99, 130, 83, 99]);
    m.extend_from_slice(&[53, 1, 5, 3, 4]);
    m.extend_from_slice(&router.octets());
    m.push(255);
    m
}

/// An NTP client request (48 bytes, version 4, mode 3).
pub fn ntp_request() -> Vec<u8> {
    let mut m = vec![0u8; 48];
    m[0] = 0x23;
    m
}

/// The IPv4 address as an `IpAddr`.
pub fn ip(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}
