//! DNS and mDNS messages (RFC 1035, RFC 6762): what a query asks and how a response ends.
//!
//! Reads the header and the first question without allocating: the name's text length, the
//! Shannon entropy of its characters (tunnels encode data in labels, which pushes both up), a
//! hash of the lower-cased name (for counting distinct names), the query type and the
//! response code. For mDNS, [`host_name`] finds the name a device announces for itself.
//! Names are walked with a hop limit, so compression loops cannot hang the parser.

use super::{Layer, Malformed};

mod field {
    use std::ops::Range;
    pub const FLAGS: Range<usize> = 2..4;
    pub const QDCOUNT: Range<usize> = 4..6;
    pub const ANCOUNT: Range<usize> = 6..8;
    pub const HEADER_LEN: usize = 12;
}

/// The longest name the protocol allows, in bytes of text.
const MAX_NAME: usize = 255;
/// Compression pointers followed before the name is called malformed.
const MAX_HOPS: usize = 16;

pub const RCODE_NXDOMAIN: u8 = 3;

/// Query types.
pub mod qtype {
    pub const A: u16 = 1;
    pub const PTR: u16 = 12;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const SVCB: u16 = 64;
    pub const HTTPS: u16 = 65;
}

/// Statistics of one domain name, computed while walking its labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NameStats {
    /// Length of the dotted text form, without the trailing dot.
    pub len: u16,
    /// Number of labels.
    pub labels: u8,
    /// Shannon entropy of the label characters, bits per character.
    pub entropy: f32,
    /// FNV-1a hash of the lower-cased name.
    pub hash: u64,
}

/// What one DNS message says, as far as the features care.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dns {
    pub response: bool,
    pub rcode: u8,
    pub questions: u16,
    pub answers: u16,
    /// Type and name of the first question, if there is one.
    pub qtype: Option<u16>,
    pub name: Option<NameStats>,
}

impl Dns {
    /// Query types ordinary devices ask for; anything else (TXT, NULL, CNAME, MX, ANY...) is
    /// what tunnels and reconnaissance use.
    pub fn is_unusual_query(&self) -> bool {
        !matches!(
            self.qtype,
            None | Some(
                qtype::A | qtype::AAAA | qtype::PTR | qtype::SRV | qtype::SVCB | qtype::HTTPS
            )
        )
    }
}

fn be16(d: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([d[r.start], d[r.start + 1]])
}

/// Walks the name at `at`, calling `visit` with each label; returns the offset just after
/// the name where it is stored (after the first pointer, if any).
fn walk_name(msg: &[u8], mut at: usize, mut visit: impl FnMut(&[u8])) -> Result<usize, Malformed> {
    let mut end = None;
    let mut hops = 0;
    let mut text = 0usize;
    loop {
        let len = *msg.get(at).ok_or(Malformed::truncated(Layer::Dns))? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok(end.unwrap_or(at + 1)),
            0x00 => {
                let label = msg
                    .get(at + 1..at + 1 + len)
                    .ok_or(Malformed::truncated(Layer::Dns))?;
                text += len + 1;
                if text > MAX_NAME + 1 {
                    return Err(Malformed::invalid(Layer::Dns));
                }
                visit(label);
                at += 1 + len;
            }
            0xc0 => {
                let lo = *msg.get(at + 1).ok_or(Malformed::truncated(Layer::Dns))? as usize;
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(Malformed::invalid(Layer::Dns));
                }
                end.get_or_insert(at + 2);
                at = ((len & 0x3f) << 8) | lo;
            }
            _ => return Err(Malformed::invalid(Layer::Dns)),
        }
    }
}

