//! Capture files as they come: every link type we read, pcapng, standard input, BPF
//! filters, and the damaged or wrong ones, which must fail clearly after keeping every packet
//! before the damage. Captures are written here with libpcap (pcapng by hand: libpcap does
//! not write it).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::{iotad, ok, run, s, scratch};

/// Reads every (timestamp ns, frame) of an Ethernet capture with libpcap.
fn read_frames(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let mut cap = pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano).unwrap();
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        let ns = p.header.ts.tv_sec as u64 * 1_000_000_000 + p.header.ts.tv_usec as u64;
        out.push((ns, p.data.to_vec()));
    }
    out
}

/// Writes frames with libpcap under the given link type.
fn write_frames(path: &Path, dlt: i32, frames: &[(u64, Vec<u8>)]) {
    let dead =
        pcap::Capture::dead_with_precision(pcap::Linktype(dlt), pcap::Precision::Nano).unwrap();
    let mut file = dead.savefile(path).unwrap();
    for (ts, data) in frames {
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: (ts / 1_000_000_000) as _,
                tv_usec: (ts % 1_000_000_000) as _,
            },
            caplen: data.len() as u32,
            len: data.len() as u32,
        };
        file.write(&pcap::Packet::new(&header, data));
    }
    file.flush().unwrap();
}

/// A synthesized capture of `seconds`, and its frames.
fn synth(dir: &Path, seconds: u64) -> (std::path::PathBuf, Vec<(u64, Vec<u8>)>) {
    let p = dir.join("eth.pcap");
    common::synth(&p, 3, seconds, 6, &["portscan@30+10:02:10:00:00:00:00"]);
    let frames = read_frames(&p);
    (p, frames)
}

/// Sum of one feature column per MAC over all windows of a CSV.
fn column_sums(csv: &str, column: &str) -> std::collections::BTreeMap<String, f64> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == column).unwrap();
    let mut sums = std::collections::BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        *sums.entry(f[1].to_string()).or_insert(0.0) += f[col].parse::<f64>().unwrap();
    }
    sums
}

