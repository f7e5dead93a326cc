//! `iotad bench --live`: live capture on a veth pair made for the purpose. One end is
//! captured as `iotad run` captures (its options from the configuration's defaults, the
//! engine with the built-in model on its own thread); frames of a capture are injected into
//! the other end with libpcap at rising rates, until the kernel drops a packet or the
//! injector cannot go faster. Prints each rate with the kernel's counters, then the highest
//! rate with no drop. Needs root (or CAP_NET_ADMIN and CAP_NET_RAW): it creates the pair and
//! deletes it when done.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::capture::{CaptureStats, LinkType, LiveOptions, Source};
use crate::config::Config;
use crate::detect::{DetectConfig, Detector};
use crate::engine::Engine;

/// Frames kept in memory to inject (cycled).
pub const MAX_FRAMES: usize = 100_000;
/// The rates tried, packets per second, lowest first.
const RATES: [u64; 12] = [
    10_000, 20_000, 50_000, 100_000, 200_000, 300_000, 500_000, 700_000, 1_000_000, 1_500_000,
    2_000_000, 3_000_000,
];
/// A rate the injector reaches at less than this share of its target is its top.
const REACHED: f64 = 0.9;

/// A veth pair, deleted when dropped.
struct Pair {
    capture: String,
    inject: String,
}

impl Pair {
    fn new() -> Result<Pair, String> {
        let id = std::process::id() % 100_000;
        let p = Pair {
            capture: format!("ibc{id}"),
            inject: format!("ibi{id}"),
        };
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`ip {}` failed (the live benchmark needs root, or CAP_NET_ADMIN): {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        ip(&[
            "link", "add", &p.capture, "type", "veth", "peer", "name", &p.inject,
        ])?;
        // from here on, dropping `p` deletes the pair
        for i in [&p.capture, &p.inject] {
            // no IPv6 autoconfiguration: only the injected frames cross the link
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{i}/disable_ipv6"), "1");
            ip(&["link", "set", i, "up"])?;
        }
        Ok(p)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.capture])
            .output();
    }
}

/// One rate tried.
#[derive(Clone, Copy, Debug)]
struct Step {
    target_pps: u64,
    sent: u64,
    sent_pps: f64,
    /// Packets the engine processed.
    processed: u64,
    kernel: CaptureStats,
}

/// The Ethernet frames of `path`, up to [`MAX_FRAMES`].
fn frames(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let mut src = Source::open_file(path, None).map_err(|e| e.to_string())?;
    if src.link() != LinkType::Ethernet {
        return Err(format!(
            "{}: the live benchmark injects Ethernet frames; this capture is {:?}",
            path.display(),
            src.link()
        ));
    }
    let mut out = Vec::new();
    while let Some(p) = src.next().map_err(|e| e.to_string())? {
        out.push(p.data.to_vec());
        if out.len() == MAX_FRAMES {
            break;
        }
    }
    if out.is_empty() {
        return Err(format!("{}: no packets to inject", path.display()));
    }
    Ok(out)
}

/// Captures `iface` with the engine until `stop` is set and the capture is drained; returns
/// the packets processed and the kernel's counters.
fn capture(
    iface: &str,
    opt: &LiveOptions,
    stop: &AtomicBool,
    ready: &AtomicBool,
) -> Result<(u64, CaptureStats), String> {
    let mut src = Source::open_live(iface, opt).map_err(|e| e.to_string())?;
    let cfg = Config::default();
    let model = crate::model::file::built_in()?;
    let det = Detector::new(
        model,
        DetectConfig::default(),
        cfg.pipeline.max_devices,
        cfg.pipeline.window_ns(),
    );
    let mut engine = Engine::new(&cfg.pipeline, src.link(), Some(det))?;
    ready.store(true, Ordering::Release);
    let mut idle_since_stop = 0;
    loop {
        let mut got = false;
        while let Some(p) = src.next().map_err(|e| e.to_string())? {
            engine.packet(&p, &mut |_| {});
            got = true;
        }
        std::hint::black_box(engine.drain_events().count());
        if stop.load(Ordering::Acquire) {
            // the injector is done: a few quiet polls and the buffer is empty
            idle_since_stop = if got { 0 } else { idle_since_stop + 1 };
            if idle_since_stop >= 5 {
                break;
            }
        }
        src.wait(Duration::from_millis(20));
    }
    let processed = engine.pipeline().stats().packets;
    let kernel = src.stats().unwrap_or_default();
    Ok((processed, kernel))
}

