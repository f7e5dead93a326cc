//! The status page on a live interface: `iotad run` on a veth pair (as in daemon_live.rs)
//! fed a synthesized network with a port scan and a DHCP request with a hostile host name,
//! asked over HTTP with a plain `TcpStream`. Needs root, `ip` and `tcpreplay`; without them
//! the live test says so loudly and does nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::live::{cannot_run, free_port, Daemon, Veth};
use common::{iotad, s, scratch, synth};
use iotad::synth::frames::{dhcp_request, udp};
use iotad::wire::Mac;

const SCANNER: &str = "02:10:00:00:00:00";
const HOSTILE: &str = "<script>alert(1)</script>\"'";
const TOKEN: &str = "test-token-1234";

/// GET `path`: the status code and the body.
fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).expect("an answer");
    let status = out[9..12].parse().expect("a status line");
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// A capture of one DHCP request whose host name (option 12) and vendor class are hostile.
fn hostile_dhcp(path: &Path) {
    let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
    let mut out = cap.savefile(path).unwrap();
    let mac = Mac([0x02, 0x66, 0, 0, 0, 1]);
    let payload = dhcp_request(mac, 7, [192, 168, 1, 66].into(), HOSTILE, "v\"><img src=x>");
    let f = udp(
        mac,
        Mac([0xff; 6]),
        [0, 0, 0, 0].into(),
        [255, 255, 255, 255].into(),
        68,
        67,
        &payload,
    );
    for i in 0..3 {
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: 1_700_000_000,
                tv_usec: i,
            },
            caplen: f.bytes.len() as u32,
            len: f.bytes.len() as u32,
        };
        out.write(&pcap::Packet::new(&header, &f.bytes));
    }
    out.flush().unwrap();
}

/// The one `<svg class=chart …>…</svg>` of a device page.
fn chart(page: &str) -> Option<&str> {
    let at = page.find("<svg class=chart")?;
    Some(&page[at..at + page[at..].find("</svg>")? + 6])
}

/// The vertices of the polyline of `class` in `svg`.
fn vertices(svg: &str, class: &str) -> usize {
    let p = &svg[svg.find(&format!("<polyline class={class} ")).expect(class)..];
    let p = &p[p.find("points=\"").unwrap() + 8..];
    p[..p.find('"').unwrap()].split(' ').count()
}

/// The scanner's page charts its scored windows (a vertex per 5-minute bucket, as many as
/// `/api/devices` lists) against its threshold; the hostile name is text in the chart's title.
fn charts_on_a_live_interface(port: u16, t: Option<&str>) {
    let mut tries = 0;
    loop {
        let (_, devices) = get(port, "/api/devices", t);
        let devices: serde_json::Value = serde_json::from_str(&devices).unwrap();
        let scanner = devices
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["mac"] == SCANNER)
            .unwrap();
        let buckets = scanner["history"].as_array().expect("a history").len();
        assert!(buckets >= 1, "{scanner}");
        let (_, page) = get(port, &format!("/device/{SCANNER}"), t);
        let svg = chart(&page).expect("a chart on the scanner's page");
        assert!(vertices(svg, "th") >= 2, "a threshold line: {svg}");
        eprintln!(
            "the scanner's chart: {buckets} buckets, {} bytes",
            svg.len()
        );
        if vertices(svg, "sp") == buckets {
            break;
        }
        // a window closed in a new bucket between the two requests
        tries += 1;
        assert!(tries < 3, "{buckets} buckets, chart {svg}");
        std::thread::sleep(Duration::from_secs(1));
    }
    let (_, page) = get(port, "/device/02:66:00:00:00:01", t);
    let svg = chart(&page).expect("a chart on the hostile device's page");
    let title = &svg[svg.find("<title>").unwrap() + 7..svg.find("</title>").unwrap()];
    assert!(
        title.starts_with("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;:"),
        "{title}"
    );
    assert!(!title.contains('<'), "{title}");
}

