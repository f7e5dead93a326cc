//! `iotad bench`: how fast the pipeline runs on this machine, next to how fast libpcap alone
//! reads the same file, and how much memory a `features` run takes. What a user runs on their
//! Pi; the README's figures come from it. `--live` measures live capture instead
//! ([`live`]).

pub mod live;

use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cli::BenchArgs;
use crate::config::PipelineConfig;
use crate::engine::{Engine, Scored};
use crate::export::{Format, Row, WindowWriter};
use crate::ingest::Ingest;
use crate::synth::Scenario;

/// One timed pass over the capture.
#[derive(Clone, Copy, Debug, Default)]
struct Pass {
    secs: f64,
    packets: u64,
    bytes: u64,
    windows: u64,
}

impl Pass {
    fn pps(&self) -> f64 {
        self.packets as f64 / self.secs
    }
    fn mbps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs / 1e6
    }
}

/// The best (fastest) of `n` runs of `f`.
fn best_of(n: u32, mut f: impl FnMut() -> Result<Pass, String>) -> Result<Pass, String> {
    let mut best: Option<Pass> = None;
    for _ in 0..n.max(1) {
        let p = f()?;
        if best.is_none_or(|b| p.secs < b.secs) {
            best = Some(p);
        }
    }
    Ok(best.expect("at least one run"))
}

/// A bare `pcap_next_ex` loop: the floor of what reading costs.
fn libpcap_only(path: &Path) -> Result<Pass, String> {
    let start = Instant::now();
    let mut cap = pcap::Capture::from_file(path).map_err(|e| e.to_string())?;
    let mut pass = Pass::default();
    loop {
        match cap.next_packet() {
            Ok(p) => {
                pass.packets += 1;
                pass.bytes += u64::from(p.header.len);
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    pass.secs = start.elapsed().as_secs_f64();
    Ok(pass)
}

/// One timed pass of the engine (with `detector`, if any) over the capture; every scored
/// window goes to `on_window`.
fn timed(
    path: &Path,
    cfg: &PipelineConfig,
    detector: Option<crate::detect::Detector>,
    mut on_window: impl FnMut(Scored<'_>),
) -> Result<Pass, String> {
    let start = Instant::now();
    let mut source = Ingest::open_file(path, None).map_err(|e| e.to_string())?;
    let mut engine = Engine::new(cfg, source.link(), detector)?;
    let mut windows = 0u64;
    let mut emit = |w: Scored<'_>| {
        windows += 1;
        on_window(w);
    };
    while let Some(item) = source.next().map_err(|e| e.to_string())? {
        engine.item(&item, &mut emit);
    }
    engine.finish(&mut emit);
    std::hint::black_box(engine.drain_events().count());
    let st = engine.pipeline().stats();
    Ok(Pass {
        secs: start.elapsed().as_secs_f64(),
        packets: st.packets,
        bytes: st.bytes_wire,
        windows,
    })
}

/// Parse, attribute and update windows; closed windows are counted, or written as CSV to a
/// sink when `csv` is set (the whole `features` command minus the disk).
fn pipeline(path: &Path, cfg: &PipelineConfig, csv: bool) -> Result<Pass, String> {
    let mut writer =
        WindowWriter::new(BufWriter::new(io::sink()), Format::Csv).map_err(|e| e.to_string())?;
    timed(path, cfg, None, |w| {
        if csv {
            let _ = writer.write(&Row {
                capture: "bench",
                mac: w.device.mac,
                start_ns: w.start_ns,
                features: w.features,
            });
        }
    })
}

/// `iotad replay` without its output: the pipeline and the detector with `model`.
fn replay(path: &Path, cfg: &PipelineConfig, model: &crate::model::Model) -> Result<Pass, String> {
    use crate::detect::{DetectConfig, Detector};
    let det = Detector::new(
        model.clone(),
        DetectConfig::default(),
        cfg.max_devices,
        cfg.window_ns(),
    );
    timed(path, cfg, Some(det), |_| {})
}

pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    field("model name")
        .or_else(|| field("Model"))
        .or_else(|| field("CPU part").map(|p| format!("ARM part {p}")))
        .unwrap_or_else(|| "unknown".into())
}

/// The cpufreq governor of CPU 0, if the kernel exposes it.
pub fn governor() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "not exposed (no cpufreq)".into())
}