/// Injects `frames` (cycled) into `iface` at `pps` for `secs`; returns how many went out and
/// the rate reached.
fn inject(iface: &str, frames: &[Vec<u8>], pps: u64, secs: f64) -> Result<(u64, f64), String> {
    let mut cap = pcap::Capture::from_device(iface)
        .and_then(|c| c.open())
        .map_err(|e| format!("cannot open {iface} to inject: {e}"))?;
    let total = (pps as f64 * secs) as u64;
    let start = Instant::now();
    let mut sent = 0u64;
    // send in batches of a millisecond's worth, each at its scheduled time
    let batch = (pps / 1000).max(1);
    while sent < total {
        let due = Duration::from_secs_f64(sent as f64 / pps as f64);
        let now = start.elapsed();
        if now < due {
            std::thread::sleep(due - now);
        }
        for _ in 0..batch.min(total - sent) {
            let f = &frames[(sent % frames.len() as u64) as usize];
            cap.sendpacket(&f[..])
                .map_err(|e| format!("cannot inject into {iface}: {e}"))?;
            sent += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((sent, sent as f64 / secs))
}

/// One rate: a fresh capture, the injection, the capture drained.
fn step(
    pair: &Pair,
    opt: &LiveOptions,
    frames: &[Vec<u8>],
    pps: u64,
    secs: f64,
) -> Result<Step, String> {
    let (stop, ready) = (AtomicBool::new(false), AtomicBool::new(false));
    let (captured, sent) = std::thread::scope(|scope| {
        let th = scope.spawn(|| capture(&pair.capture, opt, &stop, &ready));
        while !ready.load(Ordering::Acquire) && !th.is_finished() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let sent = if th.is_finished() {
            Err("the capture ended before the injection".to_string())
        } else {
            inject(&pair.inject, frames, pps, secs)
        };
        stop.store(true, Ordering::Release);
        let captured = th
            .join()
            .map_err(|_| "the capture thread panicked".to_string());
        (captured, sent)
    });
    let (processed, kernel) = captured??;
    let (sent, sent_pps) = sent?;
    Ok(Step {
        target_pps: pps,
        sent,
        sent_pps,
        processed,
        kernel,
    })
}

/// Runs the ladder of rates on a new veth pair and prints it.
pub fn run(path: &Path, secs: f64) -> Result<(), String> {
    let frames = frames(path)?;
    let pair = Pair::new()?;
    let opt = crate::daemon::live_options(&Config::default());
    println!(
        "live capture on a veth pair ({} <- {}), {} frames of {} cycled, {secs} s per rate; snaplen {}, buffer {} MiB, {}",
        pair.capture,
        pair.inject,
        frames.len(),
        path.display(),
        opt.snaplen,
        opt.buffer_mib,
        if opt.immediate { "immediate mode" } else { "batched delivery" }
    );
    println!(
        "{:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "target pps", "sent pps", "sent", "processed", "dropped", "if-dropped"
    );
    let mut best: Option<Step> = None;
    let mut top = 0f64;
    for pps in RATES {
        let s = step(&pair, &opt, &frames, pps, secs)?;
        println!(
            "{:>12} {:>12.0} {:>10} {:>10} {:>10} {:>10}",
            s.target_pps, s.sent_pps, s.sent, s.processed, s.kernel.dropped, s.kernel.if_dropped
        );
        top = top.max(s.sent_pps);
        let clean = s.kernel.dropped == 0 && s.kernel.if_dropped == 0 && s.processed >= s.sent;
        if !clean {
            break;
        }
        best = Some(s);
        if s.sent_pps < REACHED * pps as f64 {
            break;
        }
    }
    match best {
        Some(b) => println!(
            "live: {:.0} packets/s captured and processed with 0 kernel drops (the injector's top here: {top:.0} packets/s)",
            b.sent_pps
        ),
        None => println!("live: drops at every rate tried (from {} packets/s)", RATES[0]),
    }
    Ok(())
}
