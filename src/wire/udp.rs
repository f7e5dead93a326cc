//! UDP header: ports and the datagram's payload, which DNS, mDNS and DHCP read further.

use super::{Layer, Malformed};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const HEADER_LEN: usize = 8;
}

/// A UDP datagram: ports, payload length on the wire, and the captured payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: u32,
    pub payload: &'a [u8],
}

/// Parses a UDP header whose datagram is `wire_len` bytes long on the wire (per the IP
/// header). The UDP length field is trusted only when it agrees with that.
pub fn parse(d: &[u8], wire_len: u32) -> Result<Udp<'_>, Malformed> {
    if d.len() < field::HEADER_LEN {
        return Err(Malformed::truncated(Layer::Udp));
    }
    let len = u32::from(u16::from_be_bytes([d[field::LENGTH], d[field::LENGTH + 1]]));
    if len < field::HEADER_LEN as u32 || len > wire_len.max(field::HEADER_LEN as u32) {
        return Err(Malformed::invalid(Layer::Udp));
    }
    let payload_len = len - field::HEADER_LEN as u32;
    let captured = &d[field::HEADER_LEN..];
    let payload = &captured[..captured.len().min(payload_len as usize)];
    Ok(Udp {
        src_port: u16::from_be_bytes([d[field::SRC_PORT], d[field::SRC_PORT + 1]]),
        dst_port: u16::from_be_bytes([d[field::DST_PORT], d[field::DST_PORT + 1]]),
        payload_len,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DNS_QUERY_HDR: [u8; 12] = [0xd4, 0x31, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4];

    #[test]
    fn header() {
        let u = parse(&DNS_QUERY_HDR, 12).unwrap();
        assert_eq!((u.src_port, u.dst_port, u.payload_len), (54321, 53, 4));
        assert_eq!(u.payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn truncated_payload_is_bounded() {
        let u = parse(&DNS_QUERY_HDR[..10], 12).unwrap();
        assert_eq!(u.payload_len, 4);
        assert_eq!(u.payload, &[1, 2]);
    }

    #[test]
    fn malformed() {
        assert_eq!(
            parse(&DNS_QUERY_HDR[..7], 12).unwrap_err(),
            Malformed::truncated(Layer::Udp)
        );
        let mut bad = DNS_QUERY_HDR;
        bad[5] = 4; // length shorter than the header
        assert_eq!(parse(&bad, 12).unwrap_err(), Malformed::invalid(Layer::Udp));
        bad[4] = 0x10; // length beyond the IP datagram
        assert_eq!(parse(&bad, 12).unwrap_err(), Malformed::invalid(Layer::Udp));
    }
}
