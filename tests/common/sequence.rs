//! Packet *sequences* decoded from bytes, for the attribution property test
//! (`tests/attribution.rs`) and the sequence fuzz target (`tests/fuzz`, which includes this
//! file by path): a small LAN set up first (a router found, two devices confirmed), then
//! whatever the bytes say, eight bytes a frame, from addresses drawn from small pools so that
//! frames collide on the same stations and addresses, as an attacker's would. Real frames,
//! parsed by the real parser.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use iotad::synth::frames::{self, Host};
use iotad::wire::{arp, Mac};

pub const ROUTER: Host = host(1);
pub const V: Host = host(9);
pub const W: Host = host(10);
/// The attacker.
pub const A: Host = host(66);
/// Start of the set-up traffic (ns).
pub const T0: u64 = 1_700_000_000_000_000_000;

const fn host(n: u8) -> Host {
    Host {
        mac: Mac([2, 0, 0, 0, 0, n]),
        ip: Ipv4Addr::new(192, 168, 1, n),
    }
}

/// Addresses a frame's IPs are drawn from: the LAN's stations, other LAN addresses, internet
/// hosts, and impossible or special ones.
const IPS: [[u8; 4]; 12] = [
    [192, 168, 1, 1],
    [192, 168, 1, 9],
    [192, 168, 1, 10],
    [192, 168, 1, 66],
    [192, 168, 1, 2],
    [52, 1, 2, 3],
    [52, 1, 2, 4],
    [45, 1, 1, 1],
    [8, 8, 8, 8],
    [0, 0, 0, 0],
    [255, 255, 255, 255],
    [224, 0, 0, 251],
];

/// MACs a frame is addressed to.
const DSTS: [Mac; 8] = [
    ROUTER.mac,
    V.mac,
    W.mac,
    A.mac,
    Mac::BROADCAST,
    Mac([1, 0, 0x5e, 0, 0, 0xfb]),
    Mac([2, 0, 0, 0, 0, 77]),
    Mac([0x33, 0x33, 0, 0, 0, 1]),
];

const PORTS: [u16; 8] = [22, 23, 53, 67, 68, 80, 443, 5353];

/// One frame of a sequence.
pub struct Step {
    pub ts_ns: u64,
    pub frame: Vec<u8>,
}

/// The LAN before the attack: V and W each talk to two internet hosts through the router
/// and get answers, and the router answers them from its LAN address, for 30 s.
pub fn setup() -> Vec<Step> {
    let mut out = Vec::new();
    let mut ts = T0;
    for round in 0..3u8 {
        for d in [V, W] {
            for far in [[52, 1, 2, 3], [52, 1, 2, 4]] {
                let far = Ipv4Addr::from(far);
                ts += 1_000_000_000;
                let f = frames::tcp(d.mac, ROUTER.mac, d.ip, far, 40000, 443, 0x18, 1, &[0; 20]);
                out.push(Step {
                    ts_ns: ts,
                    frame: f.bytes,
                });
                let f = frames::tcp(ROUTER.mac, d.mac, far, d.ip, 443, 40000, 0x18, 1, &[0; 40]);
                out.push(Step {
                    ts_ns: ts + 1000,
                    frame: f.bytes,
                });
            }
            let q = frames::dns_response(u16::from(round), "example.com", 1, None);
            let f = frames::udp(ROUTER.mac, d.mac, ROUTER.ip, d.ip, 53, 5000, &q);
            out.push(Step {
                ts_ns: ts + 2000,
                frame: f.bytes,
            });
        }
    }
    out
}

/// The next `ts` after `setup`.
pub fn after_setup() -> u64 {
    T0 + 20_000_000_000
}

/// Decodes `data`, eight bytes a frame, into frames from `sender(byte)` starting at `ts`.
/// `keep_macs`: bit flips never touch the Ethernet addresses (every frame stays the sender's).
/// Byte 7's low bit also has V and W send their usual traffic (they stay alive).
pub fn decode(data: &[u8], mut ts: u64, sender: impl Fn(u8) -> Mac, keep_macs: bool) -> Vec<Step> {
    let mut out = Vec::new();
    for (i, c) in data.chunks_exact(8).enumerate() {
        ts += u64::from(c[7] >> 1) * 500_000_000;
        let from = sender(c[0]);
        let sip: Ipv4Addr = IPS[c[1] as usize % IPS.len()].into();
        let dst = DSTS[c[2] as usize % DSTS.len()];
        let dip: Ipv4Addr = IPS[c[3] as usize % IPS.len()].into();
        let (sport, dport) = (PORTS[c[4] as usize % 8], PORTS[(c[4] >> 3) as usize % 8]);
        let mut frame = match (c[0] >> 4) % 7 {
            0 => frames::tcp(from, dst, sip, dip, sport, dport, c[5], i as u32, &[]).bytes,
            1 => frames::udp(from, dst, sip, dip, sport, dport, &[c[5]; 8]).bytes,
            2 | 3 => {
                let op = if c[0] >> 4 == 2 {
                    arp::REQUEST
                } else {
                    arp::REPLY
                };
                let claimed = Host { mac: from, ip: sip };
                let mut f = frames::arp(op, claimed, dst, dip).bytes;
                if c[5] & 1 == 1 {
                    // an ARP payload that names another station than the frame's sender
                    f[22..28].copy_from_slice(&dst.0);
                }
                f
            }
            4 => {
                let m = frames::dhcp_ack(dst, u32::from(c[5]), dip, sip);
                frames::udp(from, dst, sip, Ipv4Addr::BROADCAST, 67, 68, &m).bytes
            }
            5 => {
                let m = frames::dhcp_request(from, u32::from(c[5]), sip, "h", "v");
                frames::udp(from, Mac::BROADCAST, sip, dip, 68, 67, &m).bytes
            }
            _ => frames::ping(from, dst, sip, dip, u16::from(c[5]), i as u16, &[0; 8]).bytes,
        };
        if c[6] != 0 {
            // a flipped bit (a damaged frame), at a place the byte picks
            let lo = if keep_macs { 12 } else { 0 };
            let at = lo + (c[6] as usize * 7) % (frame.len() - lo);
            frame[at] ^= 1 << (c[6] % 8);
        }
        out.push(Step { ts_ns: ts, frame });
        if c[7] & 1 == 1 {
            for d in [V, W] {
                let far = Ipv4Addr::new(52, 1, 2, 3);
                let f = frames::tcp(d.mac, ROUTER.mac, d.ip, far, 40000, 443, 0x18, 1, &[0; 20]);
                out.push(Step {
                    ts_ns: ts,
                    frame: f.bytes,
                });
                let f = frames::tcp(ROUTER.mac, d.mac, far, d.ip, 443, 40000, 0x18, 1, &[0; 40]);
                out.push(Step {
                    ts_ns: ts,
                    frame: f.bytes,
                });
            }
        }
    }
    out
}
