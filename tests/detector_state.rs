//! A restart does not relearn: the detector's state saved after one capture is restored
//! for the next, whose attack is caught inside what would otherwise be its learning period,
//! with no device announced again; broken or foreign state files are refused.

mod common;

use common::{ok, run, s, scratch, synth};

/// Splits a capture at `secs` after its first packet, with libpcap.
fn split(src: &std::path::Path, secs: i64, a: &std::path::Path, b: &std::path::Path) -> (u64, u64) {
    let mut cap = pcap::Capture::from_file(src).unwrap();
    let dead = pcap::Capture::dead(cap.get_datalink()).unwrap();
    let mut wa = dead.savefile(a).unwrap();
    let mut wb = dead.savefile(b).unwrap();
    let (mut na, mut nb) = (0, 0);
    let mut t0 = None;
    while let Ok(p) = cap.next_packet() {
        let t = p.header.ts.tv_sec;
        if t < *t0.get_or_insert(t) + secs {
            wa.write(&p);
            na += 1;
        } else {
            wb.write(&p);
            nb += 1;
        }
    }
    (na, nb)
}

fn events(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const SCANNER: &str = "02:10:01:00:00:01";

#[test]
fn a_restart_restores_what_was_learned() {
    let dir = scratch("detector-state");
    let whole = dir.join("whole.pcap");
    // two hours; the plug scans 10 minutes into the second hour
    synth(&whole, 8, 7200, 5, &["portscan@4200:02:10:01:00:00:01"]);
    let (a, b) = (dir.join("a.pcap"), dir.join("b.pcap"));
    let (na, nb) = split(&whole, 3600, &a, &b);
    assert!(na > 1000 && nb > 1000, "{na} {nb}");
    let state = dir.join("state.json");
    let learn = ["--json", "--learning-windows", "360", "--state", s(&state)];

    // the first hour learns, and its state is saved
    let first = ok(&[&["replay", s(&a)][..], &learn].concat());
    assert!(
        events(&first).iter().all(|e| e["kind"] != "anomaly"),
        "{first}"
    );
    let after_a = std::fs::read(&state).unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&after_a).unwrap();
    let devices = saved["devices"].as_array().unwrap();
    assert!(devices.len() >= 5, "{}", devices.len());
    assert!(devices
        .iter()
        .any(|d| d["mac"] == SCANNER && d["threshold"].is_number()));

    // a fresh start on the second hour is still learning when the scan starts: silent
    let fresh = ok(&["replay", s(&b), "--json", "--learning-windows", "360"]);
    assert!(
        events(&fresh).iter().all(|e| e["kind"] != "anomaly"),
        "{fresh}"
    );
    // restored, it knows every device and catches the scan at once, on the device's own
    // threshold
    let restored = ok(&[&["replay", s(&b)][..], &learn].concat());
    let ev = events(&restored);
    assert!(ev.iter().all(|e| e["kind"] != "new-device"), "{restored}");
    let open = ev
        .iter()
        .find(|e| e["phase"] == "open" && e["device"]["mac"] == SCANNER)
        .unwrap_or_else(|| panic!("the scan is alerted: {restored}"));
    assert_eq!(open["threshold_source"], "device");
    let at = open["window_start_epoch"].as_u64().unwrap();
    let t0 = 1_704_067_200 + 4200;
    assert!((t0..t0 + 20).contains(&at), "alerted at {at}");
    // the same state restored again gives the same output
    let again = dir.join("again.json");
    std::fs::write(&again, &after_a).unwrap();
    assert_eq!(
        restored,
        ok(&[
            "replay",
            s(&b),
            "--json",
            "--learning-windows",
            "360",
            "--state",
            s(&again)
        ])
    );

    // broken and foreign state files are refused before any work, with the reason
    let bad = dir.join("bad.json");
    let refused = |content: &str, reason: &str| {
        std::fs::write(&bad, content).unwrap();
        let out = run(&["replay", s(&b), "--state", s(&bad)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(reason), "{err}");
    };
    refused("{\"format_version\":1,", "not a state file");
    let with = |key: &str, value: serde_json::Value| {
        let mut v = saved.clone();
        v[key] = value;
        v.to_string()
    };
    refused(&with("model", "0000000000000000".into()), "another model");
    refused(&with("format_version", 99.into()), "format version 99");
    refused(&with("window_secs", 60.into()), "60-s windows");
    std::fs::remove_dir_all(&dir).unwrap();
}