/// Peak RSS of `iotad features CAPTURE` run as a separate process.
fn features_rss(path: &Path) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .args(["features", "--stats", "--out", "/dev/null"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run iotad features: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.strip_prefix("peak RSS: "))
        .map(str::to_string)
        .ok_or_else(|| format!("iotad features did not report its memory: {err}"))
}

pub fn command(a: BenchArgs) -> Result<(), String> {
    // sizes that mean nothing are refused (0 packets printed NaN and "inf ns")
    if a.capture.is_none() && a.packets == 0 {
        return Err("--packets must be at least 1".into());
    }
    if a.capture.is_none() && a.devices == 0 {
        return Err("--devices must be at least 1".into());
    }
    if a.repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    if !(a.live_secs > 0.0 && a.live_secs <= 600.0) {
        return Err(format!(
            "--live-secs must be more than 0 and at most 600, not {}",
            a.live_secs
        ));
    }
    let mut tmp: Option<PathBuf> = None;
    let path = match &a.capture {
        Some(p) => p.clone(),
        None => {
            let p = std::env::temp_dir().join(format!("iotad-bench-{}.pcap", std::process::id()));
            // an interrupted benchmark leaves no capture behind (nor the file it is written
            // to first)
            let beside = crate::files::temporary_beside(&p);
            let mut doomed = vec![p.as_path()];
            doomed.extend(beside.as_deref());
            crate::files::remove_on_signal(&doomed);
            // the live benchmark injects at most this many frames (cycled)
            let packets = if a.live {
                a.packets.min(live::MAX_FRAMES as u64)
            } else {
                a.packets
            };
            eprintln!(
                "synthesizing {} packets from {} devices into {} ...",
                packets,
                a.devices,
                p.display()
            );
            let scenario = Scenario {
                seed: 1,
                devices: a.devices,
                duration_s: 30 * 86_400,
                max_packets: Some(packets),
                attacks: Vec::new(),
            };
            scenario.write(&p, None)?;
            tmp = Some(p.clone());
            p
        }
    };
    let result = if a.live {
        live::run(&path, a.live_secs)
    } else {
        run(&path, a.repeat)
    };
    if let Some(t) = tmp {
        let _ = std::fs::remove_file(t);
    }
    result
}

fn run(path: &Path, repeat: u32) -> Result<(), String> {
    let cfg = PipelineConfig::default();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "capture:   {} ({:.1} MB)",
        path.display(),
        size as f64 / 1e6
    );
    println!(
        "cpu:       {} ({} cores), governor {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        governor()
    );
    println!(
        "build:     {} {}",
        std::env::consts::ARCH,
        if cfg!(debug_assertions) {
            "debug (numbers mean little)"
        } else {
            "release"
        }
    );
    // warm the page cache so that every pass reads from memory
    libpcap_only(path)?;
    let base = best_of(repeat, || libpcap_only(path))?;
    if base.packets == 0 {
        return Err(format!("{}: no packets to measure", path.display()));
    }
    let windows = best_of(repeat, || pipeline(path, &cfg, false))?;
    let full = best_of(repeat, || pipeline(path, &cfg, true))?;
    let model = crate::model::file::built_in()?;
    let replayed = best_of(repeat, || replay(path, &cfg, &model))?;
    println!(
        "packets:   {}  ({:.1} MB on the wire)",
        base.packets,
        base.bytes as f64 / 1e6
    );
    println!(
        "{:<34} {:>12} {:>10} {:>12} {:>8}",
        "best of ".to_string() + &repeat.to_string(),
        "packets/s",
        "Mbit/s",
        "windows/s",
        "ratio"
    );
    let line = |name: &str, p: &Pass| {
        let windows = if p.windows > 0 {
            format!("{:.0}", p.windows as f64 / p.secs)
        } else {
            "-".into()
        };
        println!(
            "{name:<34} {:>12.0} {:>10.0} {:>12} {:>8.2}",
            p.pps(),
            p.mbps(),
            windows,
            p.pps() / base.pps()
        );
    };
    line("libpcap read (pcap_next_ex)", &base);
    line("parse + devices + windows", &windows);
    line("features (+ CSV to a sink)", &full);
    line(
        &format!("replay (+ model, {})", model.kernel.name()),
        &replayed,
    );
    println!(
        "per packet: {:.0} ns libpcap, {:.0} ns features, {:.0} ns replay",
        1e9 / base.pps(),
        1e9 / full.pps(),
        1e9 / replayed.pps()
    );
    match features_rss(path) {
        Ok(rss) => println!("peak RSS of `iotad features` on this capture: {rss}"),
        Err(e) => println!("peak RSS: not measured ({e})"),
    }
    model_steps(repeat)
}

