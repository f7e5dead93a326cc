//! The kinds of attack issue 12 found going unseen on real captures, synthesized: each is
//! alerted by the built-in model, from the device that sends it, with a reason that names
//! what it did, and no device that attacks nothing alerts.

mod common;

use common::{ok, s, scratch, synth};

/// Start of every synthesized capture (2024-01-01T00:00:00Z).
const T0: u64 = 1_704_067_200;

/// An alert (an incident opening, or one recast from target to source) as `iotad replay
/// --json` prints it.
#[derive(Debug)]
struct Alert {
    mac: String,
    /// Seconds after the capture's start.
    at: u64,
    features: Vec<String>,
    /// "source" or "target".
    role: String,
    /// The counterpart's address ("" for none).
    counterpart: String,
}

/// The incidents opened when `pcap` is replayed with the built-in model, and the targets'
/// incidents recast as sources (a device scanned, then scanning, is updated, not opened).
fn alerts(pcap: &std::path::Path) -> Vec<Alert> {
    ok(&["replay", s(pcap), "--json"])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["kind"] == "anomaly"
                && (e["phase"] == "open" || (e["phase"] == "update" && e["role"] == "source"))
        })
        .map(|e| Alert {
            mac: e["device"]["mac"].as_str().unwrap().to_string(),
            at: e["window_start_epoch"].as_u64().unwrap() - T0,
            features: e["explanation"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["feature"].as_str().unwrap().to_string())
                .collect(),
            role: e["role"].as_str().unwrap_or_default().to_string(),
            counterpart: e["counterpart"]["ip"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
        .collect()
}

/// Each attacker `(mac, start s)` is alerted within `within` seconds of its start, naming
/// one of `names`; no other device but the `victims` alerts at all.
fn judge(
    alerts: &[Alert],
    attackers: &[(&str, u64)],
    victims: &[&str],
    within: u64,
    names: &[&str],
) {
    for &(mac, start) in attackers {
        let first = alerts
            .iter()
            .find(|a| a.mac == mac && a.at + 10 > start)
            .unwrap_or_else(|| panic!("{mac} is not alerted: {alerts:?}"));
        assert!(
            first.at < start + within,
            "{mac} alerted {} s after it began, not within {within} s: {first:?}",
            first.at.saturating_sub(start)
        );
        assert!(
            first.features.iter().any(|f| names.contains(&f.as_str())),
            "{mac}'s alert names {:?}, none of {names:?}",
            first.features
        );
    }
    let others: Vec<&Alert> = alerts
        .iter()
        .filter(|a| !attackers.iter().any(|(m, _)| *m == a.mac) && !victims.contains(&&*a.mac))
        .collect();
    assert!(others.is_empty(), "false alerts: {others:?}");
}

/// Scans without a SYN (FIN, NULL, XMAS, ACK), a probe every 20 s, each from another device
/// after an hour of learning: a handful of probes must be enough. Each victim, which
/// barely notices a probe every 20 s (one reset sent), is the target of its scanner as soon
/// as the scanner alerts, by the segments it refused (before: never alerted); the hub,
/// scanned first and scanning next, is recast from target to source.
#[test]
fn scans_of_every_flag_combination_are_alerted() {
    let dir = scratch("gaps-scans");
    let pcap = dir.join("scans.pcap");
    let attackers = [
        ("02:10:01:00:00:01", 3900), // plug-1, FIN scan of hub-2
        ("02:10:02:00:00:02", 4500), // hub-2, NULL scan of phone-3
        ("02:10:00:00:00:04", 5100), // camera-4, XMAS scan of plug-5
        ("02:10:01:00:00:05", 5700), // plug-5, ACK scan of camera-0
    ];
    let victims = [
        "02:10:02:00:00:02",
        "02:10:03:00:00:03",
        "02:10:01:00:00:05",
        "02:10:00:00:00:00",
    ];
    let kinds = ["fin-scan", "null-scan", "xmas-scan", "ack-scan"];
    let specs: Vec<String> = kinds
        .iter()
        .zip(attackers)
        .map(|(k, (mac, start))| format!("{k}@{start}+300:{mac}"))
        .collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    synth(&pcap, 21, 6300, 6, &specs);
    let alerts = alerts(&pcap);
    // within two minutes: six probes at most
    judge(
        &alerts,
        &attackers,
        &victims,
        120,
        &["probes", "probes_slow"],
    );
    for ((attacker, start), victim) in attackers.into_iter().zip(victims) {
        let ip = ok(&["synth", "--list-devices", "--devices", "6", "--seed", "21"])
            .lines()
            .find(|l| l.starts_with(attacker))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .to_string();
        let early: Vec<_> = alerts
            .iter()
            .filter(|a| a.mac == victim && a.at + 10 <= start)
            .filter(|a| !attackers.iter().any(|(m, s)| *m == a.mac && a.at + 10 > *s))
            .collect();
        assert!(early.is_empty(), "alerted before it was scanned: {early:?}");
        let target = alerts
            .iter()
            .find(|a| a.mac == victim && a.at + 10 > start)
            .unwrap_or_else(|| panic!("{victim}, scanned by {attacker}, is not alerted"));
        assert_eq!(target.role, "target", "{target:?}");
        assert_eq!(
            target.counterpart, ip,
            "the scanner is not named: {target:?}"
        );
        assert!(target.at < start + 120, "{target:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Password guessing on ports the old features never knew: FTP (21) from a camera, as hydra
/// does it, and SSH moved to port 2222 from a plug that reconnects to its own cloud every
/// 30 s, in bursts of three connections two minutes apart. Both are alerted at once, with
/// the login features named, and the bursts are one incident, not one per burst.
#[test]
fn logins_on_any_port_are_alerted_as_logins() {
    let dir = scratch("gaps-logins");
    let pcap = dir.join("logins.pcap");
    let (ftp, ssh) = (("02:10:00:00:00:04", 3900), ("02:10:01:00:00:01", 4500));
    synth(
        &pcap,
        22,
        6000,
        6,
        &[
            "ftp-brute@3900+120:02:10:00:00:00:04",
            "ssh-brute@4500+720:02:10:01:00:00:01",
        ],
    );
    let alerts = alerts(&pcap);
    // the victims (the next devices: plug-5, hub-2) may see it too
    let victims = ["02:10:01:00:00:05", "02:10:02:00:00:02"];
    let logins = ["login_attempts", "login_attempts_slow"];
    // the SSH brute force within its first two bursts, the FTP one in its first window
    judge(&alerts, &[ftp, ssh], &victims, 130, &logins);
    judge(
        &alerts,
        &[ftp],
        &[ssh.0, victims[0], victims[1]],
        10,
        &logins,
    );
    let bursts = alerts
        .iter()
        .filter(|a| a.mac == ssh.0 && (ssh.1..ssh.1 + 720).contains(&a.at))
        .count();
    assert_eq!(bursts, 1, "one incident for the bursts: {alerts:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A crypto-miner: a modest, steady conversation with a pool on port 3333, an address and
/// port the plug never used. No volume feature moves much; the service's novelty does.
#[test]
fn a_miner_is_alerted_by_the_service_it_never_used() {
    let dir = scratch("gaps-miner");
    let pcap = dir.join("miner.pcap");
    let miner = ("02:10:01:00:00:01", 4200);
    synth(&pcap, 26, 6600, 6, &["miner@4200+1800:02:10:01:00:00:01"]);
    let alerts = alerts(&pcap);
    judge(
        &alerts,
        &[miner],
        &[],
        10,
        &["new_services", "new_service_pkts", "mining_msgs"],
    );
    assert_eq!(
        alerts.iter().filter(|a| a.mac == miner.0).count(),
        1,
        "one incident while it mines: {alerts:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A miner that is the first thing a network with no history sees (nothing learned, every
/// device judged against the population): its Stratum messages name it at once (before,
/// nothing could be new against an empty history). A rig that mined while the network
/// learned is the owner's, and stays quiet.
#[test]
fn a_miner_on_a_network_with_no_history_is_named_by_its_protocol() {
    let dir = scratch("gaps-miner-first");
    let pcap = dir.join("miner.pcap");
    let miner = "02:10:01:00:00:01";
    synth(&pcap, 27, 1800, 3, &[&format!("miner@0+1800:{miner}")]);
    let events: Vec<serde_json::Value> =
        ok(&["replay", s(&pcap), "--json", "--learning-windows", "0"])
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|e: &serde_json::Value| e["kind"] == "anomaly" && e["phase"] == "open")
            .collect();
    let first = events
        .iter()
        .find(|e| e["device"]["mac"] == miner)
        .unwrap_or_else(|| panic!("the miner is not alerted: {events:?}"));
    assert_eq!(first["window_start_epoch"].as_u64().unwrap(), T0, "{first}");
    assert_eq!(first["behaviour"], "mining", "{first}");
    assert_eq!(first["explanation"][0]["feature"], "mining_msgs", "{first}");
    assert_eq!(first["counterpart"]["ip"], "94.23.199.191", "{first}");
    // the same rig, mining since before the network began to learn (half an hour)
    let quiet: Vec<serde_json::Value> =
        ok(&["replay", s(&pcap), "--json", "--learning-windows", "90"])
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|e: &serde_json::Value| {
                e["kind"] == "anomaly" && e["phase"] == "open" && e["device"]["mac"] == miner
            })
            .collect();
    assert!(quiet.is_empty(), "a rig learned as normal: {quiet:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A device under attack is alerted as the target and names its attacker: a port scan, a
/// UDP flood and a telnet brute force, each from another device after an hour of learning.
/// Every victim's incident says `"role": "target"` with the attacker's address as its
/// counterpart, and every attacker's says `"role": "source"`.
#[test]
fn targets_are_alerted_as_targets_naming_the_attacker() {
    let dir = scratch("gaps-targets");
    let pcap = dir.join("targets.pcap");
    // (attacker, its victim: the next device)
    let pairs = [
        (
            "portscan@3900+60:02:10:00:00:00:00",
            "02:10:00:00:00:00",
            "02:10:01:00:00:01",
        ),
        (
            "udpflood@4500+60:02:10:02:00:00:02",
            "02:10:02:00:00:02",
            "02:10:03:00:00:03",
        ),
        (
            "telnet-brute@5100+120:02:10:00:00:00:04",
            "02:10:00:00:00:04",
            "02:10:01:00:00:05",
        ),
    ];
    let specs: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    synth(&pcap, 23, 5700, 6, &specs);
    let events: Vec<serde_json::Value> = ok(&["replay", s(&pcap), "--json"])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "anomaly" && e["phase"] == "open")
        .collect();
    let by = |mac: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["device"]["mac"] == mac)
            .collect()
    };
    for (spec, attacker, victim) in pairs {
        let a = by(attacker);
        assert!(
            !a.is_empty(),
            "{spec}: the attacker is not alerted: {events:?}"
        );
        assert!(
            a.iter().all(|e| e["role"] == "source"),
            "{spec}: the attacker is not the source: {a:?}"
        );
        let ip = a[0]["device"]["ipv4"][0].as_str().unwrap();
        let v = by(victim);
        assert!(
            !v.is_empty(),
            "{spec}: the victim is not alerted: {events:?}"
        );
        for e in v {
            assert_eq!(e["role"], "target", "{spec}: {e}");
            assert_eq!(
                e["counterpart"]["ip"], ip,
                "{spec}: the attacker is not named: {e}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Anomaly events (opens, updates, closes) of a replay with the built-in model.
fn incidents(pcap: &std::path::Path) -> Vec<serde_json::Value> {
    ok(&["replay", s(pcap), "--json"])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "anomaly" && e["phase"].is_string())
        .collect()
}

/// The victim of a brute force only answers, as a server does: a few connections accepted
/// and answered per burst (SSH on port 2222, bursts two minutes apart) move its own windows
/// too little to cross its threshold, so it was never alerted. It is the target of the
/// device that alerts for trying logins on it: one incident, low, naming the attacker, from
/// the first burst until the attacker's incident ends (not one per burst); the attacker's is
/// high. The devices the attacker talks to as usual meanwhile are nobody's targets.
#[test]
fn the_victim_of_a_brute_force_that_only_answers_is_its_target() {
    let dir = scratch("gaps-answering-victim");
    let pcap = dir.join("ssh.pcap");
    let (attacker, victim) = ("02:10:02:00:00:02", "02:10:03:00:00:03");
    synth(
        &pcap,
        23,
        5700,
        6,
        &[&format!("ssh-brute@3900+900:{attacker}")],
    );
    let events = incidents(&pcap);
    let of = |mac: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["device"]["mac"] == mac)
            .collect()
    };
    let a = of(attacker);
    assert!(
        a.first()
            .is_some_and(|e| e["role"] == "source" && e["severity"] == "high"),
        "the attacker: {a:?}"
    );
    let ip = a[0]["device"]["ipv4"][0].as_str().unwrap();
    let attacker_closed = a
        .iter()
        .find(|e| e["phase"] == "close")
        .map(|e| e["window_start_epoch"].as_u64().unwrap())
        .expect("the attacker's incident ends");
    let v = of(victim);
    let opens: Vec<_> = v.iter().filter(|e| e["phase"] == "open").collect();
    assert_eq!(opens.len(), 1, "one incident for the whole attack: {v:?}");
    let open = opens[0];
    assert_eq!(open["role"], "target", "{open}");
    assert_eq!(open["severity"], "low", "{open}");
    assert_eq!(
        open["counterpart"]["ip"], ip,
        "the attacker is named: {open}"
    );
    let at = open["window_start_epoch"].as_u64().unwrap() - T0;
    assert!(
        (3900..3920).contains(&at),
        "opened {at} s in, not at the first burst"
    );
    let closed = v
        .iter()
        .find(|e| e["phase"] == "close")
        .map(|e| e["window_start_epoch"].as_u64().unwrap());
    assert!(
        closed.is_none_or(|c| c >= attacker_closed),
        "the target's incident ended before its attacker's: {v:?}"
    );
    let others: Vec<_> = events
        .iter()
        .filter(|e| e["role"] == "target" && e["device"]["mac"] != victim)
        .filter(|e| e["counterpart"]["ip"] == ip)
        .collect();
    assert!(others.is_empty(), "not targets: {others:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A device that is being port-scanned and starts flooding a third device is alerted as
/// that flood's source: its incident opened as the scan's target (low) turns into a
/// flood, at least medium, naming the flood's victim, the window the flood begins. Being
/// someone's target must not hide an attack.
#[test]
fn a_target_that_attacks_others_is_alerted_as_their_attacker() {
    let dir = scratch("gaps-target-attacks");
    let pcap = dir.join("both.pcap");
    let (scanner, plug, hub) = (
        "02:10:00:00:00:00",
        "02:10:01:00:00:01",
        "02:10:02:00:00:02",
    );
    synth(
        &pcap,
        23,
        5700,
        6,
        &[
            &format!("portscan@3900+300:{scanner}"),
            &format!("udpflood@3960+60:{plug}"),
        ],
    );
    let events = incidents(&pcap);
    let of = |mac: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["device"]["mac"] == mac)
            .collect()
    };
    let hub_ip = events
        .iter()
        .find(|e| e["device"]["mac"] == hub)
        .map(|e| e["device"]["ipv4"][0].clone())
        .expect("the flood's victim is alerted");
    let p = of(plug);
    let flooding = p
        .iter()
        .find(|e| e["role"] == "source")
        .unwrap_or_else(|| panic!("the plug's flood is not alerted as its own: {p:?}"));
    assert_eq!(flooding["behaviour"], "flood", "{flooding}");
    assert_ne!(flooding["severity"], "low", "{flooding}");
    assert_eq!(flooding["counterpart"]["ip"], hub_ip, "{flooding}");
    let at = flooding["window_start_epoch"].as_u64().unwrap() - T0;
    assert!((3960..3980).contains(&at), "{at} s in: {flooding}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A rare habit is no anomaly: on a synthesized network of eight devices (seed 3), a
/// camera looks up its cloud's name once in the first half-hour it learns from, and every
/// few minutes later. Its typical error on the DNS features, a root mean square over 180
/// windows, made each later lookup ten typical errors off and alerted it as a DNS tunnel
/// (four incidents in two hours); an error as large as the largest it made while learning
/// now counts as three. Nothing on the network attacks, and nothing alerts.
#[test]
fn a_habit_seen_while_learning_is_no_anomaly_when_it_becomes_frequent() {
    nothing_alerts_on_a_benign_network("gaps-rare-habit", 3, 8);
}

/// Two hours of a synthesized network of `devices` (seed `seed`) in which nothing attacks:
/// no incident opens.
fn nothing_alerts_on_a_benign_network(name: &str, seed: u64, devices: u32) {
    let dir = scratch(name);
    let pcap = dir.join("benign.pcap");
    synth(&pcap, seed, 7200, devices, &[]);
    let opened = alerts(&pcap);
    assert!(opened.is_empty(), "false alerts: {opened:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two pages are no brute force: on a synthesized network of sixteen devices (seed 31), a
/// phone fetches two 40 KB pages from one server within a second, two sessions with one
/// service begun within 10 s, which counted as two repeated logins and alerted as a brute
/// force. A session that received more than a login's worth of data is a download; the
/// brute forces of the other tests (and of ../shared/data) are still alerted as logins.
#[test]
fn a_phone_fetching_pages_is_not_trying_logins() {
    nothing_alerts_on_a_benign_network("gaps-pages", 31, 16);
}

/// What a source did is what its window shows, not its explanation's first word: a miner
/// on a network of sixteen devices (seed 5) opens on a new service with one SYN to its pool
/// and one connection attempt, which read as a scan (one address probed); its window holds
/// Stratum messages, so it is mining (medium at least), and a miner makes no targets (the
/// hub it talks to as usual was called the scan's target).
#[test]
fn a_miner_is_mining_not_scanning_and_makes_no_targets() {
    let dir = scratch("gaps-behaviour");
    let pcap = dir.join("miner.pcap");
    let miner = "02:10:01:00:00:01";
    synth(&pcap, 5, 5100, 16, &[&format!("miner@3900+600:{miner}")]);
    let events = incidents(&pcap);
    let opens: Vec<_> = events.iter().filter(|e| e["phase"] == "open").collect();
    assert!(
        opens.iter().all(|e| e["device"]["mac"] == miner),
        "only the miner alerts: {opens:?}"
    );
    assert_eq!(opens.len(), 1, "{opens:?}");
    assert_eq!(opens[0]["behaviour"], "mining", "{}", opens[0]);
    assert_ne!(opens[0]["severity"], "low", "{}", opens[0]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A camera streaming to its cloud that answers a brute force is its target, not a source:
/// its heaviest peer stays the cloud, and its answers (a small packet per prompt, one
/// remote port per connection it accepted) outweighed the connections it received. An FTP
/// brute force and a telnet one, each on a camera of a twelve-device network; before, the
/// FTP victim alerted as a scan, medium, and the telnet one as a source naming its cloud.
/// And an SSH brute force in bursts two minutes apart, three connections each, that moves
/// the camera's windows too little to be off its normal: the camera is the target of the
/// device that opened connections to it and alerts for trying logins on it (before: never
/// alerted).
#[test]
fn a_chatty_camera_answering_logins_is_their_target() {
    let dir = scratch("gaps-chatty-target");
    let pcap = dir.join("chatty.pcap");
    // (attacker, its victim: the next device, a camera)
    let pairs = [
        (
            "ftp-brute@3900+120",
            "02:10:03:00:00:07",
            "02:10:00:00:00:08",
        ),
        (
            "telnet-brute@4500+120",
            "02:10:03:00:00:0b",
            "02:10:00:00:00:00",
        ),
        (
            "ssh-brute@5100+600",
            "02:10:03:00:00:03",
            "02:10:00:00:00:04",
        ),
    ];
    let specs: Vec<String> = pairs.iter().map(|(k, a, _)| format!("{k}:{a}")).collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    synth(&pcap, 9, 6000, 12, &specs);
    let events = incidents(&pcap);
    for (kind, attacker, victim) in pairs {
        let of = |mac: &str| -> Vec<&serde_json::Value> {
            events
                .iter()
                .filter(|e| e["device"]["mac"] == mac && e["phase"] != "close")
                .collect()
        };
        let a = of(attacker);
        assert!(
            a.first()
                .is_some_and(|e| e["role"] == "source" && e["behaviour"] == "brute-force"),
            "{kind}: the attacker: {a:?}"
        );
        let ip = a[0]["device"]["ipv4"][0].as_str().unwrap();
        let v = of(victim);
        assert!(!v.is_empty(), "{kind}: the victim is not alerted");
        for e in v {
            assert_eq!(e["role"], "target", "{kind}: {e}");
            assert_eq!(e["behaviour"], "targeted", "{kind}: {e}");
            assert_eq!(
                e["counterpart"]["ip"], ip,
                "{kind}: the attacker is not named: {e}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