#[test]
fn cooked_v1_v2_and_raw_ip_captures_count_like_ethernet() {
    let dir = scratch("links");
    let (eth, frames) = synth(&dir, 120);
    let eth_csv = ok(&["features", s(&eth)]);
    let want_out = column_sums(&eth_csv, "pkts_out");
    let want_syn = column_sums(&eth_csv, "syn_out");

    // Linux cooked v1: pkttype (4 = sent by us, 0 = to us), ARPHRD_ETHER, halen 6, address
    let sll1: Vec<_> = frames
        .iter()
        .map(|(ts, f)| {
            let mut h = vec![0, 4, 0, 1, 0, 6];
            h.extend_from_slice(&f[6..12]);
            h.extend_from_slice(&[0, 0]);
            h.extend_from_slice(&f[12..]);
            (*ts, h)
        })
        .collect();
    // Linux cooked v2: protocol, reserved, ifindex, ARPHRD_ETHER, pkttype, halen, address
    let sll2: Vec<_> = frames
        .iter()
        .map(|(ts, f)| {
            let mut h = f[12..14].to_vec();
            h.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 4, 6]);
            h.extend_from_slice(&f[6..12]);
            h.extend_from_slice(&[0, 0]);
            h.extend_from_slice(&f[14..]);
            (*ts, h)
        })
        .collect();
    for (name, dlt, data) in [("sll.pcap", 113, &sll1), ("sll2.pcap", 276, &sll2)] {
        let p = dir.join(name);
        write_frames(&p, dlt, data);
        let csv = ok(&["features", s(&p)]);
        let out = column_sums(&csv, "pkts_out");
        for (mac, n) in &want_out {
            assert_eq!(out.get(mac), Some(n), "{name}: packets sent by {mac}");
        }
        assert_eq!(column_sums(&csv, "syn_out"), want_syn, "{name}");
    }

    // raw IP: IPv4 packets only, devices keyed by a MAC derived from their address
    let raw: Vec<_> = frames
        .iter()
        .filter(|(_, f)| f[12..14] == [8, 0])
        .map(|(ts, f)| (*ts, f[14..].to_vec()))
        .collect();
    let p = dir.join("raw.pcap");
    write_frames(&p, 12, &raw); // DLT_RAW, which libpcap writes as LINKTYPE_RAW (101)
    let csv = ok(&["features", s(&p)]);
    let syn = column_sums(&csv, "syn_out");
    // the scanner 192.168.1.12 is 02:00:c0:a8:01:0c
    assert_eq!(
        syn.get("02:00:c0:a8:01:0c"),
        want_syn.get("02:10:00:00:00:00")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A minimal pcapng: section header, one Ethernet interface (ns timestamps), packet blocks.
fn write_pcapng(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let mut b = Vec::new();
    let block = |b: &mut Vec<u8>, kind: u32, body: &[u8]| {
        let len = 12 + body.len().div_ceil(4) * 4;
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(body);
        b.resize(b.len() + (len - 12 - body.len()), 0);
        b.extend_from_slice(&(len as u32).to_le_bytes());
    };
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut b, 0x0a0d_0d0a, &shb);
    // link type 1, snaplen 65535, option if_tsresol = 9 (nanoseconds), end of options
    let idb = [
        1, 0, 0, 0, 0xff, 0xff, 0, 0, 9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0,
    ];
    block(&mut b, 1, &idb);
    for (ts, f) in frames {
        let mut epb = vec![0, 0, 0, 0];
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(*ts as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(f);
        epb.resize(20 + f.len().div_ceil(4) * 4, 0);
        block(&mut b, 6, &epb);
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn pcapng_and_stdin_give_the_same_windows() {
    let dir = scratch("pcapng");
    let (eth, frames) = synth(&dir, 60);
    let want = ok(&["features", s(&eth)]);
    let strip = |csv: &str| {
        csv.lines()
            .map(|l| l.split_once(',').unwrap().1.to_string())
            .collect::<Vec<_>>()
    };
    let ng = dir.join("eth.pcapng");
    write_pcapng(&ng, &frames);
    assert_eq!(strip(&ok(&["features", s(&ng)])), strip(&want), "pcapng");

    let mut child = iotad()
        .args(["features", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&eth).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let got = String::from_utf8(out.stdout).unwrap();
    assert!(
        got.lines().nth(1).unwrap().starts_with("-,"),
        "capture column names stdin"
    );
    assert_eq!(strip(&got), strip(&want), "stdin");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_capture_keeps_what_came_before_and_fails() {
    let dir = scratch("truncated");
    let (eth, frames) = synth(&dir, 60);
    let bytes = std::fs::read(&eth).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap(); // into the last packet
    let out = run(&["features", s(&cut), "--stats"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let whole = frames.len() - 1;
    assert!(err.contains(&format!("damaged at packet {whole}")), "{err}");
    assert!(err.contains(&format!("{whole} packets")), "{err}");
    let rows = String::from_utf8(out.stdout).unwrap().lines().count();
    let full_rows = ok(&["features", s(&eth)]).lines().count();
    assert_eq!(rows, full_rows, "every window up to the damage is written");

    // a record header in the middle claiming a huge capture length
    let mut bad = bytes.clone();
    let mut at = 24;
    for _ in 0..100 {
        let caplen = u32::from_le_bytes(bad[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    bad[at + 8..at + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let mid = dir.join("mid.pcap");
    std::fs::write(&mid, &bad).unwrap();
    let out = run(&["features", s(&mid), "--stats"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged at packet 100"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_inputs_are_clear_errors() {
    let dir = scratch("wrong");
    let wifi = dir.join("wifi.pcap");
    write_frames(&wifi, 105, &[(1, vec![0u8; 40])]);
    let err = String::from_utf8(run(&["features", s(&wifi)]).stderr).unwrap();
    assert!(
        err.contains("unsupported link type IEEE802_11 (DLT 105)"),
        "{err}"
    );

    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a capture\n").unwrap();
    let out = run(&["replay", s(&text)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot open capture"),
        "{:?}",
        out
    );

    let out = run(&["features", s(&dir.join("missing.pcap"))]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pcap"));

    let (eth, _) = synth(&dir, 30);
    let cfg = dir.join("bad.json");
    std::fs::write(&cfg, r#"{"pipeline": {"window_secs": 10, "gatewys": []}}"#).unwrap();
    let err = String::from_utf8(run(&["features", s(&eth), "--config", s(&cfg)]).stderr).unwrap();
    assert!(
        err.contains("unknown field `gatewys`") && err.contains("bad.json"),
        "{err}"
    );
    std::fs::write(&cfg, r#"{"window_secs": "#).unwrap();
    assert!(!run(&["features", s(&eth), "--config", s(&cfg)])
        .status
        .success());
    let err = String::from_utf8(run(&["features", s(&eth), "--gateway", "router"]).stderr).unwrap();
    assert!(err.contains("not a MAC address"), "{err}");

    let err =
        String::from_utf8(run(&["features", s(&eth), "--filter", "tcp port"]).stderr).unwrap();
    assert!(err.contains("invalid BPF filter"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bpf_filter_and_window_length_apply() {
    let dir = scratch("filter");
    let (eth, _) = synth(&dir, 120);
    let arp_only = ok(&["features", s(&eth), "--filter", "arp"]);
    assert_eq!(column_sums(&arp_only, "tcp_out").values().sum::<f64>(), 0.0);
    assert!(column_sums(&arp_only, "arp_out").values().sum::<f64>() > 0.0);
    let ten = ok(&["features", s(&eth)]);
    let sixty = ok(&["features", s(&eth), "--window-secs", "60"]);
    assert!(sixty.lines().count() < ten.lines().count() / 4);
    assert_eq!(
        column_sums(&sixty, "pkts_out"),
        column_sums(&ten, "pkts_out"),
        "longer windows, same packets"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
