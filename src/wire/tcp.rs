//! TCP header fields the features need: ports, flags, header length.
//!
//! Only the first 14 bytes are required (ports, sequence numbers, data offset, flags), so a
//! SYN whose options were cut off by a short snapshot length still yields its flags.

use super::{Layer, Malformed};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    /// Bytes needed to read everything above.
    pub const MIN_READ: usize = 14;
}

/// Flag bits of byte 13.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// A TCP segment's ports and flags and the length of its payload on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcp {
    pub src_port: u16,
    pub dst_port: u16,
    pub flags: u8,
    pub payload_len: u32,
}

impl Tcp {
    /// A connection attempt: SYN without ACK.
    pub fn is_syn(&self) -> bool {
        self.flags & (flags::SYN | flags::ACK) == flags::SYN
    }
    /// The answer to a connection attempt: SYN with ACK.
    pub fn is_syn_ack(&self) -> bool {
        self.flags & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK
    }
    pub fn is_rst(&self) -> bool {
        self.flags & flags::RST != 0
    }
    pub fn is_fin(&self) -> bool {
        self.flags & flags::FIN != 0
    }
}

/// Parses the captured start of a TCP segment whose full length (header and payload) on the
/// wire is `wire_len`, as the IP header declares it.
pub fn parse(d: &[u8], wire_len: u32) -> Result<Tcp, Malformed> {
    if d.len() < field::MIN_READ {
        return Err(Malformed::truncated(Layer::Tcp));
    }
    let header_len = u32::from(d[field::DATA_OFFSET] >> 4) * 4;
    if header_len < 20 {
        return Err(Malformed::invalid(Layer::Tcp));
    }
    Ok(Tcp {
        src_port: u16::from_be_bytes([d[field::SRC_PORT], d[field::SRC_PORT + 1]]),
        dst_port: u16::from_be_bytes([d[field::DST_PORT], d[field::DST_PORT + 1]]),
        flags: d[field::FLAGS],
        payload_len: wire_len.saturating_sub(header_len),
    })
}

/// The captured part of the payload of a segment that [`parse`] accepted (empty when the
/// capture ends within the header).
pub fn captured_payload(d: &[u8]) -> &[u8] {
    let header_len = d
        .get(field::DATA_OFFSET)
        .map_or(usize::MAX, |b| usize::from(b >> 4) * 4);
    d.get(header_len..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    // 49152 -> 22, SYN, data offset 10 (40-byte header with options), options cut off.
    const SYN_CUT: [u8; 20] = [
        0xc0, 0x00, 0x00, 0x16, 0, 0, 0, 1, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
    ];

    #[test]
    fn syn_with_cut_options() {
        let t = parse(&SYN_CUT, 40).unwrap();
        assert_eq!((t.src_port, t.dst_port), (49152, 22));
        assert!(t.is_syn() && !t.is_syn_ack() && !t.is_rst());
        assert_eq!(t.payload_len, 0);
    }

    #[test]
    fn payload_from_declared_length() {
        let mut seg = SYN_CUT;
        seg[12] = 0x50; // 20-byte header
        seg[13] = flags::ACK | flags::PSH;
        let t = parse(&seg, 20 + 1000).unwrap();
        assert_eq!(t.payload_len, 1000);
        assert!(!t.is_syn());
    }

    #[test]
    fn malformed() {
        assert_eq!(
            parse(&SYN_CUT[..13], 40).unwrap_err(),
            Malformed::truncated(Layer::Tcp)
        );
        let mut bad = SYN_CUT;
        bad[12] = 0x40; // data offset 4 words: shorter than a header
        assert_eq!(parse(&bad, 40).unwrap_err(), Malformed::invalid(Layer::Tcp));
    }
}
