//! Helpers shared by the integration tests: running the real binary, scratch directories.
#![allow(dead_code)]

pub mod live;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `iotad` binary cargo built for these tests.
pub fn iotad() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotad"))
}

/// Runs `iotad` with `args`; panics with its stderr when it fails to start.
pub fn run(args: &[&str]) -> Output {
    iotad()
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("iotad runs")
}

/// Runs `iotad` and insists on success.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "iotad {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iotad-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Synthesizes a network with `iotad synth` into `out`: `devices` devices for `seconds`
/// seconds from `seed`, with one `--attack` per spec in `attacks`.
pub fn synth(out: &Path, seed: u64, seconds: u64, devices: u32, attacks: &[&str]) {
    let (seed, seconds, devices) = (seed.to_string(), seconds.to_string(), devices.to_string());
    let mut args = vec![
        "synth",
        "--out",
        s(out),
        "--seed",
        &seed,
        "--duration",
        &seconds,
        "--devices",
        &devices,
    ];
    for a in attacks {
        args.extend(["--attack", a]);
    }
    ok(&args);
}
