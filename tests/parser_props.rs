//! The parser against hostile bytes: every truncation of every kind of frame the synthesizer
//! writes, and random byte flips of them, under every link type. Nothing may panic, and what
//! parses keeps its lengths. (A coverage-guided fuzz target lives in tests/fuzz.)

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;
use iotad::capture::{LinkType, Packet};
use iotad::synth::frames;
use iotad::wire::{self, arp, Mac};
use proptest::prelude::*;

const A: Mac = Mac([2, 0, 0, 0, 0, 1]);
const B: Mac = Mac([2, 0, 0, 0, 0, 2]);

fn samples() -> Vec<Vec<u8>> {
    let (ia, ib) = (Ipv4Addr::new(192, 168, 1, 2), Ipv4Addr::new(192, 168, 1, 3));
    let mut v = vec![
        frames::tcp(A, B, ia, ib, 40000, 22, wire::tcp::flags::SYN, 1, &[]).bytes,
        frames::tcp(A, B, ia, ib, 40000, 443, 0x18, 1, &[7; 300]).bytes,
        frames::udp(
            A,
            B,
            ia,
            ib,
            5000,
            53,
            &frames::dns_query(7, "a.very.long.example.com", 16),
        )
        .bytes,
        frames::udp(
            B,
            A,
            ib,
            ia,
            53,
            5000,
            &frames::dns_response(7, "x.example", 1, None),
        )
        .bytes,
        frames::udp(
            A,
            Mac([1, 0, 0x5e, 0, 0, 0xfb]),
            ia,
            Ipv4Addr::new(224, 0, 0, 251),
            5353,
            5353,
            &frames::mdns_announce("hub", ia),
        )
        .bytes,
        frames::udp(
            A,
            Mac::BROADCAST,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            68,
            67,
            &frames::dhcp_request(A, 1, ia, "cam", "udhcp"),
        )
        .bytes,
        frames::arp(
            arp::REQUEST,
            frames::Host { mac: A, ip: ia },
            Mac::UNKNOWN,
            ib,
        )
        .bytes,
        frames::ping(A, B, ia, ib, 1, 1, &[0x61; 64]).bytes,
    ];
    // IPv6 with UDP, and an 802.1Q-tagged IPv4 TCP segment
    let mut six = Vec::new();
    PacketBuilder::ethernet2(A.0, B.0)
        .ipv6(
            [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfb],
            255,
        )
        .udp(5353, 5353)
        .write(&mut six, &frames::mdns_announce("tv", ia))
        .unwrap();
    v.push(six);
    let mut tagged = Vec::new();
    PacketBuilder::ethernet2(A.0, B.0)
        .single_vlan(100.try_into().unwrap())
        .ipv4(ia.octets(), [8, 8, 8, 8], 64)
        .tcp(1, 2, 3, 4)
        .syn()
        .write(&mut tagged, &[])
        .unwrap();
    v.push(tagged);
    v
}

/// The same frame as each link type would carry it.
fn framings(eth: &[u8]) -> Vec<(LinkType, Vec<u8>)> {
    let mut sll2 = eth[12..14].to_vec();
    sll2.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6]);
    sll2.extend_from_slice(&eth[6..12]);
    sll2.extend_from_slice(&[0, 0]);
    sll2.extend_from_slice(&eth[14..]);
    let mut sll = vec![0, 4, 0, 1, 0, 6];
    sll.extend_from_slice(&eth[6..12]);
    sll.extend_from_slice(&[0, 0]);
    sll.extend_from_slice(&eth[12..]);
    vec![
        (LinkType::Ethernet, eth.to_vec()),
        (LinkType::LinuxSll, sll),
        (LinkType::LinuxSll2, sll2),
        (LinkType::RawIp, eth[14..].to_vec()),
    ]
}

fn parse(link: LinkType, data: &[u8], wire_len: u32) {
    let pkt = Packet {
        ts_ns: 1,
        data,
        wire_len,
    };
    if let Ok(s) = wire::parse(link, &pkt) {
        assert_eq!(s.wire_len, wire_len);
        // an mDNS host name, if found, must be writable without panicking
        if let wire::App::Mdns {
            msg,
            host: Some(at),
            ..
        } = s.app
        {
            let mut name = heapless::String::<64>::new();
            let _ = wire::dns::write_name(msg, at, &mut name);
        }
    }
}

#[test]
fn every_truncation_of_every_frame() {
    let mut parsed = 0;
    for eth in samples() {
        for (link, frame) in framings(&eth) {
            for cut in 0..=frame.len() {
                parse(link, &frame[..cut], frame.len() as u32);
                parsed += 1;
            }
        }
    }
    assert!(parsed > 3000, "{parsed}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, .. ProptestConfig::default() })]

    #[test]
    fn random_flips_and_cuts(sample in 0usize..10, link in 0usize..4, flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..12), cut in any::<usize>()) {
        let samples = samples();
        let (link, mut frame) = framings(&samples[sample % samples.len()]).swap_remove(link);
        let wire_len = frame.len() as u32;
        for (at, x) in flips {
            let i = at % frame.len();
            frame[i] ^= x;
        }
        let cut = cut % (frame.len() + 1);
        parse(link, &frame[..cut], wire_len);
        parse(link, &frame, wire_len);
    }

    #[test]
    fn random_bytes(data in prop::collection::vec(any::<u8>(), 0..400), link in 0usize..4) {
        let link = [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp][link];
        parse(link, &data, data.len() as u32);
    }
}
