//! The model end to end: it learns a synthesized network and flags an injected scan far
//! above threshold, its file round-trips exactly, and broken or foreign model files are
//! refused with a clear error.

mod common;

use common::{ok, run, s, scratch, synth};
use iotad::model::file;

/// Trains a small model on two hours of a synthesized network (a few seconds).
fn trained(dir: &std::path::Path) -> std::path::PathBuf {
    let pcap = dir.join("normal.pcap");
    synth(&pcap, 31, 7200, 6, &[]);
    let model = dir.join("m.safetensors");
    ok(&[
        "train",
        s(&pcap),
        "--out",
        s(&model),
        "--epochs",
        "6",
        "--seed",
        "4",
    ]);
    model
}

#[test]
fn learns_normal_traffic_and_flags_a_scan() {
    let dir = scratch("model-learns");
    let model = trained(&dir);
    let m = file::load(&model).unwrap();
    assert_eq!(m.meta.training.devices, 6);
    assert!(
        m.meta.training.validation_loss < 0.6,
        "{}",
        m.meta.training.validation_loss
    );

    // another day of the same network, the plug scanning after an hour of learning
    let pcap = dir.join("attack.pcap");
    synth(&pcap, 32, 5400, 6, &["portscan@4200:02:10:01:00:00:01"]);
    let out = ok(&["replay", s(&pcap), "--model", s(&model), "--json"]);
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["kind"] == "anomaly")
        .collect();
    let opens: Vec<&serde_json::Value> = events.iter().filter(|e| e["phase"] == "open").collect();
    let scan = opens
        .iter()
        .find(|e| e["device"]["mac"] == "02:10:01:00:00:01")
        .expect("the scanner is alerted");
    let t0 = 1_704_067_200 + 4200;
    let at = scan["window_start_epoch"].as_u64().unwrap();
    assert!(
        (t0..t0 + 20).contains(&at),
        "alerted in the first or second attack window, not at {at}"
    );
    assert!(
        scan["score"].as_f64().unwrap() > 1.5 * scan["threshold"].as_f64().unwrap(),
        "{scan}"
    );
    let named: Vec<&str> = scan["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["feature"].as_str().unwrap())
        .collect();
    assert!(
        named.iter().any(|f| [
            "remote_ports",
            "syn_out",
            "unanswered",
            "rst_in",
            "remote_ips_syn",
            "small_pkts_out",
            "max_attempts_one_service",
            "local_ports"
        ]
        .contains(f)),
        "{named:?}"
    );
    assert!(scan["explanation"][0]["text"]
        .as_str()
        .unwrap()
        .contains("expected about"));
    // one incident per device, closed afterwards
    assert!(events
        .iter()
        .any(|e| e["phase"] == "close" && e["incident"] == scan["incident"]));
    // the same replay twice gives the same output
    assert_eq!(
        out,
        ok(&["replay", s(&pcap), "--model", s(&model), "--json"])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn model_files_round_trip_and_bad_ones_are_refused() {
    let dir = scratch("model-files");
    let model = trained(&dir);
    let m = file::load(&model).unwrap();
    let again = dir.join("again.safetensors");
    file::save(&m, &again).unwrap();
    let m2 = file::load(&again).unwrap();
    assert_eq!(m.weights, m2.weights);
    assert_eq!(m.meta, m2.meta);
    // identical scores from both
    let pcap = dir.join("normal.pcap");
    assert_eq!(
        ok(&["replay", s(&pcap), "--model", s(&model), "--json"]),
        ok(&["replay", s(&pcap), "--model", s(&again), "--json"])
    );

    let bytes = std::fs::read(&model).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = String::from_utf8(run(&["replay", s(&pcap), "--model", s(&cut)]).stderr).unwrap();
    assert!(
        err.contains("cut.safetensors") && err.contains("not a safetensors model file"),
        "{err}"
    );

    let mut wrong = m.clone();
    wrong.meta.format_version = 99;
    file::save(&wrong, &dir.join("v99.safetensors")).unwrap();
    assert!(file::load(&dir.join("v99.safetensors"))
        .unwrap_err()
        .contains("format version 99"));

    let mut other = m.clone();
    other.meta.features[3] = "bytes_sideways".into();
    file::save(&other, &dir.join("other.safetensors")).unwrap();
    assert!(file::load(&dir.join("other.safetensors"))
        .unwrap_err()
        .contains("retrain it"));

    let mut nan = m;
    nan.weights.out_w[0] = f32::NAN;
    file::save(&nan, &dir.join("nan.safetensors")).unwrap();
    assert!(file::load(&dir.join("nan.safetensors"))
        .unwrap_err()
        .contains("not finite"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_is_deterministic_and_single_threaded() {
    let dir = scratch("model-determinism");
    let pcap = dir.join("n.pcap");
    synth(&pcap, 8, 3600, 4, &[]);
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    let out = run(&["train", s(&pcap), "--out", s(&a), "--epochs", "2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("candle threads: 1"));
    ok(&["train", s(&pcap), "--out", s(&b), "--epochs", "2"]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn quantized_gguf_follows_the_f32_model() {
    let dir = scratch("model-gguf");
    let gguf = dir.join("m.gguf");
    let f32_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/iotad.safetensors");
    let out = ok(&["quantize", "--model", s(&f32_file), "--out", s(&gguf)]);
    assert!(out.contains("the same"), "{out}");
    let r: f64 = out
        .split("Pearson r of scores ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(r >= 0.99, "{out}");
    let q = file::load(&gguf).unwrap();
    assert!(
        matches!(q.kernel, iotad::model::Kernel::Q8(_)),
        "a Q8_0 file steps with Q8_0 blocks"
    );
    // the shipped model is exactly the quantized f32 model
    assert_eq!(std::fs::read(&gguf).unwrap(), file::BUILT_IN);
    let f = file::load(&f32_file).unwrap();
    assert_eq!(q.meta, f.meta);
    let worst = q
        .weights
        .lstm_ih
        .iter()
        .zip(&f.weights.lstm_ih)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst > 0.0 && worst < 0.01,
        "Q8_0 rounding of the weights: {worst}"
    );
    // replays with the GGUF file repeat exactly, and equal the built-in model's
    let pcap = dir.join("n.pcap");
    synth(&pcap, 3, 1200, 4, &["portscan@700:02:10:00:00:00:00"]);
    let replay = |extra: &[&str]| {
        let mut args = vec!["replay", s(&pcap), "--json", "--learning-windows", "30"];
        args.extend(extra);
        ok(&args)
    };
    let a = replay(&["--model", s(&gguf)]);
    assert!(a.contains("\"kind\":\"anomaly\""));
    assert_eq!(a, replay(&["--model", s(&gguf)]));
    assert_eq!(a, replay(&[]));
    // stepped in f32 on request: other scores, the same incidents
    let f = replay(&["--f32"]);
    assert_ne!(f, a);
    let opens = |out: &str| -> Vec<(String, u64)> {
        out.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["phase"] == "open")
            .map(|e| {
                (
                    e["device"]["mac"].as_str().unwrap().to_string(),
                    e["window_start_epoch"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert!(!opens(&a).is_empty());
    assert_eq!(opens(&f), opens(&a));
    // a GGUF is not quantized again
    let err = run(&[
        "quantize",
        "--model",
        s(&gguf),
        "--out",
        s(&dir.join("x.gguf")),
    ]);
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("already quantized"),
        "{err:?}"
    );
    // a cut GGUF is refused
    let bytes = std::fs::read(&gguf).unwrap();
    let cut = dir.join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let err = file::load(&cut).unwrap_err();
    assert!(err.contains("cut.gguf"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