/// Microseconds per device-step of the built-in model with each kernel, for one device
/// stepped alone and for 64 devices stepped as one batch (states loaded and stored as the
/// detector does), single-threaded.
fn model_steps(repeat: u32) -> Result<(), String> {
    use crate::model::MAX_BATCH;
    use crate::window::F;
    let built_in = crate::model::file::built_in()?;
    println!(
        "model step (built-in model, LSTM {} -> RNN {}; candle threads {}; {}):",
        built_in.meta.sizes.lstm,
        built_in.meta.sizes.rnn,
        candle_core::utils::get_num_threads(),
        target_features()
    );
    let mut rng = crate::math::Rng::new(5);
    let inputs: Vec<[f32; F]> = (0..MAX_BATCH)
        .map(|_| {
            let mut x = [0f32; F];
            for v in x.iter_mut() {
                *v = (rng.range(0, 2000) as f32 - 1000.0) / 500.0;
            }
            x
        })
        .collect();
    for (kind, what) in [
        ("f32", "plain Rust loop"),
        ("q8_0", "int8 blocks, ours, the default"),
        ("candle", "candle's k_quants::matmul"),
    ] {
        let m = built_in.with_kernel(kind)?;
        let mut s = m.scratch();
        let mut line = format!("  {:<44}", format!("{}: {what}", m.kernel.name()));
        for batch in [1usize, MAX_BATCH] {
            let mut states: Vec<_> = (0..batch).map(|_| m.state()).collect();
            let mut preds = vec![[0f32; F]; batch];
            let rounds = 200_000 / batch;
            let mut best = f64::INFINITY;
            for _ in 0..repeat.max(1) {
                let start = Instant::now();
                for _ in 0..rounds {
                    for (i, st) in states.iter().enumerate() {
                        s.load(i, st, &inputs[i]);
                    }
                    m.forward(batch, &mut s);
                    for (i, (st, p)) in states.iter_mut().zip(preds.iter_mut()).enumerate() {
                        s.store(i, st, p);
                    }
                }
                best = best.min(start.elapsed().as_secs_f64() / (rounds * batch) as f64 * 1e6);
                std::hint::black_box(&preds);
            }
            line += &format!("  batch {batch:>2}: {best:>5.2} us");
        }
        println!("{line}  per device-step");
    }
    Ok(())
}

/// The SIMD features this build was compiled for (`-C target-cpu` widens them).
fn target_features() -> String {
    let f: Vec<&str> = [
        ("avx2", cfg!(target_feature = "avx2")),
        ("fma", cfg!(target_feature = "fma")),
        ("avx512f", cfg!(target_feature = "avx512f")),
        ("neon", cfg!(target_feature = "neon")),
        ("dotprod", cfg!(target_feature = "dotprod")),
    ]
    .into_iter()
    .filter_map(|(n, on)| on.then_some(n))
    .collect();
    if f.is_empty() {
        "baseline SIMD".into()
    } else {
        format!("compiled for {}", f.join(", "))
    }
}