/// Computes [`NameStats`] of the name at `at`, and the offset after it.
pub fn name_stats(msg: &[u8], at: usize) -> Result<(NameStats, usize), Malformed> {
    let mut hist = [0u8; 256];
    let mut chars = 0u32;
    let mut labels = 0u8;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let end = walk_name(msg, at, |label| {
        labels = labels.saturating_add(1);
        for &b in label {
            let b = b.to_ascii_lowercase();
            hist[b as usize] = hist[b as usize].saturating_add(1);
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        hash = (hash ^ u64::from(b'.')).wrapping_mul(0x0100_0000_01b3);
        chars += label.len() as u32;
    })?;
    let mut entropy = 0f32;
    if chars > 0 {
        let n = chars as f32;
        for &c in hist.iter().filter(|&&c| c > 0) {
            let p = f32::from(c) / n;
            entropy -= p * p.log2();
        }
    }
    let len = (chars + u32::from(labels).saturating_sub(1)) as u16;
    Ok((
        NameStats {
            len,
            labels,
            entropy,
            hash,
        },
        end,
    ))
}

/// Parses a DNS message's header and first question.
pub fn parse(msg: &[u8]) -> Result<Dns, Malformed> {
    if msg.len() < field::HEADER_LEN {
        return Err(Malformed::truncated(Layer::Dns));
    }
    let flags = be16(msg, field::FLAGS);
    let questions = be16(msg, field::QDCOUNT);
    let mut dns = Dns {
        response: flags & 0x8000 != 0,
        rcode: (flags & 0x000f) as u8,
        questions,
        answers: be16(msg, field::ANCOUNT),
        qtype: None,
        name: None,
    };
    if questions > 0 {
        let (stats, end) = name_stats(msg, field::HEADER_LEN)?;
        let t = msg
            .get(end..end + 2)
            .ok_or(Malformed::truncated(Layer::Dns))?;
        dns.qtype = Some(u16::from_be_bytes([t[0], t[1]]));
        dns.name = Some(stats);
    }
    Ok(dns)
}

/// Copies the name at `at` into `out` in dotted text form, replacing anything that is not a
/// printable ASCII character with `?`, truncating when `out` is full.
pub fn write_name<const N: usize>(
    msg: &[u8],
    at: usize,
    out: &mut heapless::String<N>,
) -> Result<(), Malformed> {
    out.clear();
    walk_name(msg, at, |label| {
        if !out.is_empty() {
            let _ = out.push('.');
        }
        for &b in label {
            let c = if b.is_ascii_graphic() { b as char } else { '?' };
            if out.push(c).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}

/// In an mDNS response, the offset of the owner name of the first A or AAAA record: the host
/// name a device announces (e.g. `living-room-speaker.local`).
pub fn host_name(msg: &[u8]) -> Result<Option<usize>, Malformed> {
    if msg.len() < field::HEADER_LEN {
        return Err(Malformed::truncated(Layer::Dns));
    }
    let mut at = field::HEADER_LEN;
    for _ in 0..be16(msg, field::QDCOUNT) {
        at = walk_name(msg, at, |_| {})? + 4;
    }
    for _ in 0..be16(msg, field::ANCOUNT) {
        let owner = at;
        at = walk_name(msg, at, |_| {})?;
        let fixed = msg
            .get(at..at + 10)
            .ok_or(Malformed::truncated(Layer::Dns))?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        if rtype == qtype::A || rtype == qtype::AAAA {
            return Ok(Some(owner));
        }
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        at += 10 + rdlen;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Query for "a1b2.example.com", type TXT.
    const QUERY: [u8; 34] = [
        0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, //
        4, b'a', b'1', b'b', b'2', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o',
        b'm', 0, //
        0, 16, 0, 1,
    ];

    #[test]
    fn query() {
        let d = parse(&QUERY).unwrap();
        assert!(!d.response);
        assert_eq!(d.qtype, Some(16));
        assert!(d.is_unusual_query());
        let n = d.name.unwrap();
        assert_eq!(n.len, 16);
        assert_eq!(n.labels, 3);
        // 14 characters: a,1,b,2,e,x,a,m,p,l,e,c,o,m: 'a', 'e', 'm' twice, 8 others once
        let expect = -(3.0 * (2.0f32 / 14.0) * (2.0f32 / 14.0).log2()
            + 8.0 * (1.0f32 / 14.0) * (1.0f32 / 14.0).log2());
        assert!(
            (n.entropy - expect).abs() < 1e-5,
            "{} vs {expect}",
            n.entropy
        );
    }

    #[test]
    fn nxdomain_response_and_case() {
        let mut r = QUERY;
        r[2] = 0x81;
        r[3] = 0x83; // QR, RD, RA, NXDOMAIN
        r[13] = b'A'; // upper case hashes the same
        let d = parse(&r).unwrap();
        assert!(d.response);
        assert_eq!(d.rcode, RCODE_NXDOMAIN);
        assert_eq!(
            d.name.unwrap().hash,
            parse(&QUERY).unwrap().name.unwrap().hash
        );
    }

    #[test]
    fn truncated_and_looping() {
        for cut in 0..QUERY.len() - 2 {
            assert!(parse(&QUERY[..cut]).is_err(), "cut at {cut}");
        }
        // a pointer to itself
        let looping = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert_eq!(parse(&looping).unwrap_err(), Malformed::invalid(Layer::Dns));
        // reserved label type 0x40
        let reserved = [
            0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, b'a', 0, 0, 1, 0, 1,
        ];
        assert_eq!(
            parse(&reserved).unwrap_err(),
            Malformed::invalid(Layer::Dns)
        );
    }

    #[test]
    fn overlong_name() {
        let mut m = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'x'; 63]);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse(&m).unwrap_err(), Malformed::invalid(Layer::Dns));
    }

    #[test]
    fn mdns_host_name() {
        // response: no question; answer 1 PTR (skipped), answer 2 A with a compressed owner
        let msg: Vec<u8> = [
            &[0u8, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0][..],
            &[
                4, b'_', b'h', b'a', b'p', 4, b'_', b't', b'c', b'p', 5, b'l', b'o', b'c', b'a',
                b'l', 0,
            ][..],
            &[0, 12, 0, 1, 0, 0, 0, 120, 0, 2, 0xc0, 12][..],
            &[4, b'h', b'u', b'b', 0x07, 0xc0, 22][..],
            &[0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, 192, 168, 1, 5][..],
        ]
        .concat();
        let at = host_name(&msg).unwrap().unwrap();
        let mut s = heapless::String::<64>::new();
        write_name(&msg, at, &mut s).unwrap();
        assert_eq!(s.as_str(), "hub?.local");
        let mut small = heapless::String::<4>::new();
        write_name(&msg, at, &mut small).unwrap();
        assert_eq!(small.as_str(), "hub?");
    }
}
