//! The status page's actions on a live daemon (`iotad run` on a veth pair fed a synthesized
//! network): name a device, mute it, relearn it, forget it, as POST forms carrying the access
//! token and the page's CSRF token, over a plain `TcpStream`. A GET changes nothing, a POST
//! without either token is refused, and what was done persists in the saved state across a
//! restart. Then visibility: the daemon on a veth pair fed only broadcast and its own
//! host's traffic warns that it is blind (log, `/api/status`, `/metrics`, `iotad tune
//! --dry-run`); fed other stations' unicast traffic it does not. Needs root, `ip` and
//! `tcpreplay`; without them each test says so loudly and does nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::live::{cannot_run, free_port, Daemon, Veth};
use common::{iotad, s, scratch, synth};
use iotad::synth::frames::udp;
use iotad::wire::Mac;

const TOKEN: &str = "test-token-5678";
const DEVICE: &str = "02:10:01:00:00:01";

/// One request: the status code, the headers and the body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    form: Option<&str>,
) -> (u16, String, String) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = form.unwrap_or("");
    let kind = if form.is_some() {
        "Content-Type: application/x-www-form-urlencoded\r\n"
    } else {
        ""
    };
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}{kind}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).expect("an answer");
    let status = out[9..12].parse().expect("a status line");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (status, head.to_string(), body.to_string())
}

/// The CSRF token of the device page's forms.
fn csrf_of(port: u16, page_path: &str) -> String {
    let (code, _, page) = request(port, "GET", page_path, Some(TOKEN), None);
    assert_eq!(code, 200, "{page}");
    page.split("name=csrf value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the device page has action forms with a CSRF token")
        .to_string()
}

/// Waits for the first snapshot (the capture loop posts it within a second).
fn ready(port: u16) {
    let t = Instant::now();
    while request(port, "GET", "/healthz", None, None).0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(10), "no snapshot");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get_json(port: u16, path: &str) -> serde_json::Value {
    let (code, _, body) = request(port, "GET", path, Some(TOKEN), None);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

fn device(port: u16, mac: &str) -> Option<serde_json::Value> {
    get_json(port, "/api/devices")
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["mac"] == mac)
        .cloned()
}