#[test]
fn status_refuses_a_non_loopback_bind_without_a_token() {
    let dir = scratch("status-refuse");
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, r#"{"http": {"bind": "0.0.0.0:0"}}"#).unwrap();
    let out = iotad()
        .args(["run", "--config", s(&cfg), "--interface", "lo"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("http.token"), "the error names the key: {err}");
}

#[test]
fn status_page_api_and_metrics_on_a_live_interface() {
    if let Some(why) = cannot_run(&[], "") {
        eprintln!("\n*** SKIPPED status_page_api_and_metrics_on_a_live_interface: {why} ***\n");
        return;
    }
    let dir = scratch("status-live");
    let (net, dhcp) = (dir.join("net.pcap"), dir.join("dhcp.pcap"));
    synth(&net, 3, 30, 3, &[&format!("portscan@20:{SCANNER}")]);
    hostile_dhcp(&dhcp);
    let port = free_port();
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        format!(r#"{{"http": {{"bind": "127.0.0.1:{port}", "token": "{TOKEN}"}}}}"#),
    )
    .unwrap();
    let veth = Veth::new("s");
    let state = dir.join("state.json");
    let args = [
        "--config",
        s(&cfg),
        "--interface",
        &veth.capture,
        "--state",
        s(&state),
        "--learning-windows",
        "1",
    ];
    let d = Daemon::start(&dir, "status", &args);
    d.wait_for_log("status page on", Duration::from_secs(5));
    let t = Some(TOKEN);
    veth.play(&dhcp, 0.0);
    veth.play(&net, 1.0);
    let started = Instant::now();
    let anomalies = loop {
        let (code, body) = get(port, "/api/anomalies", t);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let scan = v.as_array().unwrap().iter().any(|e| {
            e["kind"] == "anomaly" && e["phase"] == "open" && e["device"]["mac"] == SCANNER
        });
        if scan {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no scan on /api/anomalies: {body}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    eprintln!(
        "{} events on /api/anomalies",
        anomalies.as_array().unwrap().len()
    );

    // access: without the token 401 (but /healthz), with it 200
    for path in ["/", "/api/status", "/metrics", "/api/devices"] {
        assert_eq!(get(port, path, None).0, 401, "{path}");
    }
    assert_eq!(get(port, "/healthz", None), (200, "ok\n".into()));

    for path in ["/api/status", "/api/devices"] {
        let (code, body) = get(port, path, t);
        assert_eq!(code, 200, "{path}");
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON");
    }
    let (_, devices) = get(port, "/api/devices", t);
    let devices: serde_json::Value = serde_json::from_str(&devices).unwrap();
    let hostile = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["mac"] == "02:66:00:00:00:01")
        .expect("the hostile device is listed");
    assert!(
        hostile["name"].as_str().unwrap().contains("<script>"),
        "{hostile}"
    );

    let (code, page) = get(port, "/", t);
    assert_eq!(code, 200);
    assert!(
        page.contains(SCANNER) && page.contains("anomaly (open)"),
        "{page}"
    );
    assert!(
        !page.contains("<script>") && !page.contains("<img"),
        "{page}"
    );
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    eprintln!("the page is {} bytes", page.len());
    let (code, one) = get(port, &format!("/device/{SCANNER}"), t);
    assert_eq!(code, 200);
    assert!(one.contains("anomaly (open)"), "{one}");
    let (code, one) = get(port, "/device/02:66:00:00:00:01", t);
    assert_eq!(code, 200);
    assert!(!one.contains("<script>"), "{one}");
    assert_eq!(get(port, "/device/02:00:00:00:00:99", t).0, 404);
    charts_on_a_live_interface(port, t);

    let (code, metrics) = get(port, "/metrics", t);
    assert_eq!(code, 200);
    for want in [
        "# HELP iotad_packets_total ",
        "# TYPE iotad_packets_total counter",
        "iotad_build_info{version=",
        &format!("iotad_device_score{{mac=\"{SCANNER}\""),
        "iotad_device_threshold{mac=",
        "iotad_anomalies_total{severity=",
        "iotad_kernel_dropped_packets_total{where=\"buffer\"}",
        "name=\"<script>alert(1)</script>\\\"'\"",
    ] {
        assert!(metrics.contains(want), "no {want:?} in {metrics}");
    }
    let metrics_file = dir.join("metrics.txt");
    std::fs::write(&metrics_file, &metrics).unwrap();
    let promtool = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("promtool check metrics < {}", s(&metrics_file)),
        ])
        .output();
    match promtool {
        Ok(o) if o.status.code() != Some(127) => assert!(
            o.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        _ => eprintln!(
            "\n*** SKIPPED promtool check metrics: no promtool (Debian: prometheus) ***\n"
        ),
    }

    // 200 idle connections do not keep a real request out
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let (code, _) = get(port, "/api/status", t);
    let took = t0.elapsed();
    eprintln!("a request behind 200 idle connections took {took:?}");
    assert_eq!(code, 200);
    assert!(took < Duration::from_secs(1), "{took:?}");
    drop(idle);

    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
}

#[test]
fn the_node_shows_the_socs_temperature_and_throttling() {
    if let Some(why) = cannot_run(&[], "") {
        eprintln!("\n*** SKIPPED the_node_shows_the_socs_temperature_and_throttling: {why} ***\n");
        return;
    }
    let dir = scratch("status-health");
    // a Pi's thermal zone and a firmware that reports under-voltage and throttling now
    let root = dir.join("root");
    let zone = root.join("sys/class/thermal/thermal_zone0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("temp"), "52300\n").unwrap();
    let vcgencmd = dir.join("vcgencmd");
    std::fs::write(&vcgencmd, "#!/bin/sh\necho throttled=0x50005\n").unwrap();
    std::process::Command::new("chmod")
        .args(["+x", s(&vcgencmd)])
        .status()
        .unwrap();
    let port = free_port();
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"http": {{"bind": "127.0.0.1:{port}"}},
                "tune": {{"at_start": false, "root": "{}", "vcgencmd": "{}"}}}}"#,
            root.display(),
            vcgencmd.display()
        ),
    )
    .unwrap();
    let veth = Veth::new("h");
    let state = dir.join("state.json");
    let d = Daemon::start(
        &dir,
        "health",
        &[
            "--config",
            s(&cfg),
            "--interface",
            &veth.capture,
            "--state",
            s(&state),
        ],
    );
    d.wait_for_log("throttles the CPU", Duration::from_secs(10));
    let (code, metrics) = get(port, "/metrics", None);
    assert_eq!(code, 200, "{metrics}");
    assert!(
        metrics.contains("\niotad_soc_temperature_celsius 52.3\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\niotad_throttled 1\n"), "{metrics}");
    let (_, page) = get(port, "/", None);
    assert!(
        page.contains("52.3 °C") && page.contains("<strong>throttled</strong>"),
        "{page}"
    );
    let (_, api) = get(port, "/api/status", None);
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(v["health"]["throttled"], true, "{api}");
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    assert!(log.contains("under-voltage"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}
