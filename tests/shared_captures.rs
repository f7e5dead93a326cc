//! `iotad features` over every real capture in `../shared/data/MANIFEST.json` (public IoT
//! traffic and attacks kept beside the checkout, never copied into it): each must run
//! without error, read every packet the manifest counts, and drop none as malformed at the
//! link or network layer. Skipped, loudly, where the data is not beside the checkout
//! (`IOTAD_SHARED_DATA` names another folder).

mod common;

use std::path::PathBuf;

use common::{run, s};

#[test]
fn every_manifest_capture_runs_through_features() {
    let data = std::env::var_os("IOTAD_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let manifest = data.join("MANIFEST.json");
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        eprintln!(
            "\n*** SKIPPED every_manifest_capture_runs_through_features: no {} ***\n",
            manifest.display()
        );
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
