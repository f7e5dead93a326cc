//! DHCP (RFC 2131) messages: the host name (option 12) and vendor class (option 60) a
//! device gives itself, the message type (option 53), and in a server's reply the router it
//! hands out (option 3), which corroborates router detection.

use super::ethernet::Mac;
use super::{Layer, Malformed};

mod field {
    use std::ops::Range;
    pub const OP: usize = 0;
    pub const HLEN: usize = 2;
    pub const CHADDR: Range<usize> = 28..34;
    pub const COOKIE: Range<usize> = 236..240;
    pub const OPTIONS: usize = 240;
}

const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

mod option {
    pub const PAD: u8 = 0;
    pub const ROUTER: u8 = 3;
    pub const HOST_NAME: u8 = 12;
    pub const REQUESTED_IP: u8 = 50;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const VENDOR_CLASS: u8 = 60;
    pub const END: u8 = 255;
}

/// BOOTP op: a client's request.
pub const BOOTREQUEST: u8 = 1;
/// BOOTP op: a server's reply (offer, ack).
pub const BOOTREPLY: u8 = 2;

/// What a DHCP message says about its client. Byte strings are borrowed from the packet and
/// untrusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dhcp<'a> {
    pub op: u8,
    pub message_type: Option<u8>,
    pub client_mac: Mac,
    pub host_name: Option<&'a [u8]>,
    pub vendor_class: Option<&'a [u8]>,
    pub requested_ip: Option<[u8; 4]>,
    /// The options as read (up to END or the end of the captured bytes), for options that
    /// come in several instances.
    pub options: &'a [u8],
    /// Option 3: the first router a server's reply names.
    pub router: Option<[u8; 4]>,
}

impl<'a> Dhcp<'a> {
    /// Every instance of the host-name option, in order: a long name is split over several
    /// and they are to be joined (RFC 3396); `host_name` is the last alone.
    pub fn host_name_parts(&self) -> impl Iterator<Item = &'a [u8]> + Clone {
        let d = self.options;
        let mut at = 0;
        std::iter::from_fn(move || loop {
            let &code = d.get(at)?;
            match code {
                option::END => return None,
                option::PAD => at += 1,
                _ => {
                    let len = *d.get(at + 1)? as usize;
                    let value = d.get(at + 2..at + 2 + len)?;
                    at += 2 + len;
                    if code == option::HOST_NAME {
                        return Some(value);
                    }
                }
            }
        })
    }
}

/// Parses a DHCP message. Options are read until END or the end of the captured bytes; an
/// option that runs past the end is malformed.
pub fn parse(d: &[u8]) -> Result<Dhcp<'_>, Malformed> {
    if d.len() < field::OPTIONS {
        return Err(Malformed::truncated(Layer::Dhcp));
    }
    if d[field::COOKIE] != MAGIC_COOKIE || d[field::HLEN] != 6 {
        return Err(Malformed::invalid(Layer::Dhcp));
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&d[field::CHADDR]);
    let mut out = Dhcp {
        op: d[field::OP],
        message_type: None,
        client_mac: Mac(mac),
        host_name: None,
        vendor_class: None,
        requested_ip: None,
        options: &[],
        router: None,
    };
    let mut at = field::OPTIONS;
    while let Some(&code) = d.get(at) {
        match code {
            option::END => break,
            option::PAD => at += 1,
            _ => {
                let len = *d.get(at + 1).ok_or(Malformed::truncated(Layer::Dhcp))? as usize;
                let value = d
                    .get(at + 2..at + 2 + len)
                    .ok_or(Malformed::truncated(Layer::Dhcp))?;
                match code {
                    option::HOST_NAME => out.host_name = Some(value),
                    option::VENDOR_CLASS => out.vendor_class = Some(value),
                    option::MESSAGE_TYPE => out.message_type = value.first().copied(),
                    option::REQUESTED_IP if len == 4 => {
                        out.requested_ip = Some([value[0], value[1], value[2], value[3]])
                    }
                    option::ROUTER if len >= 4 => {
                        out.router = Some([value[0], value[1], value[2], value[3]])
                    }
                    _ => {}
                }
                at += 2 + len;
            }
        }
    }
    out.options = &d[field::OPTIONS..at.min(d.len())];
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(options: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; 240];
        m[0] = BOOTREQUEST;
        m[1] = 1;
        m[2] = 6;
        m[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 0x42]);
        m[236..240].copy_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(options);
        m
    }

    #[test]
    fn discover_with_names() {
        let m = request(&[
            53, 1, 1, 0, 12, 4, b'c', b'a', b'm', b'1', 60, 3, b'u', b'd', b'h', 50, 4, 192, 168,
            1, 9, 255,
        ]);
        let d = parse(&m).unwrap();
        assert_eq!(d.op, BOOTREQUEST);
        assert_eq!(d.message_type, Some(1));
        assert_eq!(d.client_mac, Mac([2, 0, 0, 0, 0, 0x42]));
        assert_eq!(d.host_name, Some(&b"cam1"[..]));
        assert_eq!(d.vendor_class, Some(&b"udh"[..]));
        assert_eq!(d.requested_ip, Some([192, 168, 1, 9]));
    }

    #[test]
    fn an_offer_names_the_router() {
        let mut m = request(&[53, 1, 2, 3, 8, 192, 168, 1, 1, 192, 168, 1, 2, 255]);
        m[0] = BOOTREPLY;
        let d = parse(&m).unwrap();
        assert_eq!((d.op, d.message_type), (BOOTREPLY, Some(2)));
        assert_eq!(d.router, Some([192, 168, 1, 1]), "the first router listed");
        // an option 3 too short for an address names none
        let mut m = request(&[3, 2, 10, 0, 255]);
        m[0] = BOOTREPLY;
        assert_eq!(parse(&m).unwrap().router, None);
    }

    #[test]
    fn malformed() {
        // a name split over two option 12 instances is both of them (RFC 3396)
        let m = request(&[12, 3, b'c', b'a', b'm', 53, 1, 1, 12, 2, b'-', b'1', 255]);
        let d = parse(&m).unwrap();
        let parts: Vec<&[u8]> = d.host_name_parts().collect();
        assert_eq!(parts, [&b"cam"[..], &b"-1"[..]]);
        let m = request(&[12, 10, b'x']);
        assert_eq!(parse(&m).unwrap_err(), Malformed::truncated(Layer::Dhcp));
        let mut bad = request(&[255]);
        bad[236] = 0;
        assert_eq!(parse(&bad).unwrap_err(), Malformed::invalid(Layer::Dhcp));
        assert_eq!(
            parse(&bad[..200]).unwrap_err(),
            Malformed::truncated(Layer::Dhcp)
        );
        // no END: options stop at the end of the bytes, without error
        assert_eq!(parse(&request(&[53, 1, 3])).unwrap().message_type, Some(3));
    }
}
