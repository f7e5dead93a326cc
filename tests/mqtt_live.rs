//! MQTT end to end: a real Mosquitto the test starts on a free port, `iotad run` capturing a
//! veth pair that a synthesized capture with a port scan is played onto (tcpreplay), and a
//! real subscriber (`mosquitto_sub`) that records everything. Needs root, `ip`, `tcpreplay`,
//! `/usr/sbin/mosquitto` and `mosquitto_sub` (Debian: iproute2 tcpreplay mosquitto
//! mosquitto-clients); without them each test says so loudly and does nothing.

mod common;

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::live::{cannot_run, events, free_port, sh_in, Daemon, Veth};
use common::{s, scratch, synth};
use serde_json::Value;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const SCANNER: &str = "02:10:00:00:00:00";
const DEVICES: [&str; 3] = [SCANNER, "02:10:01:00:00:01", "02:10:02:00:00:02"];
const BASE: &str = "iotad/test";

macro_rules! need_root_tools_and_mosquitto {
    ($test:expr) => {
        let why = if Path::new(MOSQUITTO).exists() {
            cannot_run(&["mosquitto_sub"], "mosquitto mosquitto-clients")
        } else {
            Some(format!("no {MOSQUITTO} (Debian: mosquitto)"))
        };
        if let Some(why) = why {
            eprintln!("\n*** SKIPPED {}: {why} ***\n", $test);
            return;
        }
    };
}

/// A Mosquitto on 127.0.0.1, with persistence (its sessions and retained messages survive a
/// restart, as a broker's usually do).
struct Broker {
    child: Option<Child>,
    port: u16,
    conf: PathBuf,
    log: PathBuf,
    /// What mosquitto_sub and mosquitto_pub need to reach it (host, port, TLS, login).
    client_args: Vec<String>,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        Broker::start_with(dir, "allow_anonymous true\n", &[])
    }

    /// A broker whose configuration has `extra` lines; clients add `client_args`.
    fn start_with(dir: &Path, extra: &str, client_args: &[&str]) -> Broker {
        let port = free_port();
        let data = dir.join("mosquitto");
        std::fs::create_dir_all(&data).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{extra}persistence true\n\
                 persistence_location {}/\nuser root\n",
                data.display()
            ),
        )
        .unwrap();
        let mut args: Vec<String> = ["-h", "127.0.0.1", "-p", &port.to_string()]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(client_args.iter().map(|a| a.to_string()));
        let mut b = Broker {
            child: None,
            port,
            conf,
            log: dir.join("mosquitto.log"),
            client_args: args,
        };
        b.run();
        b
    }

    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&self.conf)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "mosquitto does not listen on {}:\n{}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (Mosquitto saves its persistence file) and waits for the exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One message as `mosquitto_sub -F '%r %t %p'` prints it.
#[derive(Clone, Debug)]
struct Msg {
    retained: bool,
    topic: String,
    payload: String,
}

impl Msg {
    fn json(&self) -> Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.topic, self.payload))
    }
}

/// `mosquitto_sub -t '#'` with a persistent session (QoS 1, clean session off: what the
/// broker holds for it while it reconnects is delivered), writing to a file.
struct Subscriber {
    child: Child,
    out: PathBuf,
}

