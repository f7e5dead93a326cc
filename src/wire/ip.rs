//! IPv4 and IPv6, through etherparse's lax slicing: IPv4 options, IPv6 extension headers and
//! fragments are handled there, and a packet cut short by the snapshot length still yields
//! its addresses and the captured part of its payload.

use std::net::IpAddr;

use etherparse::{err, LaxIpSlice};

use super::{Layer, Malformed};

/// An IP packet's addresses, transport protocol, and its transport bytes.
#[derive(Clone, Copy, Debug)]
pub struct Ip<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number of the payload (after IPv6 extension headers).
    pub protocol: u8,
    /// True for any fragment; `l4` is empty for all but the first.
    pub fragment: bool,
    /// The captured transport bytes (empty for non-first fragments).
    pub l4: &'a [u8],
    /// The transport length on the wire, as the IP header declares it.
    pub l4_wire_len: u32,
}

/// Parses an IPv4 or IPv6 packet (the version nibble decides).
pub fn parse(d: &[u8]) -> Result<Ip<'_>, Malformed> {
    let (slice, _ext_err) = LaxIpSlice::from_slice(d).map_err(|e| {
        let layer = match d.first().map(|b| b >> 4) {
            Some(6) => Layer::Ipv6,
            _ => Layer::Ipv4,
        };
        match e {
            err::ip::LaxHeaderSliceError::Len(_) => Malformed::truncated(layer),
            err::ip::LaxHeaderSliceError::Content(_) => Malformed::invalid(layer),
        }
    })?;
    if let LaxIpSlice::Ipv4(v4) = &slice {
        // a frame damaged on the way (a noisy Wi-Fi link) must not invent stations or routers
        if !checksum_ok(v4.header().slice()) {
            return Err(Malformed::checksum(Layer::Ipv4));
        }
    }
    if impossible_source(&slice.source_addr()) {
        let layer = match slice {
            LaxIpSlice::Ipv4(_) => Layer::Ipv4,
            LaxIpSlice::Ipv6(_) => Layer::Ipv6,
        };
        return Err(Malformed::address(layer));
    }
    let payload = slice.payload();
    let first_fragment = match &slice {
        LaxIpSlice::Ipv4(v4) => v4.header().fragments_offset().value() == 0,
        // IPv6 fragments are rare on a LAN; only unfragmented payloads are read.
        LaxIpSlice::Ipv6(_) => !payload.fragmented,
    };
    let declared = match &slice {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            u32::from(h.total_len()).saturating_sub(u32::from(h.ihl()) * 4)
        }
        LaxIpSlice::Ipv6(v6) => u32::from(v6.header().payload_length())
            .saturating_sub(v6.extensions().slice().len() as u32),
    };
    // A zero length field (segmentation offload on the capturing host) falls back to what
    // was captured.
    let l4_wire_len = if declared == 0 {
        payload.payload.len() as u32
    } else {
        declared
    };
    Ok(Ip {
        src: slice.source_addr(),
        dst: slice.destination_addr(),
        protocol: payload.ip_number.0,
        fragment: payload.fragmented,
        l4: if first_fragment { payload.payload } else { &[] },
        l4_wire_len,
    })
}

/// Whether an IPv4 header's one's-complement sum over all its bytes (the checksum field
/// included) is all ones, as RFC 791 requires. A zero checksum field is a header captured on
/// the sending host before the NIC filled it in (checksum offload), not damage.
fn checksum_ok(header: &[u8]) -> bool {
    if header.get(10..12) == Some(&[0, 0]) {
        return true;
    }
    ones_sum(header) == 0xffff
}

/// The one's-complement sum of `bytes` as 16-bit big-endian words (RFC 1071), folded to 16
/// bits; an odd last byte is padded with a zero.
fn ones_sum(bytes: &[u8]) -> u32 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// A source address no station sends from: multicast, the limited broadcast, loopback
/// (never on a wire), IPv4's reserved 240/4.
fn impossible_source(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_multicast() || a.is_loopback() || a.octets()[0] >= 240,
        IpAddr::V6(a) => a.is_multicast() || a.is_loopback(),
    }
}

/// True for addresses that stay on the LAN: RFC 1918, CGNAT-free private space, link-local,
/// loopback, multicast, broadcast, unspecified, and IPv6 ULA / link-local / multicast.
pub fn is_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_private()
                || a.is_link_local()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_unspecified()
        }
        IpAddr::V6(a) => {
            let s = a.segments()[0];
            (s & 0xfe00) == 0xfc00 // unique local
                || (s & 0xffc0) == 0xfe80 // link-local
                || a.is_multicast()
                || a.is_loopback()
                || a.is_unspecified()
        }
    }
}

