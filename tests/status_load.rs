//! The status page under load, on a live daemon: a synthesized capture replayed at full
//! speed (tcpreplay onto a veth pair) twice, once quiet and once while four clients make
//! 10,000 requests to `/` and `/metrics`; every request is answered, and the kernel's drops
//! of both runs are printed (the README quotes them: drops depend on this machine's load, so
//! they are figures, not asserts). Then 500 idle connections and a slowloris client (one
//! byte of its head every 200 ms) do not keep a normal request from being answered, and
//! the daemon's RSS stays bounded. Needs root, `ip` and `tcpreplay`; without them it says so
//! loudly and does nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::live::{cannot_run, count_before, free_port, Daemon, Veth};
use common::{s, scratch, synth};

/// Waits for the daemon's first snapshot (before it, every page is 503 "starting").
fn ready(port: u16) {
    let t = Instant::now();
    while get(port, "/healthz") != 200 {
        assert!(t.elapsed() < Duration::from_secs(10), "no snapshot");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GET `path`: the status code (0: no answer).
fn get(port: u16, path: &str) -> u16 {
    let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return 0;
    }
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    out.get(9..12)
        .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok())
        .unwrap_or(0)
}

/// One replay of `pcap` at full speed under a fresh daemon, with `load` running meanwhile;
/// returns (received, dropped by the kernel) from its exit summary, and the daemon's log.
fn replay(
    dir: &std::path::Path,
    tag: &str,
    pcap: &std::path::Path,
    load: Option<&(dyn Fn(u16) -> (usize, usize) + Sync)>,
) -> (u64, u64, Option<(usize, usize)>, String) {
    let port = free_port();
    let cfg = dir.join(format!("{tag}.json"));
    let state = dir.join(format!("state-{}.json", port));
    std::fs::write(
        &cfg,
        format!(
            r#"{{"http": {{"bind": "127.0.0.1:{port}"}}, "state": {{"file": "{}"}}}}"#,
            s(&state)
        ),
    )
    .unwrap();
    let veth = Veth::new(tag);
    let d = Daemon::start(
        dir,
        tag,
        &["--config", s(&cfg), "--interface", &veth.capture],
    );
    d.wait_for_log("status page on", Duration::from_secs(5));
    ready(port);
    let answered = std::thread::scope(|sc| {
        let h = load.map(|l| sc.spawn(move || l(port)));
        let t = Instant::now();
        // ten times over: long enough for the load to run beside it
        let out = std::process::Command::new("tcpreplay")
            .args(["-q", "--topspeed", "--loop=10", "-i", &veth.inject, s(pcap)])
            .output()
            .expect("tcpreplay runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{tag}: the replay took {:?}", t.elapsed());
        h.map(|h| h.join().unwrap())
    });
    std::thread::sleep(Duration::from_secs(1));
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    let received = count_before(&log, "received and");
    let dropped = count_before(&log, "dropped by the kernel");
    (received, dropped, answered, log)
}

#[test]
fn status_page_holds_under_load_while_capture_runs() {
    if let Some(why) = cannot_run(&[], "") {
        eprintln!("\n*** SKIPPED status_page_holds_under_load_while_capture_runs: {why} ***\n");
        return;
    }
    let dir = scratch("status-load");
    let pcap = dir.join("net.pcap");
    synth(&pcap, 9, 900, 6, &[]);
    let size = std::fs::metadata(&pcap).unwrap().len();

    let (rx0, drop0, _, _) = replay(&dir, "lq", &pcap, None);
    let load = |port: u16| {
        let t = Instant::now();
        let codes: Vec<u16> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|i| {
                    sc.spawn(move || {
                        let path = if i % 2 == 0 { "/" } else { "/metrics" };
                        (0..2500).map(|_| get(port, path)).collect::<Vec<u16>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut by_code = std::collections::BTreeMap::new();
        for c in &codes {
            *by_code.entry(*c).or_insert(0) += 1;
        }
        eprintln!("answers by status (0: none): {by_code:?}");
        let ok = codes.iter().filter(|c| **c == 200).count();
        eprintln!(
            "10,000 requests in {:?} ({:.0}/s)",
            t.elapsed(),
            10_000.0 / t.elapsed().as_secs_f64()
        );
        (ok, 10_000)
    };
    let (rx1, drop1, answered, log) = replay(&dir, "ll", &pcap, Some(&load));
    let (ok, of) = answered.unwrap();
    eprintln!(
        "capture of {size} bytes at full speed: quiet {drop0} of {rx0} dropped by the kernel; \
         under 10,000 requests {drop1} of {rx1} dropped"
    );
    assert_eq!(ok, of, "every request answered 200\n{log}");

    // 500 idle connections and a slowloris client; a normal request still gets through
    let port = free_port();
    let cfg = dir.join("slow.json");
    let state = dir.join(format!("state-{}.json", port));
    std::fs::write(
        &cfg,
        format!(
            r#"{{"http": {{"bind": "127.0.0.1:{port}"}}, "state": {{"file": "{}"}}}}"#,
            s(&state)
        ),
    )
    .unwrap();
    let veth = Veth::new("ls");
    let d = Daemon::start(
        &dir,
        "slow",
        &["--config", s(&cfg), "--interface", &veth.capture],
    );
    d.wait_for_log("status page on", Duration::from_secs(5));
    ready(port);
    assert_eq!(get(port, "/"), 200);
    let rss_before = d.rss_kb();
    let stop = Arc::new(AtomicBool::new(false));
    let halt = Arc::clone(&stop);
    let slowloris = std::thread::spawn(move || {
        let mut sent = 0;
        while !halt.load(Ordering::Relaxed) {
            let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            for b in b"GET / HTTP/1.1\r\nX-a: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" {
                if halt.load(Ordering::Relaxed) || c.write_all(&[*b]).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        sent
    });
    let idle: Vec<TcpStream> = (0..500)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        assert_eq!(
            get(port, "/"),
            200,
            "a normal request behind 500 idle connections"
        );
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss_after = d.rss_kb();
    stop.store(true, Ordering::Relaxed);
    let bytes = slowloris.join().unwrap();
    eprintln!(
        "{} idle connections and a slowloris client ({bytes} bytes sent): the slowest of 10 \
         requests took {worst:?}; RSS {rss_before} kB before, {rss_after} kB after",
        idle.len()
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS grew from {rss_before} to {rss_after} kB"
    );
    drop(idle);
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
}
