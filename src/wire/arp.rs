//! ARP for IPv4 over Ethernet (RFC 826): who asks for which address, who claims which.

use super::ethernet::Mac;
use super::{Layer, Malformed};

mod field {
    use std::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
    pub const LEN: usize = 28;
}

/// ARP operation codes.
pub const REQUEST: u16 = 1;
pub const REPLY: u16 = 2;

/// The fields of an Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: [u8; 4],
    pub target_mac: Mac,
    pub target_ip: [u8; 4],
}

impl Arp {
    /// A gratuitous announcement: the sender states its own binding to everyone.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// Parses an Ethernet/IPv4 ARP packet; other hardware or protocol types are invalid here.
pub fn parse(d: &[u8]) -> Result<Arp, Malformed> {
    if d.len() < field::LEN {
        return Err(Malformed::truncated(Layer::Arp));
    }
    if d[field::HTYPE] != [0, 1]
        || d[field::PTYPE] != [0x08, 0x00]
        || d[field::HLEN] != 6
        || d[field::PLEN] != 4
    {
        return Err(Malformed::invalid(Layer::Arp));
    }
    let mac = |r: std::ops::Range<usize>| {
        let mut m = [0u8; 6];
        m.copy_from_slice(&d[r]);
        Mac(m)
    };
    let ip = |r: std::ops::Range<usize>| {
        let mut a = [0u8; 4];
        a.copy_from_slice(&d[r]);
        a
    };
    Ok(Arp {
        op: u16::from_be_bytes([d[field::OPER.start], d[field::OPER.start + 1]]),
        sender_mac: mac(field::SHA),
        sender_ip: ip(field::SPA),
        target_mac: mac(field::THA),
        target_ip: ip(field::TPA),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHO_HAS: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth/ipv4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 168, 1, 10, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 168, 1, 1, // target
    ];

    #[test]
    fn request() {
        let a = parse(&WHO_HAS).unwrap();
        assert_eq!(a.op, REQUEST);
        assert_eq!(a.sender_ip, [192, 168, 1, 10]);
        assert_eq!(a.target_ip, [192, 168, 1, 1]);
        assert_eq!(a.sender_mac, Mac([2, 0, 0, 0, 0, 1]));
        assert!(!a.is_gratuitous());
    }

    #[test]
    fn malformed() {
        assert_eq!(
            parse(&WHO_HAS[..27]).unwrap_err(),
            Malformed::truncated(Layer::Arp)
        );
        let mut bad = WHO_HAS;
        bad[5] = 16; // IPv6-sized protocol address
        assert_eq!(parse(&bad).unwrap_err(), Malformed::invalid(Layer::Arp));
    }
}
