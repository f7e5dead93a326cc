//! `iotad eval` on a manifest of our own: a synthesized capture that opens with an attack is
//! taken as arriving on a network that has learned, so its devices are all new and the
//! built-in model's population threshold is what catches the attacker.

mod common;

use common::{ok, s, scratch, synth};

#[test]
fn a_capture_that_opens_with_an_attack_is_judged_on_the_population_threshold() {
    let dir = scratch("eval-manifest");
    let pcap = dir.join("opens-with-a-scan.pcap");
    // ten minutes of a small network; the plug scans from its first minute on
    synth(&pcap, 41, 600, 4, &["portscan@60:02:10:01:00:00:01"]);
    let t0 = 1_704_067_200.0 + 60.0;
    let manifest = dir.join("MANIFEST.json");
    let text = serde_json::json!({
        "captures": [{
            "file": pcap.file_name().unwrap().to_str().unwrap(),
            "type": "attack",
            "ground_truth": [{
                "kind": "port-scan-tcp-syn",
                "attacker": {"mac": "02:10:01:00:00:01"},
                "victim": {},
                "filter": "eth.src==02:10:01:00:00:01 && tcp",
                "time_range": {"start_epoch": t0, "end_epoch": t0 + 30.0}
            }]
        }]
    });
    std::fs::write(&manifest, text.to_string()).unwrap();
    let out = ok(&["eval", s(&manifest), "--json"]);
    let reports: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let r = &reports[0];
    assert_eq!(
        r["learning_windows"], 0,
        "nothing to learn before the attack"
    );
    let m = &r["model"];
    assert_eq!(m["attacks_alerted"], 1, "{m}");
    let delay = m["delay_s"].as_f64().unwrap();
    assert!(delay <= 10.0, "alerted after {delay} s");
    // the other devices are new too, and as ordinary as the ones the model learned from
    assert!(r["negative_windows"].as_u64().unwrap() > 100, "{r}");
    assert_eq!(m["false_alerts"], 0, "{m}");
}