impl Subscriber {
    fn start(broker: &Broker, dir: &Path) -> Subscriber {
        let out = dir.join("sub.txt");
        let child = Command::new("mosquitto_sub")
            .args(&broker.client_args)
            .args(["-t", "#", "-q", "1", "-c", "-i"])
            .arg(format!("iotad-test-{}", std::process::id()))
            .args(["-F", "%r %t %p"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub starts");
        let sub = Subscriber { child, out };
        // subscribed once a probe comes back
        let t = Instant::now();
        while sub.messages().iter().all(|m| m.topic != "probe") {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the subscriber is not up"
            );
            let _ = Command::new("mosquitto_pub")
                .args(&broker.client_args)
                .args(["-t", "probe", "-m", "1"])
                .status();
            std::thread::sleep(Duration::from_millis(100));
        }
        sub
    }

    fn messages(&self) -> Vec<Msg> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (r, rest) = l.split_once(' ')?;
                let (topic, payload) = rest.split_once(' ').unwrap_or((rest, ""));
                Some(Msg {
                    retained: r == "1",
                    topic: topic.into(),
                    payload: payload.into(),
                })
            })
            .collect()
    }

    /// The first message after the first `skip` that satisfies `pred`, waiting for it.
    fn wait_for(
        &self,
        what: &str,
        skip: usize,
        limit: Duration,
        pred: impl Fn(&Msg) -> bool,
    ) -> (usize, Msg) {
        let t = Instant::now();
        loop {
            if let Some(found) = self
                .messages()
                .into_iter()
                .enumerate()
                .skip(skip)
                .find(|(_, m)| pred(m))
            {
                return found;
            }
            assert!(
                t.elapsed() < limit,
                "no {what} within {limit:?}; messages:\n{}",
                std::fs::read_to_string(&self.out).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the broker retains on `topic` (a fresh subscriber gets it at once), if anything.
fn retained(broker: &Broker, topic: &str) -> Option<String> {
    let out = Command::new("mosquitto_sub")
        .args(&broker.client_args)
        .args(["-t", topic, "-C", "1", "-W", "2", "-F", "%r %p"])
        .output()
        .expect("mosquitto_sub runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?;
    line.strip_prefix("1 ").map(str::to_string)
}

fn mac_id(mac: &str) -> String {
    mac.replace(':', "")
}

fn is_status(m: &Msg, payload: &str) -> bool {
    m.topic == format!("{BASE}/status") && m.payload == payload
}

/// The daemon's configuration: the broker, our topic base, states at most every second.
fn config(dir: &Path, broker: &Broker) -> PathBuf {
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"mqtt": {{"broker": "{}", "topic_base": "{BASE}", "device_state_secs": 1, "retry_max_secs": 2}}}}"#,
            broker.url()
        ),
    )
    .unwrap();
    cfg
}

/// Checks one device-based discovery config; returns its entities' unique ids.
fn check_discovery(config: &Value, mac: Option<&str>) -> Vec<String> {
    let dev = &config["dev"];
    assert!(
        dev["ids"].as_array().is_some_and(|a| !a.is_empty()),
        "{config}"
    );
    assert!(
        dev["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{config}"
    );
    if let Some(mac) = mac {
        assert_eq!(dev["cns"], serde_json::json!([["mac", mac]]), "{config}");
    }
    assert_eq!(config["o"]["name"], "iotad");
    assert!(config["o"]["sw"].is_string());
    let cmps = config["cmps"].as_object().expect("cmps");
    assert!(cmps.len() >= 3, "{config}");
    let mut ids = Vec::new();
    for (key, e) in cmps {
        let p = e["p"].as_str().unwrap_or_else(|| panic!("{key}: no p"));
        let uid = e["uniq_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: no uniq_id"));
        assert_eq!(e["default_entity_id"], format!("{p}.{uid}"), "{key}");
        assert_eq!(e["avty_t"], format!("{BASE}/status"), "{key}");
        assert!(
            e["stat_t"].as_str().is_some_and(|t| t.starts_with(BASE)),
            "{key}"
        );
        ids.push(uid.to_string());
    }
    if mac.is_some() {
        assert_eq!(cmps["anomaly"]["p"], "binary_sensor");
        assert_eq!(cmps["anomaly"]["dev_cla"], "problem");
        assert_eq!(cmps["anomaly_score"]["p"], "sensor");
        assert_eq!(cmps["anomaly_score"]["stat_cla"], "measurement");
        assert_eq!(cmps["last_anomaly"]["p"], "sensor");
    }
    ids
}

