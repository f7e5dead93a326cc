//! `iotad run` on real interfaces: a veth pair the test makes, `iotad run` capturing on one
//! end, synthesized captures played onto the other with tcpreplay (or frames written with
//! libpcap and played the same way). Needs root, `ip` and `tcpreplay` (Debian: iproute2,
//! tcpreplay); without them each test says so loudly and does nothing. Traffic stays on the
//! test's own veth pair. The helpers are in `common/live.rs`.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::live::{cannot_run, count_before, events, Daemon, Veth};
use common::{s, scratch, synth};

macro_rules! need_root_and_tools {
    ($test:expr) => {
        if let Some(why) = cannot_run(&[], "") {
            eprintln!("\n*** SKIPPED {}: {why} ***\n", $test);
            return;
        }
    };
}

const SCANNER: &str = "02:10:00:00:00:00";

#[test]
fn a_scan_on_a_live_interface_is_alerted_and_a_restart_keeps_what_was_learned() {
    need_root_and_tools!(
        "a_scan_on_a_live_interface_is_alerted_and_a_restart_keeps_what_was_learned"
    );
    let dir = scratch("live-e2e");
    let pcap = dir.join("net.pcap");
    // three devices for half a minute, played at their own pace; the camera (device 0)
    // scans after 20 s, when the first window has taught the devices what is normal
    synth(&pcap, 3, 30, 3, &[&format!("portscan@20:{SCANNER}")]);
    let veth = Veth::new("a");
    let (ev, state) = (dir.join("events.jsonl"), dir.join("state.json"));
    let args = [
        "--interface",
        &veth.capture,
        "--events",
        s(&ev),
        "--state",
        s(&state),
        "--learning-windows",
        "1",
    ];
    let d = Daemon::start(&dir, "first", &args);
    veth.play(&pcap, 1.0);
    let t = Instant::now();
    let alert = loop {
        let found = events(&ev).into_iter().find(|e| {
            e["kind"] == "anomaly" && e["phase"] == "open" && e["device"]["mac"] == SCANNER
        });
        if let Some(e) = found {
            break e;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no anomaly for the scanner; events: {:?}\n{}",
            events(&ev),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let named: Vec<&str> = alert["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["feature"].as_str().unwrap())
        .collect();
    assert!(
        named
            .iter()
            .any(|f| common::live::SCAN_FEATURES.contains(f)),
        "the alert explains the scan: {named:?}"
    );
    assert!(alert["explanation"][0]["text"].as_str().unwrap().len() > 20);
    let (took, clean, log) = d.terminate();
    assert!(clean, "exit status 0 after SIGTERM:\n{log}");
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    assert!(state.exists(), "state saved at exit");
    assert!(count_before(&log, "received and") > 0, "{log}");

    // a restart restores what the devices learned: no device is new, none relearns
    let learned: Vec<(String, Option<f64>)> = ["02:10:01:00:00:01", "02:10:02:00:00:02"]
        .iter()
        .map(|m| (m.to_string(), saved_threshold(&state, m)))
        .collect();
    // (which devices have a threshold after half a minute depends on where the wall clock
    // cut the windows; at least one has)
    let learned: Vec<(String, Option<f64>)> =
        learned.into_iter().filter(|(_, t)| t.is_some()).collect();
    assert!(!learned.is_empty(), "no device learned its threshold");
    let before = events(&ev).len();
    let d = Daemon::start(&dir, "second", &args);
    let log = d.log();
    assert!(count_before(&log, "devices learned from") >= 3, "{log}");
    let benign = dir.join("benign.pcap");
    synth(&benign, 3, 30, 3, &[]);
    veth.play(&benign, 3.0);
    std::thread::sleep(Duration::from_secs(1));
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    let again = &events(&ev)[before..];
    assert!(
        again.iter().all(|e| e["kind"] != "new-device"),
        "known devices are not announced again: {again:?}"
    );
    for (mac, threshold) in &learned {
        assert_eq!(
            saved_threshold(&state, mac),
            *threshold,
            "{mac} kept its threshold (no relearning):\n{log}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_deleted_and_recreated_interface_is_captured_again() {
    need_root_and_tools!("a_deleted_and_recreated_interface_is_captured_again");
    let dir = scratch("live-gone");
    let pcap = dir.join("net.pcap");
    synth(&pcap, 4, 20, 2, &[]);
    let veth = Veth::new("b");
    let state = dir.join("state.json");
    let d = Daemon::start(
        &dir,
        "gone",
        &["--interface", &veth.capture, "--state", s(&state)],
    );
    veth.play(&pcap, 0.0);
    veth.delete();
    d.wait_for_log("retrying until it is back", Duration::from_secs(10));
    veth.create();
    let t = Instant::now();
    while d.log().matches("capturing on").count() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "not reopened:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    veth.play(&pcap, 0.0);
    std::thread::sleep(Duration::from_millis(500));
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    let mut file = pcap::Capture::from_file(&pcap).unwrap();
    let mut sent = 0u64;
    while file.next_packet().is_ok() {
        sent += 1;
    }
    // more than one play's worth: the second play was captured after the interface came
    // back (frames in flight when it was deleted may be lost)
    let captured = count_before(&log, "packets (");
    assert!(
        captured > sent && captured <= 2 * sent,
        "{captured} of 2 x {sent}: {log}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A pcap of one frame each from `macs` (UDP to the broadcast address), written with libpcap.
fn write_frames(path: &Path, macs: impl Iterator<Item = [u8; 6]>) {
    let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
    let mut out = cap.savefile(path).unwrap();
    for (i, mac) in macs.enumerate() {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x08, 0x00]);
        // IPv4 header (checksum filled below) and UDP 68 -> 67, no payload
        let ip = [10, 99, (i >> 8) as u8, i as u8];
        let mut h = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        h.extend_from_slice(&ip);
        h.extend_from_slice(&[255, 255, 255, 255]);
        let sum = h
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(&[0, 68, 0, 67, 0, 8, 0, 0]);
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: 1_700_000_000,
                tv_usec: i as libc::suseconds_t,
            },
            caplen: f.len() as u32,
            len: f.len() as u32,
        };
        out.write(&pcap::Packet::new(&header, &f));
    }
    out.flush().unwrap();
}

/// The threshold the state file holds for `mac`.
fn saved_threshold(state: &Path, mac: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(state).ok()?).ok()?;
    v["devices"].as_array()?.iter().find(|d| d["mac"] == mac)?["threshold"].as_f64()
}

#[test]
fn a_flood_of_new_macs_keeps_memory_flat_and_learned_devices_learned() {
    need_root_and_tools!("a_flood_of_new_macs_keeps_memory_flat_and_learned_devices_learned");
    let dir = scratch("live-churn");
    let pcap = dir.join("net.pcap");
    synth(&pcap, 5, 40, 3, &[]);
    let floods: Vec<_> = (0..3).map(|i| dir.join(format!("flood{i}.pcap"))).collect();
    let mac = |n: u32| [0x0a, 0xf1, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    for (i, f) in floods.iter().enumerate() {
        let from = 2000 * i as u32;
        write_frames(f, (from..from + 2000).map(mac));
    }
    let veth = Veth::new("c");
    let state = dir.join("state.json");
    let cfg = dir.join("config.json");
    std::fs::File::create(&cfg)
        .unwrap()
        .write_all(br#"{"state": {"checkpoint_secs": 1}, "detect": {"learning_windows": 2, "parked_devices": 64}}"#)
        .unwrap();
    let d = Daemon::start(
        &dir,
        "churn",
        &[
            "--config",
            s(&cfg),
            "--interface",
            &veth.capture,
            "--state",
            s(&state),
        ],
    );
    // the devices learn (two windows of learning, then one more for each threshold)
    veth.play(&pcap, 1.0);
    let device = "02:10:01:00:00:01";
    let t = Instant::now();
    let learned = loop {
        if let Some(th) = saved_threshold(&state, device) {
            break th;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{device} never learned:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let rss: Vec<u64> = floods
        .iter()
        .map(|f| {
            veth.play(f, 0.0);
            std::thread::sleep(Duration::from_secs(2));
            d.rss_kb()
        })
        .collect();
    // the device comes back after 6,000 strangers went through a 256-slot table
    veth.play(&pcap, 4.0);
    std::thread::sleep(Duration::from_secs(2));
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    let said = format!(
        "RSS after 2,000 new MACs {} kB, after 4,000 {} kB, after 6,000 {} kB",
        rss[0], rss[1], rss[2]
    );
    eprintln!("{said}");
    // memory that grew with the MACs would grow a kilobyte or more per device (its window
    // and learning): 2 MB or more a stretch (the daemon runs with glibc's mmap threshold
    // fixed: see Daemon::start)
    for (from, to) in [(rss[0], rss[1]), (rss[1], rss[2])] {
        assert!(to <= from + 1024, "{said}");
    }
    assert!(count_before(&log, "devices,") <= 256, "{log}");
    assert_eq!(
        saved_threshold(&state, device),
        Some(learned),
        "the device kept its threshold:\n{log}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_quiet_network_still_has_its_windows_closed_by_the_clock() {
    need_root_and_tools!("a_quiet_network_still_has_its_windows_closed_by_the_clock");
    let dir = scratch("live-quiet");
    let pcap = dir.join("net.pcap");
    synth(&pcap, 6, 5, 2, &[]);
    let veth = Veth::new("d");
    let state = dir.join("state.json");
    let d = Daemon::start(
        &dir,
        "quiet",
        &["--interface", &veth.capture, "--state", s(&state)],
    );
    veth.play(&pcap, 0.0);
    // then nothing for two and a half windows
    std::thread::sleep(Duration::from_secs(25));
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    let timer = count_before(&log, "closed by the timer");
    let windows = count_before(&log, "windows (");
    assert!(timer >= 2, "windows closed by the clock: {timer}\n{log}");
    assert!(windows > timer, "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sighup_reloads_the_config_keeps_the_devices_and_refuses_what_is_broken() {
    need_root_and_tools!("sighup_reloads_the_config_keeps_the_devices_and_refuses_what_is_broken");
    let dir = scratch("live-hup");
    let pcap = dir.join("net.pcap");
    synth(&pcap, 7, 20, 3, &[]);
    let veth = Veth::new("e");
    let (cfg, ev) = (dir.join("config.json"), dir.join("events.jsonl"));
    let write = |text: &str| std::fs::write(&cfg, text).unwrap();
    write(r#"{"detect": {"learning_windows": 1, "margin": 1.5}}"#);
    let d = Daemon::start(
        &dir,
        "hup",
        &[
            "--config",
            s(&cfg),
            "--interface",
            &veth.capture,
            "--events",
            s(&ev),
            "--state",
            s(&dir.join("state.json")),
        ],
    );
    veth.play(&pcap, 0.0);
    // sends SIGHUP and waits for the `n`th appearance of `what` in the log
    let hup = |what: &str, n: usize| {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(d.pid(), libc::SIGHUP) };
        let t = Instant::now();
        while d.log().matches(what).count() < n {
            assert!(t.elapsed() < Duration::from_secs(10), "{}", d.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // the first window closes on the clock (10 s and the grace): the devices are learning
    std::thread::sleep(Duration::from_secs(13));
    // a valid change is taken
    write(r#"{"detect": {"learning_windows": 1, "margin": 2.0}}"#);
    hup("SIGHUP: reloaded", 1);
    // a broken file is refused and the running configuration kept
    write(r#"{"detect": {"margin": "#);
    hup("keeping the running configuration", 1);
    write(r#"{"detect": {"no_such_key": 1}}"#);
    hup("keeping the running configuration", 2);
    assert!(d.log().contains("no_such_key"), "{}", d.log());
    // a model that is no model is refused and the running one kept
    let bad = dir.join("bad.gguf");
    std::fs::write(&bad, b"GGUF but not really").unwrap();
    write(&format!(r#"{{"model": {{"file": "{}"}}}}"#, bad.display()));
    hup("keeping the running model", 1);
    // a setting that needs a restart says so
    write(r#"{"detect": {"learning_windows": 1}, "capture": {"snaplen": 2048}}"#);
    hup("SIGHUP: reloaded", 2);
    assert!(
        d.log().contains("take effect at the next restart"),
        "{}",
        d.log()
    );
    // the devices were kept through all of it: the state saved at exit has each of them
    let (_, clean, log) = d.terminate();
    assert!(
        clean,
        "still running and exits 0 after five reloads:\n{log}"
    );
    let saved = std::fs::read_to_string(dir.join("state.json")).unwrap();
    for mac in [
        "02:10:00:00:00:00",
        "02:10:01:00:00:01",
        "02:10:02:00:00:02",
    ] {
        assert!(
            saved.contains(mac),
            "{mac} kept through the reloads:\n{log}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_state_learned_by_another_model_is_set_aside_and_the_daemon_learns_afresh() {
    need_root_and_tools!(
        "a_state_learned_by_another_model_is_set_aside_and_the_daemon_learns_afresh"
    );
    let dir = scratch("live-upgrade");
    let pcap = dir.join("net.pcap");
    synth(&pcap, 8, 30, 2, &[]);
    let state = dir.join("state.json");
    let out = common::run(&["replay", s(&pcap), "--state", s(&state)]);
    assert!(out.status.success());
    // what an upgrade to a new built-in model finds
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    saved["model"] = "0000000000000000".into();
    std::fs::write(&state, saved.to_string()).unwrap();
    let veth = Veth::new("f");
    let d = Daemon::start(
        &dir,
        "upgrade",
        &["--interface", &veth.capture, "--state", s(&state)],
    );
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    assert!(log.contains("learned with another model"), "{log}");
    assert!(log.contains("learning afresh"), "{log}");
    let aside = dir.join("state.json.incompatible");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&aside).unwrap()).unwrap(),
        saved,
        "the old state is kept, untouched"
    );
    assert!(state.exists(), "a fresh state saved at exit");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `iotad bench --live` makes its own veth pair, injects a synthesized capture at rising
/// rates and reports the highest with no kernel drop: every rate it calls clean processed
/// every frame it sent, and the pair is gone afterwards. (The rate itself is a figure for
/// the README, not a test's business.)
#[test]
fn the_live_benchmark_reports_a_rate_with_no_drop_and_cleans_up() {
    need_root_and_tools!("the_live_benchmark_reports_a_rate_with_no_drop_and_cleans_up");
    let dir = scratch("live-bench");
    let pcap = dir.join("net.pcap");
    synth(&pcap, 5, 60, 4, &[]);
    let links = || {
        let out = std::process::Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(": ibc") || l.contains(": ibi"))
            .count()
    };
    let before = links();
    let out = common::ok(&["bench", "--live", "--live-secs", "0.3", s(&pcap)]);
    let rows: Vec<Vec<u64>> = out
        .lines()
        .filter_map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .map(|w| w.parse::<f64>().map(|x| x as u64))
                .collect::<Result<_, _>>()
                .ok()?;
            (v.len() == 6).then_some(v)
        })
        .collect();
    assert!(!rows.is_empty(), "{out}");
    // target, sent pps, sent, processed, dropped, if-dropped: the first rate is clean
    let first = &rows[0];
    assert_eq!(first[0], 10_000, "{out}");
    assert_eq!(first[2], 3_000, "{out}");
    assert!(
        first[3] >= first[2] && first[4] == 0 && first[5] == 0,
        "{out}"
    );
    let summary = out.lines().find(|l| l.starts_with("live: ")).unwrap();
    let rate: f64 = summary
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(rate >= 9_000.0, "{summary}");
    assert_eq!(links(), before, "the veth pair is deleted");
    let _ = std::fs::remove_dir_all(&dir);
}
