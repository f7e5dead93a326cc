//! The real captures of `../shared/data/MANIFEST.json` (public IoT traffic and attacks kept
//! beside the checkout, never copied into it): `iotad features` must read every packet the
//! manifest counts and drop none as malformed at the link or network layer; `iotad eval`
//! with the built-in model must meet the detection targets. Skipped, loudly, where the data
//! is not beside the checkout (`IOTAD_SHARED_DATA` names another folder).

mod common;

use std::path::PathBuf;

use common::{run, s};

/// The manifest's folder and text, or `None` (and a loud skip message for `test`).
fn manifest(test: &str) -> Option<(PathBuf, String)> {
    let data = std::env::var_os("IOTAD_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let manifest = data.join("MANIFEST.json");
    match std::fs::read_to_string(&manifest) {
        Ok(text) => Some((data, text)),
        Err(_) => {
            eprintln!("\n*** SKIPPED {test}: no {} ***\n", manifest.display());
            None
        }
    }
}

#[test]
fn every_manifest_capture_runs_through_features() {
    let Some((data, text)) = manifest("every_manifest_capture_runs_through_features") else {
        return;
    };
    let m: serde_json::Value = serde_json::from_str(&text).expect("MANIFEST.json is JSON");
    let captures = m["captures"].as_array().expect("a captures list");
    assert!(!captures.is_empty());
    for c in captures {
        let file = data.join(c["file"].as_str().unwrap());
        let out = run(&["features", s(&file), "--stats", "--out", "/dev/null"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", file.display());
        let packets = c["packets"].as_u64().unwrap();
        assert!(
            err.contains(&format!(": {packets} packets,")),
            "{}: expected {packets} packets: {err}",
            file.display()
        );
        assert!(!err.contains("dropped"), "{}: {err}", file.display());
        let windows: u64 = err
            .lines()
            .find_map(|l| l.strip_prefix("rows written: "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(windows > 0, "{}", file.display());
    }
    eprintln!("{} manifest captures processed", captures.len());
}

/// Features an alert on each kind of attack must name among its explanation's.
fn drives(kind: &str) -> &'static [&'static str] {
    match kind {
        k if k.starts_with("port-scan")
            || k.starts_with("host-discovery")
            || k == "service-version-scan" =>
        {
            &[
                "remote_ports",
                "unanswered",
                "probes",
                "probes_slow",
                "syn_out",
                "remote_ips_syn",
                "udp_out",
                "arp_req_targets",
                "icmp_unreach_in",
            ]
        }
        // a spoofed flood may open with resets or anything else: its sources give it away
        "syn-flood" => &[
            "src_ips_out",
            "syn_out",
            "unanswered",
            "max_attempts_one_service",
            "small_pkts_out",
        ],
        "dns-tunnel" => &[
            "dns_name_len_mean",
            "dns_name_len_max",
            "dns_queries",
            "dns_names",
            "dns_entropy_mean",
            "dns_unusual_queries",
        ],
        "icmp-tunnel" => &["icmp_payload_out", "icmp_echo_out", "icmp_out"],
        // logins repeated to one service, which the device may never have used before
        "ssh-brute-force" | "ftp-brute-force" => &[
            "login_attempts",
            "login_attempts_slow",
            "max_attempts_one_service",
            "new_services",
            "new_service_pkts",
        ],
        "crypto-mining-stratum" => &["new_services", "new_service_pkts", "mining_msgs"],
        _ => &[],
    }
}

/// Captures of `../shared/data` that do not meet the detection targets yet (issue 12), with
/// what they measure now. The test still asserts every target on every other capture, and
/// fails when a capture listed here meets its targets (take it off the list) or when one not
/// listed misses one. This list only shrinks: a target is never loosened to pass.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// What keeps one capture's report from meeting the targets (empty when it meets them).
fn missed_targets(r: &serde_json::Value) -> Vec<String> {
    let m = &r["model"];
    let mut missed = Vec::new();
    let fa_per_day = m["false_alerts_per_device_hour"].as_f64().unwrap() * 24.0;
    if fa_per_day > 0.5 {
        missed.push(format!("{fa_per_day} false alerts per device-day"));
    }
    if r["kind"] != "benign" && m["attacks_alerted"] != m["attacks"] {
        // an attack capture's devices are all new: the population threshold must catch it
        missed.push(format!(
            "{} of {} attacks alerted",
            m["attacks_alerted"], m["attacks"]
        ));
    }
    if r["kind"] != "scenario" {
        return missed;
    }
    let slow = r["file"].as_str().unwrap().contains("slow");
    let auc = m["auc"].as_f64().unwrap();
    if auc < if slow { 0.95 } else { 0.99 } {
        missed.push(format!("AUC {auc}"));
    }
    // the first or second attack window (a second window starts at most 10 s after the
    // attack did); low-and-slow: within 10 minutes
    let delay = m["delay_s"].as_f64().unwrap_or(f64::INFINITY);
    if delay > if slow { 600.0 } else { 10.0 } {
        missed.push(format!("alerted after {delay} s"));
    }
    let above = m["attack_windows_above"].as_f64().unwrap();
    if !slow && above < 0.9 {
        missed.push(format!("{above} of attack windows above threshold"));
    }
    let named: Vec<&str> = m["first_alert_explanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let want = drives(r["attack"].as_str().unwrap());
    if !named.iter().any(|f| want.contains(f)) {
        missed.push(format!("the alert names {named:?}, none of {want:?}"));
    }
    // a scenario's victim on the LAN is alerted as the target, naming its attacker, and
    // never as anything else
    let (victims, targets) = (&r["victims"], &m["victims_alerted_as_targets"]);
    if targets != victims || m["targets_naming_the_attacker"] != *victims {
        missed.push(format!(
            "{targets} of {victims} victims alerted as targets, {} naming the attacker",
            m["targets_naming_the_attacker"]
        ));
    }
    if m["victim_alerts_not_as_target"] != 0 {
        missed.push(format!(
            "{} incidents on victims not as targets",
            m["victim_alerts_not_as_target"]
        ));
    }
    missed
}

/// Holds each report to the targets: a capture not in `gaps` must meet them, one in `gaps`
/// must still miss them (else it is taken off the list), and every gap must be a capture
/// that was evaluated. Known gaps are printed loudly.
fn judge(
    reports: &[serde_json::Value],
    gaps: &[(&str, &str)],
    missed: impl Fn(&serde_json::Value) -> Vec<String>,
) {
    let mut failures = Vec::new();
    for r in reports {
        let file = r["file"].as_str().unwrap();
        let missed = missed(r);
        match gaps.iter().find(|(f, _)| *f == file) {
            Some((_, was)) if missed.is_empty() => failures.push(format!(
                "{file} meets its targets now: take it off the known gaps (it was: {was})"
            )),
            Some((_, was)) => eprintln!(
                "*** KNOWN GAP {file}: {} (listed as: {was}) ***",
                missed.join("; ")
            ),
            None if !missed.is_empty() => failures.push(format!("{file}: {}", missed.join("; "))),
            None => {}
        }
    }
    for (gap, _) in gaps {
        if !reports.iter().any(|r| r["file"] == *gap) {
            failures.push(format!(
                "the known gaps name {gap}, which was not evaluated"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The detection targets, on the scenarios (a benign network, then one attack), the single
/// attack captures and the week-long benign captures: every capture of the manifest. On
/// the scenarios, every victim on the LAN is also alerted as the target, naming the
/// attacker (the single captures' other victims are stations of ARP sweeps that only
/// answered ARP, and stations the mining pools were reached through).
#[test]
fn detection_meets_its_targets_on_the_shared_captures() {
    let Some((data, text)) = manifest("detection_meets_its_targets_on_the_shared_captures") else {
        return;
    };
    let out = run(&["eval", s(&data.join("MANIFEST.json")), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        reports.len(),
        m["captures"].as_array().unwrap().len(),
        "every capture of the manifest is evaluated"
    );
    // no attack window is lost to attribution (issue 11): the attacker taken for a router,
    // evicted or forgotten while it attacked
    let lost: Vec<String> = reports
        .iter()
        .filter(|r| r["attack_windows_lost"] != 0)
        .map(|r| format!("{}: {}", r["file"], r["attack_windows_lost"]))
        .collect();
    assert!(
        lost.is_empty(),
        "attack windows lost to attribution: {lost:?}"
    );
    judge(&reports, KNOWN_GAPS, missed_targets);
}

/// Variants (`tests/variants.py`) that do not meet the targets yet (issue 12), with what they
/// measure now; as [`KNOWN_GAPS`], this list only shrinks.
const KNOWN_VARIANT_GAPS: &[(&str, &str)] = &[];

/// What keeps one variant from meeting the targets (empty when it meets them).
fn missed_variant_targets(r: &serde_json::Value) -> Vec<String> {
    let (file, m) = (r["file"].as_str().unwrap(), &r["model"]);
    let mut missed = Vec::new();
    if m["attacks_alerted"] != m["attacks"] {
        missed.push(format!(
            "{} of {} attacks alerted",
            m["attacks_alerted"], m["attacks"]
        ));
    }
    if m["false_alerts"] != 0 {
        missed.push(format!("{} false alerts", m["false_alerts"]));
    }
    let delay = m["delay_s"].as_f64().unwrap_or(f64::INFINITY);
    if delay > 10.0 {
        missed.push(format!("alerted after {delay} s"));
    }
    let above = m["attack_windows_above"].as_f64().unwrap();
    if above < 0.75 {
        missed.push(format!("{above} of attack windows alerted on"));
    }
    // the ARP sweep's last two requests spill into a window that looks like any device's
    match m["auc"].as_f64() {
        Some(auc) if auc < 0.99 && !file.starts_with("arpscan") => {
            missed.push(format!("AUC {auc}"))
        }
        None => missed.push("no attack window".into()),
        _ => {}
    }
    missed
}

/// The shared attacks replayed from new devices at other start times and by compromised
/// known devices (`tests/variants.py`): detection must hold beyond the given files.
#[test]
fn detection_holds_on_variants_of_the_shared_scenarios() {
    let test = "detection_holds_on_variants_of_the_shared_scenarios";
    let Some((data, _)) = manifest(test) else {
        return;
    };
    let tools = ["python3", "editcap", "mergecap"];
    if let Some(t) = tools.iter().find(|t| {
        std::process::Command::new(t)
            .arg("--version")
            .output()
            .is_err()
    }) {
        eprintln!("\n*** SKIPPED {test}: no {t} (Debian: python3, wireshark-common) ***\n");
        return;
    }
    let out = common::scratch("variants");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/variants.py");
    let built = std::process::Command::new("python3")
        .args([s(&script), s(&data), s(&out)])
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let mut reports = Vec::new();
    for set in ["new", "known"] {
        let eval = run(&["eval", s(&out.join(set).join("MANIFEST.json")), "--json"]);
        assert!(eval.status.success());
        let set: Vec<serde_json::Value> = serde_json::from_slice(&eval.stdout).unwrap();
        reports.extend(set);
    }
    // two starts for every attack capture, two compromised devices for each with a MAC
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("MANIFEST.json")).unwrap()).unwrap();
    let attacks = m["captures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "attack");
    let expected: usize = attacks
        .map(|c| 2 + 2 * usize::from(c["ground_truth"][0]["attacker"]["mac"].is_string()))
        .sum();
    assert_eq!(reports.len(), expected);
    judge(&reports, KNOWN_VARIANT_GAPS, missed_variant_targets);
    std::fs::remove_dir_all(&out).unwrap();
}

/// The real routers of the shared captures (issue 11): attribution keeps every one of them
/// and takes nothing else for a router (before, a scan's victim and a crypto-miner were).
const ROUTERS: &[(&str, &str)] = &[
    ("arpscan_slips-arp-only.pcap", "d8:58:d7:00:67:11"),
    ("benign_blink-cam-01.pcap", "00:1c:7f:53:d0:28"),
    ("benign_blink-cam-02.pcap", "00:1c:7f:53:d0:28"),
    ("benign_iphone_ndpi.pcap", "c6:2c:03:60:6a:64"),
    ("benign_lockly-hub-01.pcap", "00:1c:7f:53:d0:28"),
    (
        "benign_nest-thermostat_ndpi-nest-log-sink.pcap",
        "00:90:fb:26:27:6b",
    ),
    ("benign_schlage-lock-01.pcap", "00:1c:7f:53:d0:28"),
    (
        "cryptominer-stratum_ndpi-mining.pcapng",
        "7e:68:1b:5b:f8:14",
    ),
];

#[test]
fn the_real_routers_are_found_and_nothing_else() {
    let Some((data, text)) = manifest("the_real_routers_are_found_and_nothing_else") else {
        return;
    };
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    for c in m["captures"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let out = run(&["replay", s(&data.join(file)), "--no-model"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let found = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("gateways: "))
            .unwrap_or_else(|| panic!("{file}: no gateways line in {text}"));
        let want = match ROUTERS.iter().find(|(f, _)| *f == file) {
            Some((_, r)) => r,
            // the scenarios are built on the week-long captures' LAN
            None if file.starts_with("scenario-") => "00:1c:7f:53:d0:28",
            None => "none found",
        };
        assert_eq!(found, want, "{file}");
    }
}