#[test]
fn alerts_discovery_and_goodbyes_reach_a_real_broker() {
    need_root_tools_and_mosquitto!("alerts_discovery_and_goodbyes_reach_a_real_broker");
    let dir = scratch("mqtt-live");
    let pcap = dir.join("net.pcap");
    // three devices for half a minute; the camera (device 0) scans after 20 s
    synth(&pcap, 3, 30, 3, &[&format!("portscan@20:{SCANNER}")]);
    let broker = Broker::start(&dir);
    let sub = Subscriber::start(&broker, &dir);
    let veth = Veth::new("m");
    let cfg = config(&dir, &broker);
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
    let d = Daemon::start(&dir, "first", &args);
    let started = Instant::now();
    sub.wait_for("online", 0, Duration::from_secs(10), |m| {
        is_status(m, "online")
    });
    eprintln!(
        "online {} ms after the daemon captured",
        started.elapsed().as_millis()
    );
    assert_eq!(
        retained(&broker, &format!("{BASE}/status")).as_deref(),
        Some("online")
    );

    veth.play(&pcap, 1.0);
    let (_, alert) = sub.wait_for(
        "anomaly event for the scanner",
        0,
        Duration::from_secs(30),
        |m| {
            m.topic == format!("{BASE}/anomaly")
                && m.json()["device"]["mac"] == SCANNER
                && m.json()["phase"] == "open"
        },
    );
    assert!(!alert.retained);
    let alert = alert.json();
    let named: Vec<&str> = alert["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["feature"].as_str().unwrap())
        .collect();
    assert!(
        named
            .iter()
            .any(|f| common::live::SCAN_FEATURES.contains(f)),
        "the alert explains the scan: {named:?}"
    );
    assert!(alert["explanation"][0]["text"].as_str().unwrap().len() > 20);

    // a discovery config per device, and one for the node; unique ids unique across all
    let mut ids = Vec::new();
    for mac in DEVICES {
        let topic = format!("homeassistant/device/iotad_test_{}/config", mac_id(mac));
        let (_, m) = sub.wait_for(&topic, 0, Duration::from_secs(10), |m| m.topic == topic);
        ids.extend(check_discovery(&m.json(), Some(mac)));
        assert!(retained(&broker, &topic).is_some(), "{topic} is retained");
        let state_topic = format!("{BASE}/devices/{}", mac_id(mac));
        let st: Value =
            serde_json::from_str(&retained(&broker, &state_topic).expect(&state_topic)).unwrap();
        assert_eq!(st["mac"], mac);
        assert!(st["name"].as_str().is_some_and(|n| !n.is_empty()), "{st}");
    }
    let node = "homeassistant/device/iotad_test/config";
    let (_, m) = sub.wait_for(node, 0, Duration::from_secs(10), |m| m.topic == node);
    ids.extend(check_discovery(&m.json(), None));
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "unique ids are unique: {ids:?}");
    // Home Assistant (re)starting says online: discovery comes again
    let before = sub.messages().len();
    let pub_ok = Command::new("mosquitto_pub")
        .args(&broker.client_args)
        .args(["-t", "homeassistant/status", "-m", "online"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(pub_ok);
    sub.wait_for(
        "discovery again after HA's online",
        before,
        Duration::from_secs(5),
        |m| m.topic == node,
    );
    eprintln!("RSS with MQTT: {} kB", d.rss_kb());
    // the scanner's state says so, with its last anomaly
    let scanner_state = format!("{BASE}/devices/{}", mac_id(SCANNER));
    sub.wait_for(
        "the scanner's anomaly in its state",
        0,
        Duration::from_secs(10),
        |m| {
            m.topic == scanner_state
                && m.json()["anomaly"] == true
                && m.json()["last_anomaly"]["explanation"][0].is_string()
        },
    );

    // SIGTERM: offline, retained
    let before = sub.messages().len();
    let (took, clean, log) = d.terminate();
    assert!(clean, "exit status 0 after SIGTERM:\n{log}");
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    sub.wait_for(
        "offline after SIGTERM",
        before,
        Duration::from_secs(5),
        |m| is_status(m, "offline"),
    );
    assert_eq!(
        retained(&broker, &format!("{BASE}/status")).as_deref(),
        Some("offline")
    );
    assert!(log.contains("said offline"), "{log}");

    // SIGKILL: the broker publishes the last will
    let d = Daemon::start(&dir, "second", &args);
    let (at, _) = sub.wait_for("online again", before, Duration::from_secs(10), |m| {
        is_status(m, "online")
    });
    let log = d.kill();
    let (_, will) = sub.wait_for(
        "the last will after SIGKILL",
        at + 1,
        Duration::from_secs(10),
        |m| is_status(m, "offline"),
    );
    assert!(!log.contains("said offline"), "{log}");
    assert_eq!(will.payload, "offline");
    assert_eq!(
        retained(&broker, &format!("{BASE}/status")).as_deref(),
        Some("offline")
    );
    drop(sub);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The events a subscriber got on the anomaly and events topics, as JSON, in order.
fn received_events(sub: &Subscriber) -> Vec<Value> {
    sub.messages()
        .iter()
        .filter(|m| m.topic == format!("{BASE}/anomaly") || m.topic == format!("{BASE}/events"))
        .map(Msg::json)
        .collect()
}

/// `v` with each run of equal neighbours kept once (redeliveries of one event).
fn dedup(v: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for e in v {
        if out.last() != Some(e) {
            out.push(e.clone());
        }
    }
    out
}

#[test]
fn a_broker_outage_delays_events_but_loses_none_and_keeps_their_order() {
    need_root_tools_and_mosquitto!(
        "a_broker_outage_delays_events_but_loses_none_and_keeps_their_order"
    );
    let dir = scratch("mqtt-outage");
    let (benign, attack) = (dir.join("benign.pcap"), dir.join("attack.pcap"));
    synth(&benign, 3, 30, 3, &[]);
    // the same devices and a fourth, new one; the camera scans for 15 s
    synth(&attack, 3, 40, 4, &[&format!("portscan@10+15:{SCANNER}")]);
    let mut broker = Broker::start(&dir);
    let sub = Subscriber::start(&broker, &dir);
    let veth = Veth::new("o");
    let cfg = config(&dir, &broker);
    let log_file = dir.join("events.jsonl");
    let d = Daemon::start(
        &dir,
        "outage",
        &[
            "--config",
            s(&cfg),
            "--interface",
            &veth.capture,
            "--events",
            s(&log_file),
            "--state",
            s(&dir.join("state.json")),
            "--learning-windows",
            "1",
        ],
    );
    sub.wait_for("online", 0, Duration::from_secs(10), |m| {
        is_status(m, "online")
    });
    veth.play(&benign, 1.0);

    broker.stop();
    let stopped = Instant::now();
    d.wait_for_log("connection to", Duration::from_secs(5));
    veth.play(&attack, 1.0);
    // detection goes on: the event log has the new device and the scan while the broker is away
    let t = Instant::now();
    loop {
        let ev = events(&log_file);
        let new = ev.iter().any(|e| e["kind"] == "new-device");
        let scan = ev
            .iter()
            .any(|e| e["kind"] == "anomaly" && e["device"]["mac"] == SCANNER);
        if new && scan {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no events while the broker was down: {ev:?}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let during = events(&log_file).len();
    let got_before = received_events(&sub).len();
    broker.run();
    let restarted = Instant::now();
    eprintln!(
        "broker down {:.1} s; {during} events logged, {got_before} of them received before the outage",
        restarted.duration_since(stopped).as_secs_f64()
    );

    // every event arrives, once or more, in order
    let t = Instant::now();
    loop {
        let logged = events(&log_file);
        let got = dedup(&received_events(&sub));
        if got.len() >= during && got[..] == logged[..got.len()] {
            eprintln!(
                "all {} events received {:.1} s after the broker came back ({} messages with redeliveries)",
                got.len(),
                restarted.elapsed().as_secs_f64(),
                received_events(&sub).len()
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "received (deduplicated) {got:#?}\nlogged {logged:#?}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    assert!(log.contains("connected to"), "{log}");
    // the events of the last window, closed at exit, went out too
    let logged = events(&log_file);
    let t = Instant::now();
    while dedup(&received_events(&sub)) != logged && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = received_events(&sub);
    assert_eq!(dedup(&got), logged, "every event, in order");
    let distinct: HashSet<String> = got.iter().map(Value::to_string).collect();
    assert_eq!(
        distinct.len(),
        logged.len(),
        "no event twice except in a row"
    );
    drop(sub);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mqtts_with_a_ca_file_and_a_password_file() {
    need_root_tools_and_mosquitto!("mqtts_with_a_ca_file_and_a_password_file");
    for tool in ["openssl", "mosquitto_passwd"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            eprintln!("\n*** SKIPPED mqtts_with_a_ca_file_and_a_password_file: no {tool} (Debian: openssl, mosquitto) ***\n");
            return;
        }
    }
    let dir = scratch("mqtt-tls");
    // a CA, and a certificate it signed for localhost and 127.0.0.1
    sh_in(
        &dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
           -subj /CN=iotad-test-ca 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
           -subj /CN=localhost 2>/dev/null && \
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
           -out server.pem -days 2 -extfile san.ext 2>/dev/null && \
         mosquitto_passwd -b -c passwd iotad 's3cret pass' && \
         printf 's3cret pass\\n' > password",
    );
    let d = dir.display();
    let broker = Broker::start_with(
        &dir,
        &format!(
            "cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
             allow_anonymous false\npassword_file {d}/passwd\n"
        ),
        &[
            "--cafile",
            &format!("{d}/ca.pem"),
            "-u",
            "iotad",
            "-P",
            "s3cret pass",
        ],
    );
    let sub = Subscriber::start(&broker, &dir);
    let veth = Veth::new("t");
    let cfg = dir.join("config.json");
    let write_cfg = |password_file: &str| {
        std::fs::write(
            &cfg,
            format!(
                r#"{{"mqtt": {{"broker": "mqtts://localhost:{}", "ca_file": "{d}/ca.pem",
                     "username": "iotad", "password_file": "{d}/{password_file}",
                     "topic_base": "{BASE}"}}}}"#,
                broker.port
            ),
        )
        .unwrap();
    };
    write_cfg("password");
    let state = dir.join("state.json");
    let args = [
        "--config",
        s(&cfg),
        "--interface",
        &veth.capture,
        "--state",
        s(&state),
    ];
    let daemon = Daemon::start(
        &dir,
        "tls",
        &[&args[..], &["--learning-windows", "1"]].concat(),
    );
    sub.wait_for("online over TLS", 0, Duration::from_secs(10), |m| {
        is_status(m, "online")
    });
    // the same flow as in the clear: the scanner's anomaly and its discovery config arrive
    let pcap = dir.join("net.pcap");
    synth(&pcap, 3, 30, 3, &[&format!("portscan@20:{SCANNER}")]);
    veth.play(&pcap, 1.0);
    let (_, alert) = sub.wait_for(
        "anomaly event for the scanner over TLS",
        0,
        Duration::from_secs(30),
        |m| {
            m.topic == format!("{BASE}/anomaly")
                && m.json()["device"]["mac"] == SCANNER
                && m.json()["phase"] == "open"
        },
    );
    assert!(alert.json()["explanation"][0]["text"].is_string());
    let topic = format!("homeassistant/device/iotad_test_{}/config", mac_id(SCANNER));
    let (_, m) = sub.wait_for(&topic, 0, Duration::from_secs(10), |m| m.topic == topic);
    assert!(!check_discovery(&m.json(), Some(SCANNER)).is_empty());
    let (_, clean, log) = daemon.terminate();
    assert!(clean, "{log}");
    sub.wait_for("offline over TLS", 0, Duration::from_secs(5), |m| {
        is_status(m, "offline")
    });

    // a wrong password is refused, said once, and retried without flooding the log
    std::fs::write(dir.join("wrong"), "nope\n").unwrap();
    write_cfg("wrong");
    let daemon = Daemon::start(&dir, "refused", &args);
    daemon.wait_for_log("refused", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    let (_, clean, log) = daemon.terminate();
    assert!(clean, "{log}");
    assert_eq!(log.matches("refused").count(), 1, "{log}");
    drop(sub);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One run of the daemon for the blackhole measurement: the scan at twice its pace, then a
/// burst at top speed; the kernel's drops, the packets it received, and the events logged.
fn capture_run(
    dir: &Path,
    name: &str,
    mqtt: Option<u16>,
    scan: &Path,
    burst: &Path,
) -> (u64, u64, Vec<Value>, String) {
    let cfg = dir.join(format!("{name}.json"));
    let mqtt_cfg = mqtt.map_or(String::new(), |port| {
        format!(
            r#""mqtt": {{"broker": "mqtt://127.0.0.1:{port}", "topic_base": "{BASE}", "queue": 2}}"#
        )
    });
    std::fs::write(&cfg, format!("{{{mqtt_cfg}}}")).unwrap();
    let veth = Veth::new(&name[..1]);
    let log_file = dir.join(format!("{name}.jsonl"));
    let d = Daemon::start(
        dir,
        name,
        &[
            "--config",
            s(&cfg),
            "--interface",
            &veth.capture,
            "--events",
            s(&log_file),
            "--state",
            s(&dir.join(format!("{name}-state.json"))),
            "--learning-windows",
            "1",
        ],
    );
    veth.play(scan, 2.0);
    let t = Instant::now();
    veth.play(burst, 0.0);
    eprintln!("{name}: burst played in {:.2} s", t.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(1));
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    let dropped = common::live::count_before(&log, "dropped by the kernel");
    let received = common::live::count_before(&log, "received and");
    (dropped, received, events(&log_file), log)
}

#[test]
fn a_blackholed_broker_costs_the_capture_no_packets() {
    const TEST: &str = "a_blackholed_broker_costs_the_capture_no_packets";
    if let Some(why) = cannot_run(&[], "") {
        eprintln!("\n*** SKIPPED {TEST}: {why} ***\n");
        return;
    }
    let dir = scratch("mqtt-blackhole");
    let (scan, burst) = (dir.join("scan.pcap"), dir.join("burst.pcap"));
    synth(&scan, 3, 30, 3, &[&format!("portscan@20:{SCANNER}")]);
    synth(&burst, 5, 600, 8, &[]);
    // a "broker" that accepts TCP connections and never answers (never reads)
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hole.incoming().flatten() {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            held.push(c);
        }
    });

    let (base_drops, base_received, base_events, _) =
        capture_run(&dir, "without", None, &scan, &burst);
    let (drops, received, logged, log) = capture_run(&dir, "blackholed", Some(port), &scan, &burst);
    eprintln!(
        "kernel drops: {base_drops} of {base_received} packets without MQTT, {drops} of \
         {received} with the broker blackholed ({} connections it accepted and never answered); \
         events logged: {} and {}",
        accepted.load(std::sync::atomic::Ordering::Relaxed),
        base_events.len(),
        logged.len()
    );
    assert!(
        accepted.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "{log}"
    );
    // the daemon knew the broker was not answering, and detection went on regardless
    assert!(
        logged
            .iter()
            .any(|e| e["kind"] == "anomaly" && e["device"]["mac"] == SCANNER),
        "{logged:?}"
    );
    assert!(
        !log.contains(&format!("connected to mqtt://127.0.0.1:{port}")),
        "{log}"
    );
    // the broker stayed down past the queue's size: the oldest were dropped, and counted
    let dropped_events = common::live::count_before(&log, "dropped (queue full)");
    let held = common::live::count_before(&log, "held back");
    let left = common::live::count_before(&log, "not delivered at exit");
    assert_eq!(left, 2, "the queue of 2 was full at exit: {log}");
    assert_eq!(
        dropped_events + held + left,
        logged.len() as u64,
        "every event logged was dropped, held back or left in the queue: {log}"
    );
    eprintln!("MQTT queue of 2: {dropped_events} events dropped and counted, {left} left at exit");
    assert_eq!(received, base_received, "both runs saw the whole capture");
    assert!(
        drops <= base_drops,
        "the blackholed broker cost {} packets",
        drops - base_drops
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