/// True for group addresses: multicast, broadcast (IPv4's limited broadcast; a subnet's
/// broadcast address is not told apart here), unspecified.
pub fn is_group(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_multicast() || a.is_broadcast() || a.is_unspecified(),
        IpAddr::V6(a) => a.is_multicast() || a.is_unspecified(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_s_checksum_passes_and_any_flipped_bit_fails() {
        let mut rng = crate::math::Rng::new(7);
        for i in 0..10_000 {
            let len = 20 + 4 * (i % 11);
            let mut h: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            // the checksum as a sender computes it
            h[10..12].copy_from_slice(&[0, 0]);
            let sum = ones_sum(&h) as u16;
            h[10..12].copy_from_slice(&(!sum).to_be_bytes());
            assert!(checksum_ok(&h), "{h:02x?}");
            let bit = rng.range(0, len as u64 * 8) as usize;
            h[bit / 8] ^= 1 << (bit % 8);
            // (a zeroed checksum field is offload, accepted on purpose)
            if h[10..12] != [0, 0] {
                assert!(!checksum_ok(&h), "bit {bit} flipped: {h:02x?}");
            }
        }
    }

    // IPv4, IHL 6 (one 4-byte option), total length 44, UDP, 10.0.0.2 -> 8.8.8.8
    const V4_OPTS: [u8; 32] = [
        0x46, 0x00, 0x00, 0x2c, 0x00, 0x01, 0x00, 0x00, 64, 17, 0, 0, 10, 0, 0, 2, 8, 8, 8,
        8, //
        0x94, 0x04, 0x00, 0x00, // router alert
        0x30, 0x39, 0x00, 0x35, 0x00, 0x18, 0x00, 0x00, // UDP header (payload cut off)
    ];

    #[test]
    fn ipv4_with_options_cut_short() {
        let ip = parse(&V4_OPTS).unwrap();
        assert_eq!(ip.src.to_string(), "10.0.0.2");
        assert_eq!(ip.dst.to_string(), "8.8.8.8");
        assert_eq!(ip.protocol, 17);
        assert_eq!(ip.l4.len(), 8);
        assert_eq!(ip.l4_wire_len, 44 - 24);
        assert!(!ip.fragment);
        assert!(is_local(&ip.src) && !is_local(&ip.dst));
    }

    #[test]
    fn damaged_headers_and_impossible_sources_are_refused() {
        // 192.168.1.7 -> 52.1.2.3, UDP, with its checksum (0x831d)
        let good: [u8; 20] = [
            0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0x83, 0x1d, 192, 168, 1, 7, 52, 1, 2, 3,
        ];
        assert!(parse(&good).is_ok());
        let mut flipped = good;
        flipped[15] ^= 0x10; // one bit of the source address: 192.168.1.23
        assert_eq!(
            parse(&flipped).unwrap_err(),
            Malformed::checksum(Layer::Ipv4)
        );
        let mut offloaded = flipped;
        offloaded[10..12].copy_from_slice(&[0, 0]); // not filled in before the NIC did it
        assert!(parse(&offloaded).is_ok());
        let mut multicast = offloaded;
        multicast[12] = 224;
        assert_eq!(
            parse(&multicast).unwrap_err(),
            Malformed::address(Layer::Ipv4)
        );
    }

    #[test]
    fn non_first_fragment_has_no_transport() {
        let mut f = V4_OPTS;
        f[6] = 0x00;
        f[7] = 0x10; // offset 16 * 8 bytes
        let ip = parse(&f).unwrap();
        assert!(ip.fragment);
        assert!(ip.l4.is_empty());
    }

    #[test]
    fn ipv6_with_hop_by_hop() {
        let mut p = vec![0x60, 0, 0, 0, 0, 16, 0 /* hop-by-hop */, 1];
        p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16]);
        p.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]); // next: ICMPv6, router alert
        p.extend_from_slice(&[143, 0, 0, 0, 0, 0, 0, 1]); // MLDv2 report
        let ip = parse(&p).unwrap();
        assert_eq!(ip.protocol, 58);
        assert_eq!(ip.l4, &[143, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(ip.l4_wire_len, 8);
    }

    #[test]
    fn malformed() {
        assert_eq!(
            parse(&V4_OPTS[..10]).unwrap_err(),
            Malformed::truncated(Layer::Ipv4)
        );
        assert_eq!(
            parse(&[0x60, 0, 0]).unwrap_err(),
            Malformed::truncated(Layer::Ipv6)
        );
        assert_eq!(
            parse(&[0x43, 0, 0, 0]).unwrap_err(),
            Malformed::invalid(Layer::Ipv4)
        );
        assert!(parse(&[]).is_err());
        assert!(parse(&[0x10, 0, 0, 0]).is_err());
    }
}
