//! ICMP and ICMPv6: type, code and the payload length (what tunnels inflate).

use super::{Layer, Malformed};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    /// Type, code, checksum and the 4-byte rest-of-header.
    pub const HEADER_LEN: usize = 8;
}

/// ICMPv4 types.
pub mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
}

/// ICMPv6 types.
pub mod v6 {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
}

/// An ICMP message: version, type, code, and payload bytes after the 8-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp {
    pub v6: bool,
    pub kind: u8,
    pub code: u8,
    pub payload_len: u32,
}

impl Icmp {
    pub fn is_echo_request(&self) -> bool {
        self.kind
            == if self.v6 {
                v6::ECHO_REQUEST
            } else {
                v4::ECHO_REQUEST
            }
    }
    pub fn is_unreachable(&self) -> bool {
        self.kind
            == if self.v6 {
                v6::DEST_UNREACHABLE
            } else {
                v4::DEST_UNREACHABLE
            }
    }
}

/// Parses an ICMP (`v6` false) or ICMPv6 header of a message `wire_len` bytes long.
pub fn parse(d: &[u8], wire_len: u32, v6: bool) -> Result<Icmp, Malformed> {
    if d.len() < 2 {
        return Err(Malformed::truncated(Layer::Icmp));
    }
    Ok(Icmp {
        v6,
        kind: d[field::TYPE],
        code: d[field::CODE],
        payload_len: wire_len.saturating_sub(field::HEADER_LEN as u32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo() {
        let msg = [8u8, 0, 0xf7, 0xff, 0, 1, 0, 1, b'x', b'y'];
        let i = parse(&msg, 10, false).unwrap();
        assert!(i.is_echo_request());
        assert_eq!(i.payload_len, 2);
        let i6 = parse(&[1, 4], 56, true).unwrap();
        assert!(i6.is_unreachable() && i6.v6);
        assert_eq!(i6.payload_len, 48);
        assert_eq!(
            parse(&msg[..1], 10, false).unwrap_err(),
            Malformed::truncated(Layer::Icmp)
        );
    }
}
