//! Linux cooked capture headers, v1 (`DLT_LINUX_SLL`, 16 bytes) and v2 (`DLT_LINUX_SLL2`,
//! 20 bytes): what `tcpdump -i any` writes. They carry only the sender's link-layer address
//! and a packet type (to us, broadcast, multicast, to another host, sent by us).

use super::ethernet::Mac;
use super::{Layer, Malformed};

mod field {
    pub mod v1 {
        pub const PKTTYPE: usize = 0;
        pub const HALEN: usize = 4;
        pub const ADDR: usize = 6;
        pub const PROTOCOL: usize = 14;
        pub const HEADER_LEN: usize = 16;
    }
    pub mod v2 {
        pub const PROTOCOL: usize = 0;
        pub const PKTTYPE: usize = 10;
        pub const HALEN: usize = 11;
        pub const ADDR: usize = 12;
        pub const HEADER_LEN: usize = 20;
    }
}

/// `sll_pkttype` values.
mod pkttype {
    pub const BROADCAST: u16 = 1;
    pub const MULTICAST: u16 = 2;
}

/// A cooked header: the sender's address, a destination inferred from the packet type
/// ([`Mac::UNKNOWN`] for unicast), the protocol (an EtherType) and the payload.
#[derive(Clone, Copy, Debug)]
pub struct Cooked<'a> {
    pub src: Mac,
    pub dst: Mac,
    pub protocol: u16,
    pub payload: &'a [u8],
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn cooked(
    data: &[u8],
    pkttype: u16,
    halen: u8,
    addr: usize,
    protocol: u16,
    hlen: usize,
) -> Cooked<'_> {
    let mut src = Mac::UNKNOWN;
    if halen == 6 {
        src.0.copy_from_slice(&data[addr..addr + 6]);
    }
    let dst = match pkttype {
        pkttype::BROADCAST => Mac::BROADCAST,
        // A group address with no station behind it: enough to count it as multicast.
        pkttype::MULTICAST => Mac([0x01, 0, 0x5e, 0, 0, 0]),
        _ => Mac::UNKNOWN,
    };
    Cooked {
        src,
        dst,
        protocol,
        payload: &data[hlen..],
    }
}

/// Parses a Linux cooked capture v1 header.
pub fn parse_v1(data: &[u8]) -> Result<Cooked<'_>, Malformed> {
    use field::v1::*;
    if data.len() < HEADER_LEN {
        return Err(Malformed::truncated(Layer::Sll));
    }
    let halen = be16(data, HALEN).min(255) as u8;
    Ok(cooked(
        data,
        be16(data, PKTTYPE),
        halen,
        ADDR,
        be16(data, PROTOCOL),
        HEADER_LEN,
    ))
}

/// Parses a Linux cooked capture v2 header.
pub fn parse_v2(data: &[u8]) -> Result<Cooked<'_>, Malformed> {
    use field::v2::*;
    if data.len() < HEADER_LEN {
        return Err(Malformed::truncated(Layer::Sll));
    }
    Ok(cooked(
        data,
        data[PKTTYPE] as u16,
        data[HALEN],
        ADDR,
        be16(data, PROTOCOL),
        HEADER_LEN,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_outgoing() {
        let h: [u8; 18] = [
            0x00, 0x04, // sent by us
            0x00, 0x01, // ARPHRD_ETHER
            0x00, 0x06, // halen
            0x02, 0, 0, 0, 0, 0x07, 0, 0, // address, padded to 8
            0x08, 0x00, // IPv4
            0x45, 0x00,
        ];
        let c = parse_v1(&h).unwrap();
        assert_eq!(c.src, Mac([2, 0, 0, 0, 0, 7]));
        assert_eq!(c.dst, Mac::UNKNOWN);
        assert_eq!(c.protocol, 0x0800);
        assert_eq!(c.payload, &[0x45, 0x00]);
        assert!(parse_v1(&h[..15]).is_err());
    }

    #[test]
    fn v2_broadcast() {
        let h: [u8; 20] = [
            0x08, 0x06, // ARP
            0x00, 0x00, // reserved
            0x00, 0x00, 0x00, 0x02, // ifindex
            0x00, 0x01, // ARPHRD_ETHER
            0x01, // broadcast
            0x06, // halen
            0x02, 0, 0, 0, 0, 0x09, 0, 0,
        ];
        let c = parse_v2(&h).unwrap();
        assert_eq!(c.src, Mac([2, 0, 0, 0, 0, 9]));
        assert!(c.dst.is_broadcast());
        assert_eq!(c.protocol, 0x0806);
        assert!(c.payload.is_empty());
        assert_eq!(
            parse_v2(&h[..19]).unwrap_err(),
            Malformed::truncated(Layer::Sll)
        );
    }
}