/// Waits until `ok` holds for the device (the capture loop applies actions between packets).
fn until(port: u16, what: &str, d: &Daemon, ok: impl Fn(Option<serde_json::Value>) -> bool) {
    let t = Instant::now();
    while !ok(device(port, DEVICE)) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{what}: {:?}\n{}",
            device(port, DEVICE),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_actions_need_both_tokens_and_persist() {
    if let Some(why) = cannot_run(&[], "") {
        eprintln!("\n*** SKIPPED status_actions_need_both_tokens_and_persist: {why} ***\n");
        return;
    }
    let dir = scratch("status-actions");
    let net = dir.join("net.pcap");
    synth(&net, 5, 30, 3, &[]);
    let port = free_port();
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        format!(r#"{{"http": {{"bind": "127.0.0.1:{port}", "token": "{TOKEN}"}}}}"#),
    )
    .unwrap();
    let veth = Veth::new("a");
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
    let d = Daemon::start(&dir, "actions", &args);
    d.wait_for_log("status page on", Duration::from_secs(5));
    ready(port);
    veth.play(&net, 0.0);
    let t = Instant::now();
    while device(port, DEVICE).is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no {DEVICE}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let page_path = format!("/device/{DEVICE}");
    let (code, _, page) = request(port, "GET", &page_path, Some(TOKEN), None);
    assert_eq!(code, 200);
    let csrf = csrf_of(port, &page_path);
    assert_eq!(csrf.len(), 32, "{csrf}");
    for verb in ["name", "mute", "relearn", "forget"] {
        assert!(
            page.contains(&format!(
                "<form method=post action=\"/device/{DEVICE}/{verb}\">"
            )),
            "{verb}: {page}"
        );
    }
    let name_path = format!("/device/{DEVICE}/name");
    let form = format!("csrf={csrf}&name=Kitchen+%3Cb%3Ecamera%3C%2Fb%3E");
    // a GET changes nothing; a POST without the access token, or without or with a wrong
    // CSRF token, is refused
    let (code, _, _) = request(
        port,
        "GET",
        &format!("{name_path}?{form}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 404);
    assert_eq!(request(port, "POST", &name_path, None, Some(&form)).0, 401);
    let no_csrf = "name=Kitchen";
    let (code, _, why) = request(port, "POST", &name_path, Some(TOKEN), Some(no_csrf));
    assert_eq!(code, 403, "{why}");
    let wrong = "csrf=00000000000000000000000000000000&name=Kitchen";
    assert_eq!(
        request(port, "POST", &name_path, Some(TOKEN), Some(wrong)).0,
        403
    );
    std::thread::sleep(Duration::from_millis(500));
    let before = device(port, DEVICE).unwrap();
    assert_ne!(before["name"], "Kitchen <b>camera</b>", "{before}");

    // name: 303 back to the device page, then the name shows (escaped on the page)
    let (code, head, _) = request(port, "POST", &name_path, Some(TOKEN), Some(&form));
    assert_eq!(code, 303, "{head}");
    assert!(
        head.contains(&format!("Location: /device/{DEVICE}")),
        "{head}"
    );
    until(port, "named", &d, |x| {
        x.is_some_and(|x| x["name"] == "Kitchen <b>camera</b>")
    });
    let (_, _, page) = request(port, "GET", &page_path, Some(TOKEN), None);
    assert!(page.contains("Kitchen &lt;b&gt;camera&lt;/b&gt;"), "{page}");
    assert!(!page.contains("<b>camera"), "{page}");
    // mute for an hour
    let mute = format!("/device/{DEVICE}/mute");
    let bad = format!("csrf={csrf}&minutes=never");
    assert_eq!(request(port, "POST", &mute, Some(TOKEN), Some(&bad)).0, 400);
    let ok = format!("csrf={csrf}&minutes=60");
    assert_eq!(request(port, "POST", &mute, Some(TOKEN), Some(&ok)).0, 303);
    until(port, "muted", &d, |x| {
        x.is_some_and(|x| x["muted_until"].is_string())
    });
    let (_, _, metrics) = request(port, "GET", "/metrics", Some(TOKEN), None);
    assert!(
        metrics.contains(&format!(
            "iotad_device_muted{{mac=\"{DEVICE}\",name=\"Kitchen <b>camera</b>\"}} 1"
        )),
        "{metrics}"
    );
    // relearn
    let relearn = format!("/device/{DEVICE}/relearn");
    let c = format!("csrf={csrf}");
    assert_eq!(
        request(port, "POST", &relearn, Some(TOKEN), Some(&c)).0,
        303
    );
    d.wait_for_log(
        &format!("status page: {DEVICE}: learns afresh"),
        Duration::from_secs(5),
    );

    // it persists: the state saved at once holds the name and the mute, and a restart
    // shows them
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let note = &saved["notes"][DEVICE];
    assert_eq!(note["name"], "Kitchen <b>camera</b>", "{saved}");
    assert!(note["muted_until"].as_u64().unwrap() > 0, "{note}");
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    let d = Daemon::start(&dir, "actions-again", &args);
    d.wait_for_log("status page on", Duration::from_secs(5));
    ready(port);
    veth.play(&net, 0.0);
    until(port, "the name after a restart", &d, |x| {
        x.is_some_and(|x| x["name"] == "Kitchen <b>camera</b>" && x["muted_until"].is_string())
    });

    // forget: 303 to the front page, and the device is gone with its note
    // the CSRF token is new at each start: the old page's forms are refused
    let forget = format!("/device/{DEVICE}/forget");
    assert_eq!(request(port, "POST", &forget, Some(TOKEN), Some(&c)).0, 403);
    let c = format!("csrf={}", csrf_of(port, &page_path));
    let (code, head, _) = request(port, "POST", &forget, Some(TOKEN), Some(&c));
    assert_eq!(code, 303);
    assert!(
        head.contains("Location: /\r\n") || head.ends_with("Location: /"),
        "{head}"
    );
    until(port, "forgotten", &d, |x| x.is_none());
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(saved["notes"].get(DEVICE).is_none(), "{saved}");
    assert!(
        !saved["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["mac"] == DEVICE),
        "forgotten devices are not saved"
    );
}

/// This host's MAC on `iface`.
fn mac_of(iface: &str) -> Mac {
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).unwrap();
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(text.trim().split(':')) {
        *b = u8::from_str_radix(p, 16).unwrap();
    }
    Mac(m)
}

/// A capture of only broadcasts from stations and unicast between them and `me`.
fn broadcast_and_own(path: &Path, me: Mac) {
    let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
    let mut out = cap.savefile(path).unwrap();
    let mut n = 0;
    for i in 0..200u32 {
        let station = Mac([0x02, 0x20, 0, 0, 0, (i % 5) as u8 + 1]);
        let ip = [192, 168, 1, (i % 5) as u8 + 10].into();
        let frames = [
            udp(
                station,
                Mac([0xff; 6]),
                ip,
                [255, 255, 255, 255].into(),
                5353,
                5353,
                b"hello",
            ),
            udp(
                station,
                me,
                ip,
                [192, 168, 1, 2].into(),
                40000,
                8080,
                b"to me",
            ),
            udp(
                me,
                station,
                [192, 168, 1, 2].into(),
                ip,
                8080,
                40000,
                b"from me",
            ),
        ];
        for f in frames {
            n += 1;
            let header = pcap::PacketHeader {
                ts: libc::timeval {
                    tv_sec: 1_700_000_000 + i64::from(i),
                    tv_usec: n,
                },
                caplen: f.bytes.len() as u32,
                len: f.bytes.len() as u32,
            };
            out.write(&pcap::Packet::new(&header, &f.bytes));
        }
    }
    out.flush().unwrap();
}

/// Runs the daemon on a fresh veth pair fed `feed`, with a 2-s visibility verdict; returns
/// its log, `/api/status`, `/metrics` and `iotad tune --dry-run`'s report.
fn watch(tag: &str, feed: impl Fn(&Veth, &Path)) -> (String, serde_json::Value, String, String) {
    let dir = scratch(&format!("visibility-{tag}"));
    let port = free_port();
    let cfg = dir.join("config.json");
    let state = dir.join("state.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"http": {{"bind": "127.0.0.1:{port}"}}, "capture": {{"visibility_secs": 2}},
                "state": {{"file": "{}"}}}}"#,
            s(&state)
        ),
    )
    .unwrap();
    let veth = Veth::new(tag);
    let d = Daemon::start(
        &dir,
        tag,
        &["--config", s(&cfg), "--interface", &veth.capture],
    );
    ready(port);
    feed(&veth, &dir);
    // the verdict after 2 s, and the report file a second later
    let t = Instant::now();
    let status = loop {
        let (code, _, body) = request(port, "GET", "/api/status", None, None);
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["visibility"]["judged"] == true && dir.join("visibility.json").exists() {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "{v}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let (_, _, metrics) = request(port, "GET", "/metrics", None, None);
    let tune = iotad()
        .args(["tune", "--dry-run", "--config", s(&cfg)])
        .output()
        .unwrap();
    let tune = String::from_utf8_lossy(&tune.stdout).to_string();
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    (log, status, metrics, tune)
}

#[test]
fn visibility_warns_when_only_broadcast_and_own_traffic_is_seen() {
    if let Some(why) = cannot_run(&[], "") {
        eprintln!("\n*** SKIPPED visibility_warns_when_only_broadcast_and_own_traffic_is_seen: {why} ***\n");
        return;
    }
    let warning = "only broadcast and this host's own traffic seen: see README, Placement";
    let (log, status, metrics, tune) = watch("vb", |veth, dir| {
        let pcap = dir.join("own.pcap");
        broadcast_and_own(&pcap, mac_of(&veth.capture));
        veth.play(&pcap, 0.0);
    });
    eprintln!("blind: {}", status["visibility"]);
    assert!(log.contains(warning), "{log}");
    assert_eq!(status["visibility"]["blind"], true, "{status}");
    assert_eq!(status["visibility"]["others_frames"], 0, "{status}");
    assert_eq!(status["visibility"]["unicast_frames"], 400, "{status}");
    assert!(metrics.contains("\niotad_blind 1\n"), "{metrics}");
    assert!(
        tune.contains(&format!("visibility: WARNING: {warning}")),
        "{tune}"
    );

    let (log, status, metrics, tune) = watch("vs", |veth, dir| {
        let pcap = dir.join("net.pcap");
        synth(&pcap, 6, 30, 3, &[]);
        veth.play(&pcap, 0.0);
    });
    eprintln!("seeing: {}", status["visibility"]);
    assert!(!log.contains(warning), "{log}");
    assert_eq!(status["visibility"]["blind"], false, "{status}");
    assert!(
        status["visibility"]["others_share"].as_f64().unwrap() > 0.5,
        "{status}"
    );
    assert!(metrics.contains("\niotad_blind 0\n"), "{metrics}");
    assert!(
        metrics.contains("iotad_device_visible{mac=\"02:10:01:00:00:01\""),
        "{metrics}"
    );
    assert!(tune.contains("were between other stations"), "{tune}");
    assert!(!tune.contains("WARNING"), "{tune}");
}
