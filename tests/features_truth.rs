//! `iotad features` on synthesized captures, checked against the synthesizer's own ground
//! truth (counted from what it wrote, not by parsing).

mod common;

use std::collections::BTreeMap;

use common::{ok, s, scratch, synth};
use iotad::synth::truth::Report;

type Windows = BTreeMap<(String, u64), serde_json::Map<String, serde_json::Value>>;

fn features_jsonl(text: &str) -> Windows {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let o = v.as_object().expect("an object").clone();
            let key = (
                o["mac"].as_str().unwrap().to_string(),
                o["window_start_epoch"].as_u64().unwrap(),
            );
            (key, o)
        })
        .collect()
}

/// Exact counters: the synthesizer's name for them is the feature's name.
const EXACT: &[&str] = &[
    "pkts_out",
    "pkts_in",
    "bytes_out",
    "bytes_in",
    "tcp_out",
    "syn_out",
    "synack_in",
    "rst_in",
    "udp_out",
    "icmp_out",
    "arp_out",
    "dns_queries",
    "dns_name_len_max",
    "broadcast_out",
    "multicast_out",
];

/// Distinct counts come from a fixed-size sketch: within 6 % (or 1).
const APPROX: &[&str] = &["remote_ports", "dns_names", "arp_req_targets"];

#[test]
fn features_match_the_synthesizers_ground_truth() {
    let dir = scratch("truth");
    let (pcap, truth) = (dir.join("net.pcap"), dir.join("truth.json"));
    ok(&[
        "synth",
        "--out",
        s(&pcap),
        "--seed",
        "11",
        "--duration",
        "900",
        "--devices",
        "8",
        "--attack",
        "portscan@120:02:10:00:00:00:00",
        "--attack",
        "synflood@200+20:02:10:01:00:00:01",
        "--attack",
        "telnet-brute@300:02:10:02:00:00:02",
        "--attack",
        "dns-tunnel@400:02:10:03:00:00:03",
        "--attack",
        "arp-scan@500:02:10:00:00:00:04",
        "--attack",
        "udpflood@600+10:02:10:01:00:00:05",
        "--truth",
        s(&truth),
    ]);
    let report: Report = serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    assert_eq!(report.attacks.len(), 6);
    let got = features_jsonl(&ok(&["features", s(&pcap), "--format", "jsonl"]));

    let mut checked = 0;
    for row in &report.windows {
        let key = (row.mac.clone(), row.window_start_epoch);
        let f = got
            .get(&key)
            .unwrap_or_else(|| panic!("no feature window for {key:?}"));
        let t = serde_json::to_value(&row.counts).unwrap();
        for name in EXACT {
            let (want, have) = (t[name].as_f64().unwrap(), f[*name].as_f64().unwrap());
            assert_eq!(have, want, "{name} of {key:?}");
        }
        for name in APPROX {
            let (want, have) = (t[name].as_f64().unwrap(), f[*name].as_f64().unwrap());
            assert!(
                (have - want).abs() <= (want * 0.06).max(1.0),
                "{name} of {key:?}: {have} vs {want}"
            );
        }
        checked += 1;
    }
    // every window the synthesizer did not write to is silence
    let truth_keys: std::collections::BTreeSet<_> = report
        .windows
        .iter()
        .map(|r| (r.mac.clone(), r.window_start_epoch))
        .collect();
    for (key, f) in &got {
        if !truth_keys.contains(key) {
            assert_eq!(f["pkts_out"], 0.0, "{key:?}");
            assert_eq!(f["pkts_in"], 0.0, "{key:?}");
        }
    }
    // 8 devices x 90 windows: every device has a row for every window after it appeared
    assert!(got.len() >= 8 * 89, "{} windows", got.len());
    assert!(checked > 500, "{checked} windows checked");

    // the attacks show where they should
    let at = |mac: &str, epoch: u64, f: &str| got[&(mac.to_string(), epoch)][f].as_f64().unwrap();
    let t0 = 1_704_067_200;
    type Check = fn(f64) -> bool;
    #[rustfmt::skip]
    let expected: [(&str, u64, &str, Check, &str); 12] = [
        ("02:10:00:00:00:00", 130, "remote_ports", |v| v > 900.0, "port scan: ~1000 ports in 10 s"),
        ("02:10:00:00:00:00", 130, "unanswered", |v| v == 0.0, "the victim answers every probe"),
        ("02:10:01:00:00:01", 200, "syn_out", |v| v == 5000.0, "SYN flood: 500/s"),
        ("02:10:01:00:00:01", 200, "unanswered", |v| v > 3000.0, "most flood SYNs go unanswered"),
        ("02:10:00:00:00:00", 130, "login_attempts", |v| v == 0.0, "a SYN scan of ports 22 and 23 is no login"),
        ("02:10:02:00:00:02", 300, "max_attempts_one_service", |v| v >= 20.0, "brute force: 20 logins to one service"),
        ("02:10:02:00:00:02", 300, "login_attempts", |v| v >= 19.0, "each of them a session with one service, seconds apart"),
        ("02:10:03:00:00:03", 400, "dns_name_len_mean", |v| v > 50.0, "tunnel names are long"),
        ("02:10:03:00:00:03", 400, "dns_entropy_mean", |v| v > 4.0, "and random"),
        ("02:10:03:00:00:03", 400, "dns_unusual_queries", |v| v == 100.0, "TXT queries"),
        ("02:10:00:00:00:04", 500, "arp_req_targets", |v| v > 240.0, "ARP sweep of the /24"),
        ("02:10:01:00:00:05", 600, "udp_out", |v| v >= 5000.0, "UDP flood"),
    ];
    for (mac, dt, feature, check, what) in expected {
        let v = at(mac, t0 + dt, feature);
        assert!(check(v), "{what}: {mac} {feature} = {v}");
    }
    // identity learned on the way (replay's JSON summary)
    let summary = ok(&["replay", s(&pcap), "--json", "--no-model"]);
    let hub = summary
        .lines()
        .find(|l| l.contains("\"kind\":\"device\"") && l.contains("02:10:02:00:00:02"))
        .expect("hub in summary");
    let hub: serde_json::Value = serde_json::from_str(hub).unwrap();
    assert_eq!(hub["name"], "hub-2");
    assert_eq!(hub["vendor_class"], "iot-hub");
    assert_eq!(hub["ipv4"][0], "192.168.1.14");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn replay_and_features_are_deterministic() {
    let dir = scratch("determinism");
    let a = dir.join("a.pcap");
    let b = dir.join("b.pcap");
    for p in [&a, &b] {
        synth(p, 5, 300, 6, &["portscan@100:02:10:00:00:00:00"]);
    }
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same seed, same bytes"
    );
    let one = ok(&["features", s(&a)]);
    let two = ok(&["features", s(&a)]);
    assert_eq!(one, two);
    assert!(one.lines().count() > 6 * 29);
    let other = dir.join("c.pcap");
    synth(&other, 6, 300, 6, &[]);
    assert_ne!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&other).unwrap(),
        "another seed, other bytes"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
