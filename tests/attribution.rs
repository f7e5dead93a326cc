//! Attribution an attacker cannot steer (issue 11), end to end: what the traffic says must
//! never decide who is watched. A property test drives the real parser, device table and
//! windows with random frame sequences from one station; a synthesized scan from a LAN
//! station with a public address, with bit-flipped copies of its frames, goes through
//! `iotad replay` with the built-in model. (The table-level cases, forwarding
//! man-in-the-middle, router replaced, DHCP corroboration and the 2,000-MAC flood, are unit
//! tests in `src/device/mod.rs`.)

mod common;
#[path = "common/sequence.rs"]
mod sequence;

use std::collections::BTreeMap;
use std::path::Path;

use iotad::capture::{LinkType, Packet};
use iotad::config::PipelineConfig;
use iotad::device::DeviceId;
use iotad::pipeline::Pipeline;
use proptest::prelude::*;
use sequence::{ROUTER, V, W};

/// Runs `steps` through `p`; returns, per device slot, the windows closed for it (start ns)
/// and whether one was closed as its last (the device stopped being one).
fn drive(
    p: &mut Pipeline,
    steps: &[sequence::Step],
    windows: &mut BTreeMap<DeviceId, Vec<u64>>,
    last: &mut Vec<DeviceId>,
) {
    for s in steps {
        let pkt = Packet {
            ts_ns: s.ts_ns,
            data: &s.frame,
            wire_len: s.frame.len() as u32,
        };
        p.packet(LinkType::Ethernet, &pkt, &mut |w| {
            if w.last {
                last.push(w.closed.device);
            } else {
                windows
                    .entry(w.closed.device)
                    .or_default()
                    .push(w.closed.start_ns);
            }
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// No sequence of frames from one station, damaged or not, makes another device stop
    /// being watched (retired, evicted, forgotten, its windows interrupted), takes the router
    /// away, or makes the station itself a router.
    #[test]
    fn no_sequence_from_one_station_stops_another_device_being_watched(
        data in prop::collection::vec(any::<u8>(), 0..8 * 96)
    ) {
        let mut p = Pipeline::new(&PipelineConfig::default()).unwrap();
        let (mut windows, mut last) = (BTreeMap::new(), Vec::new());
        drive(&mut p, &sequence::setup(), &mut windows, &mut last);
        prop_assert_eq!(p.table().gateways(), &[ROUTER.mac]);
        // the router's own slot closed as its last during the set-up: not a device's
        windows.clear();
        last.clear();
        let ids: Vec<DeviceId> = [V, W]
            .iter()
            .map(|d| {
                let (id, dev) = p.table().devices().find(|(_, x)| x.mac == d.mac).unwrap();
                assert!(dev.confirmed());
                id
            })
            .collect();
        let steps = sequence::decode(&data, sequence::after_setup(), |_| sequence::A.mac, true);
        drive(&mut p, &steps, &mut windows, &mut last);
        p.finish(&mut |w| {
            windows.entry(w.closed.device).or_default().push(w.closed.start_ns);
        });
        let t = p.table();
        prop_assert!(t.gateways().contains(&ROUTER.mac), "{:?}", t.gateways());
        prop_assert!(!t.gateways().contains(&sequence::A.mac), "the attacker made itself a router");
        for (d, id) in [V, W].iter().zip(&ids) {
            let now = t.devices().find(|(_, x)| x.mac == d.mac).map(|(i, _)| i);
            prop_assert_eq!(now, Some(*id), "{} left its slot", d.mac);
            prop_assert!(!last.contains(id));
            // a window closed for it every window from the first to the end: none lost
            let w = &windows[id];
            let len = p.windows().len_ns();
            for pair in w.windows(2) {
                prop_assert_eq!(pair[1] - pair[0], len, "{} lost windows", d.mac);
            }
        }
    }
}

/// Rewrites every IPv4 address `from` in an Ethernet/IPv4 frame to `to`, with a zero header
/// checksum (what a sender's capture with checksum offload shows, which is no damage).
fn readdress(frame: &mut [u8], from: [u8; 4], to: [u8; 4]) -> bool {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return false;
    }
    let mut hit = false;
    for at in [26, 30] {
        if frame[at..at + 4] == from {
            frame[at..at + 4].copy_from_slice(&to);
            hit = true;
        }
    }
    if hit {
        frame[24..26].copy_from_slice(&[0, 0]);
    }
    hit
}

const SCANNER: &str = "02:10:00:00:00:00";

/// A LAN station with a public address (45.1.1.1) scans the LAN, and some of its frames arrive
/// twice more, damaged: a bit flipped in an IP address (the header checksum no longer adds
/// up) or in the source MAC (a station that never existed, one frame each). The scan is
/// alerted on the scanner, the router stays the only router, nobody else is taken for one,
/// and no phantom device is left.
#[test]
fn a_public_address_scanner_with_damaged_frames_is_alerted_and_leaves_no_phantoms() {
    let dir = common::scratch("attribution-scan");
    let clean = dir.join("clean.pcap");
    // the scan from 70 s to 90 s; a phantom is forgotten a minute after its one frame, and
    // the capture runs long enough for that
    common::synth(&clean, 5, 200, 3, &[&format!("portscan@70+20:{SCANNER}")]);
    let mut cap = pcap::Capture::from_file(&clean).unwrap();
    let scanner_mac = [0x02, 0x10, 0, 0, 0, 0];
    let mut frames: Vec<(libc::timeval, Vec<u8>)> = Vec::new();
    let mut own_ip = None;
    while let Ok(p) = cap.next_packet() {
        let f = p.data.to_vec();
        // its address: the source of its first IPv4 frame not from 0.0.0.0 (DHCP)
        if own_ip.is_none() && f[6..12] == scanner_mac && f[12..14] == [8, 0] && f[26] != 0 {
            own_ip = Some([f[26], f[27], f[28], f[29]]);
        }
        frames.push((p.header.ts, f));
    }
    let own_ip = own_ip.expect("the scanner sends IPv4");
    let public = [45, 1, 1, 1];
    let (mut flipped_ip, mut flipped_mac) = (0, 0);
    let mut out = Vec::new();
    for (ts, mut f) in frames {
        readdress(&mut f, own_ip, public);
        let from_scanner = f[6..12] == scanner_mac && f[12..14] == [8, 0];
        let in_scan = (1_704_067_200 + 70..1_704_067_200 + 90).contains(&ts.tv_sec);
        out.push((ts, f.clone()));
        if from_scanner && in_scan && out.len() % 7 == 0 {
            let mut d = f.clone();
            d[24..26].copy_from_slice(&[0x12, 0x34]); // a checksum that was there
            d[29] ^= 0x04; // 45.1.1.5: a flipped bit in the source address
            out.push((ts, d));
            flipped_ip += 1;
            if flipped_mac < 24 {
                let mut d = f;
                d[9 + flipped_mac / 8] ^= 1 << (flipped_mac % 8);
                out.push((ts, d));
                flipped_mac += 1;
            }
        }
    }
    assert!(
        flipped_ip > 20 && flipped_mac == 24,
        "{flipped_ip} {flipped_mac}"
    );
    let pcap_path = dir.join("damaged.pcap");
    write(&pcap_path, &out);
    let args = ["replay", common::s(&pcap_path), "--learning-windows", "6"];
    // the events from --json, the gateways and device table from the text for people
    let text = common::ok(&args);
    let events: Vec<serde_json::Value> = common::ok(&[&args[..], &["--json"]].concat())
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e.get("kind").is_some())
        .collect();
    assert!(
        events.iter().any(|e| e["kind"] == "anomaly"
            && e["phase"] == "open"
            && e["device"]["mac"] == SCANNER),
        "the scan is alerted: {events:?}"
    );
    // devices answering the public address send to the scanner for it, and it speaks ARP
    // from a LAN address of its own: still no forwarding (it passes nothing on), so neither
    // a new router nor a changed next hop
    let odd: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "gateway-change" || e["kind"] == "next-hop-change")
        .collect();
    assert!(odd.is_empty(), "{odd:?}");
    let gateways = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("gateways: "))
        .unwrap();
    assert_eq!(gateways, "02:1a:11:00:00:01", "{text}");
    let devices: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  02:"))
        .collect();
    assert_eq!(devices.len(), 3, "no phantom device: {text}");
    assert!(
        text.contains(&format!("  {SCANNER}  ")),
        "the scanner is a watched device: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn write(path: &Path, frames: &[(libc::timeval, Vec<u8>)]) {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
    let mut file = dead.savefile(path).unwrap();
    for (ts, data) in frames {
        let header = pcap::PacketHeader {
            ts: *ts,
            caplen: data.len() as u32,
            len: data.len() as u32,
        };
        file.write(&pcap::Packet::new(&header, data));
    }
    file.flush().unwrap();
}
