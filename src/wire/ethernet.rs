//! Ethernet II framing with 802.1Q / 802.1ad VLAN tags, and the MAC address type.
//!
//! Layout: destination MAC (6), source MAC (6), EtherType (2); each VLAN tag inserts a TPID
//! (0x8100, 0x88a8 or 0x9100) and a 2-byte TCI before the inner EtherType.

use std::fmt;

use super::{Layer, Malformed};

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// All zeros: "not known" (e.g. the destination of a Linux cooked capture packet).
    pub const UNKNOWN: Mac = Mac([0; 6]);
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// True for the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Mac::BROADCAST
    }

    /// True for group addresses other than broadcast (the I/G bit is set).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1 && !self.is_broadcast()
    }

    /// True for an address that names one station.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0 && *self != Mac::UNKNOWN
    }

    /// The 24-bit Organisationally Unique Identifier (the vendor prefix).
    /// A locally administered address (bit 1 of the first octet): randomized, private MACs.
    pub fn is_local_admin(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    pub fn oui(&self) -> u32 {
        u32::from_be_bytes([0, self.0[0], self.0[1], self.0[2]])
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
    pub fn parse(s: &str) -> Option<Mac> {
        let mut out = [0u8; 6];
        let mut parts = s.trim().split([':', '-']);
        for b in out.iter_mut() {
            let p = parts.next()?;
            if p.len() != 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

mod field {
    use std::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const HEADER_LEN: usize = 14;
    /// A VLAN tag: TCI (2) then the next EtherType (2), after the TPID.
    pub const TAG_LEN: usize = 4;
}

/// EtherType values the parser dispatches on.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const QINQ_OLD: u16 = 0x9100;
}

/// Most VLAN tags we unwrap before calling a frame malformed.
const MAX_TAGS: usize = 3;

/// An Ethernet frame's addresses, its innermost EtherType and the payload after all tags.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub dst: Mac,
    pub src: Mac,
    pub ethertype: u16,
    pub vlan: Option<u16>,
    pub payload: &'a [u8],
}

/// Reads an Ethernet II header and any VLAN tags.
pub fn parse(data: &[u8]) -> Result<Frame<'_>, Malformed> {
    if data.len() < field::HEADER_LEN {
        return Err(Malformed::truncated(Layer::Ethernet));
    }
    let mut dst = [0u8; 6];
    let mut src = [0u8; 6];
    dst.copy_from_slice(&data[field::DESTINATION]);
    src.copy_from_slice(&data[field::SOURCE]);
    let mut ethertype = u16::from_be_bytes([
        data[field::ETHERTYPE.start],
        data[field::ETHERTYPE.start + 1],
    ]);
    let mut rest = &data[field::HEADER_LEN..];
    let mut vlan = None;
    let mut tags = 0;
    while matches!(
        ethertype,
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD
    ) {
        if tags == MAX_TAGS {
            return Err(Malformed::invalid(Layer::Vlan));
        }
        if rest.len() < field::TAG_LEN {
            return Err(Malformed::truncated(Layer::Vlan));
        }
        let tci = u16::from_be_bytes([rest[0], rest[1]]);
        // The innermost tag is the customer VLAN: keep the last one read.
        vlan = Some(tci & 0x0fff);
        ethertype = u16::from_be_bytes([rest[2], rest[3]]);
        rest = &rest[field::TAG_LEN..];
        tags += 1;
    }
    Ok(Frame {
        dst: Mac(dst),
        src: Mac(src),
        ethertype,
        vlan,
        payload: rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x06, // ARP
        0xaa, 0xbb,
    ];

    const QINQ: [u8; 24] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, //
        0x88, 0xa8, 0x00, 0x64, // S-tag, VLAN 100
        0x81, 0x00, 0x20, 0x0a, // C-tag, PCP 1, VLAN 10
        0x08, 0x00, // IPv4
        0x45, 0x00,
    ];

    #[test]
    fn untagged() {
        let f = parse(&UNTAGGED).unwrap();
        assert!(f.dst.is_broadcast());
        assert_eq!(f.src.to_string(), "02:00:00:00:00:01");
        assert_eq!(f.ethertype, ethertype::ARP);
        assert_eq!(f.vlan, None);
        assert_eq!(f.payload, &[0xaa, 0xbb]);
    }

    #[test]
    fn double_tagged() {
        let f = parse(&QINQ).unwrap();
        assert_eq!(f.ethertype, ethertype::IPV4);
        assert_eq!(f.vlan, Some(10));
        assert_eq!(f.payload, &[0x45, 0x00]);
    }

    #[test]
    fn short_frames() {
        assert_eq!(
            parse(&UNTAGGED[..13]).unwrap_err(),
            Malformed::truncated(Layer::Ethernet)
        );
        assert_eq!(
            parse(&QINQ[..17]).unwrap_err(),
            Malformed::truncated(Layer::Vlan)
        );
    }

    #[test]
    fn endless_tags() {
        let mut f = UNTAGGED[..12].to_vec();
        for _ in 0..5 {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
        }
        f.extend_from_slice(&[0x81, 0x00]);
        assert_eq!(parse(&f).unwrap_err(), Malformed::invalid(Layer::Vlan));
    }

    #[test]
    fn mac_text() {
        let m = Mac::parse("F4:b8:5e:ff:2b:1b").unwrap();
        assert_eq!(m.to_string(), "f4:b8:5e:ff:2b:1b");
        assert_eq!(m.oui(), 0xf4b85e);
        assert!(m.is_unicast());
        assert!(Mac::parse("f4:b8:5e:ff:2b").is_none());
        assert!(Mac::parse("f4:b8:5e:ff:2b:1b:00").is_none());
        assert!(Mac::parse("zz:b8:5e:ff:2b:1b").is_none());
        assert!(Mac([0x01, 0, 0x5e, 0, 0, 0xfb]).is_multicast());
    }
}
