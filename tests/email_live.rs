//! Email end to end, and a hostile DHCP host name through every alerting sink: `iotad run` on
//! a veth pair fed a synthesized port scan whose scanner, before it scans, sends a DHCP
//! request with a hostile host name (quotes, CR/LF and a `Bcc:` header, `<script>`, invalid
//! UTF-8, 300 bytes in two options). The incident's mail goes to a real SMTP server (Debian's
//! python3-aiosmtpd: STARTTLS required, a login, a certificate from a CA the test makes, and
//! the first message refused with 451); its events go to a webhook (Python's http.server) and,
//! when Mosquitto is installed, to a real broker. A second test drives the sink directly
//! against the same server over implicit TLS: delivered; a recipient refused with 550
//! dropped; a certificate from another CA not delivered. Needs root, `ip`, `tcpreplay`, `openssl` and
//! `/usr/bin/python3` with aiosmtpd; without them the test says so loudly and does nothing.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::live::{cannot_run, events, sh_in, Daemon, Veth};
use common::{s, scratch, synth};
use iotad::synth::frames::udp;
use iotad::wire::Mac;
use serde_json::Value;

const SCANNER: &str = "02:10:00:00:00:00";
const PYTHON: &str = "/usr/bin/python3";
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// An SMTP server that requires STARTTLS and a login (iotad / "s3cret pass"), refuses the
/// first `fail` messages with 451, and writes one JSON line per message accepted.
const SMTP_SERVER: &str = r#"
import asyncio, json, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
port_file, out, cert, key, fail = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
implicit = len(sys.argv) > 6 and sys.argv[6] == "tls"
class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        global fail
        if fail > 0:
            fail -= 1
            return "451 4.3.0 not now, try again"
        with open(out, "a") as f:
            f.write(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                                "tls": server.transport.get_extra_info("ssl_object") is not None,
                                "login": session.authenticated,
                                "data": envelope.original_content.decode("utf-8", "replace")}) + "\n")
        return "250 2.0.0 OK"
def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"iotad" and data.password == b"s3cret pass"
    return AuthResult(success=ok)
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
factory = lambda: SMTP(Handler(), hostname="smtp.test", tls_context=None if implicit else tls,
                       require_starttls=not implicit, authenticator=auth, auth_required=True,
                       auth_require_tls=not implicit)
server = loop.run_until_complete(loop.create_server(factory, "127.0.0.1", 0,
                                                    ssl=tls if implicit else None))
with open(port_file, "w") as f:
    f.write(str(server.sockets[0].getsockname()[1]))
loop.run_forever()
"#;

/// A webhook receiver writing each body it got as one line.
const HOOK: &str = r#"
import http.server, sys
port_file, out = sys.argv[1], sys.argv[2]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(out, "ab") as f:
            f.write(body + b"\n")
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
with open(port_file, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
"#;

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a Python script that writes its port to `port_file`; waits for the port.
fn python(dir: &Path, name: &str, script: &str, args: &[&str]) -> (Proc, u16) {
    let path = dir.join(format!("{name}.py"));
    std::fs::write(&path, script).unwrap();
    let port_file = dir.join(format!("{name}.port"));
    let child = Command::new(PYTHON)
        .arg(&path)
        .arg(&port_file)
        .args(args)
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
        .spawn()
        .expect("python3 starts");
    let p = Proc(child);
    let t = Instant::now();
    loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok())
        {
            return (p, port);
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{name} is not up: {}",
            std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 45 hostile bytes: quotes, CR/LF with a header after them, `<script>`, invalid UTF-8.
const HOSTILE: &[u8] = b"\"'\r\nBcc: v@e.tst\r\n<script>alert(1)</script>\xff\xfe";

/// The hostile host name's 300 bytes: [`HOSTILE`], padding, and [`HOSTILE`] again (so it
/// starts both options it is split over, whichever the parser keeps).
fn hostile_name() -> Vec<u8> {
    let mut n = HOSTILE.to_vec();
    n.resize(255, b'A');
    n.extend_from_slice(HOSTILE);
    assert_eq!(n.len(), 300);
    n
}

/// One DHCP request from the scanner carrying [`hostile_name`] as option 12, split over two
/// options (one holds 255 bytes at most; RFC 3396 concatenates them).
fn hostile_dhcp(path: &Path) {
    let mac = Mac::parse(SCANNER).unwrap();
    let name = hostile_name();
    let mut m = vec![0u8; 240];
    m[..3].copy_from_slice(&[1, 1, 6]);
    m[4..8].copy_from_slice(&7u32.to_be_bytes());
    m[28..34].copy_from_slice(&mac.0);
    m[236..240].copy_from_slice(&[99, 130, 83, 99]);
    m.extend_from_slice(&[53, 1, 3]);
    for part in name.chunks(255) {
        m.extend_from_slice(&[12, part.len() as u8]);
        m.extend_from_slice(part);
    }
    m.extend_from_slice(&[60, 4, b'v', b'"', b'<', b'>']);
    m.push(255);
    let f = udp(
        mac,
        Mac([0xff; 6]),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        68,
        67,
        &m,
    );
    let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
    let mut out = cap.savefile(path).unwrap();
    let header = pcap::PacketHeader {
        ts: libc::timeval {
            tv_sec: 1_700_000_000,
            tv_usec: 0,
        },
        caplen: f.bytes.len() as u32,
        len: f.bytes.len() as u32,
    };
    out.write(&pcap::Packet::new(&header, &f.bytes));
    out.flush().unwrap();
}

/// The mails the server accepted: (tls, login, from, to, head, body).
struct Mail {
    tls: bool,
    login: bool,
    from: String,
    to: Vec<String>,
    head: String,
    body: String,
}

fn mails(path: &Path) -> Vec<Mail> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let data = v["data"].as_str().unwrap();
            let (head, body) = data.split_once("\r\n\r\n").expect("a head and a body");
            Mail {
                tls: v["tls"] == true,
                login: v["login"] == true,
                from: v["from"].as_str().unwrap().into(),
                to: v["to"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect(),
                head: head.into(),
                body: body.into(),
            }
        })
        .collect()
}

/// A Mosquitto on a free port and a subscriber to everything, if Mosquitto is installed.
struct Mqtt {
    _broker: Proc,
    _sub: Proc,
    port: u16,
    out: PathBuf,
}

fn mqtt(dir: &Path) -> Option<Mqtt> {
    if !Path::new(MOSQUITTO).exists()
        || !Command::new("sh")
            .args(["-c", "command -v mosquitto_sub"])
            .output()
            .is_ok_and(|o| o.status.success())
    {
        eprintln!("(no Mosquitto: the MQTT part of this test is left out)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n"),
    )
    .unwrap();
    let broker = Proc(
        Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "mosquitto is not up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = dir.join("sub.txt");
    let sub = Proc(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "#"])
            .args(["-F", "%t\t%x"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    Some(Mqtt {
        _broker: broker,
        _sub: sub,
        port,
        out,
    })
}

/// Every string in a JSON value.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(o) => o.values().flat_map(strings).collect(),
        _ => vec![],
    }
}

/// Bytes from hex (mosquitto_sub's `%x`).
fn unhex(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn the_incident_is_mailed_and_a_hostile_name_stays_in_payloads() {
    const TEST: &str = "the_incident_is_mailed_and_a_hostile_name_stays_in_payloads";
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    let why = cannot_run(&["openssl"], "openssl python3-aiosmtpd")
        .or_else(|| (!ok).then(|| format!("no aiosmtpd for {PYTHON} (Debian: python3-aiosmtpd)")));
    if let Some(why) = why {
        eprintln!("\n*** SKIPPED {TEST}: {why} ***\n");
        return;
    }
    let dir = scratch("email-live");
    certificates(&dir);
    let got_mail = dir.join("mail.jsonl");
    let (_smtp, smtp_port) = python(
        &dir,
        "smtp",
        SMTP_SERVER,
        &[
            s(&got_mail),
            s(&dir.join("server.pem")),
            s(&dir.join("server.key")),
            "1",
        ],
    );
    let got_hook = dir.join("hook.jsonl");
    let (_hook, hook_port) = python(&dir, "hook", HOOK, &[s(&got_hook)]);
    let mqtt = mqtt(&dir);
    let mqtt_cfg = mqtt.as_ref().map_or(String::new(), |m| {
        format!(
            r#""mqtt": {{"broker": "mqtt://127.0.0.1:{}", "topic_base": "iotad/test"}},"#,
            m.port
        )
    });
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{{mqtt_cfg}
               "webhook": {{"url": "http://127.0.0.1:{hook_port}/hook"}},
               "email": {{"server": "localhost", "port": {smtp_port}, "security": "starttls",
                         "ca_file": "{d}/ca.pem", "username": "iotad",
                         "password_file": "{d}/password", "from": "iotad@pi.test",
                         "to": ["me@home.test", "you@home.test"],
                         "status_url": "http://pi.test:8080/"}}}}"#,
            d = dir.display()
        ),
    )
    .unwrap();
    let (net, dhcp) = (dir.join("net.pcap"), dir.join("dhcp.pcap"));
    synth(&net, 3, 30, 3, &[&format!("portscan@20:{SCANNER}")]);
    hostile_dhcp(&dhcp);
    let veth = Veth::new("e");
    let log_file = dir.join("events.jsonl");
    let d = Daemon::start(
        &dir,
        "email",
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
    // the scanner boots (its own DHCP at 0 s), then renames itself, then scans at 20 s
    std::thread::scope(|sc| {
        sc.spawn(|| veth.play(&net, 1.0));
        std::thread::sleep(Duration::from_secs(8));
        veth.play(&dhcp, 1.0);
    });
    let t = Instant::now();
    let open = loop {
        let opened = mails(&got_mail).into_iter().find(|m| {
            m.head.contains("X-Iotad-Incident: ")
                && m.head.contains("[iotad] anomaly: ")
                && m.head.contains(&format!("({SCANNER})"))
        });
        if let Some(m) = opened {
            break m;
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "no incident mail:\n{}\n{}",
            d.log(),
            std::fs::read_to_string(dir.join("smtp.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    // the 451 was retried
    assert!(log.contains("451"), "{log}");
    assert!(open.tls && open.login, "STARTTLS and the login were used");
    assert_eq!(open.from, "iotad@pi.test");
    assert_eq!(open.to, ["me@home.test", "you@home.test"]);

    // the event it is about, from the event log
    let logged = events(&log_file);
    let incident: u64 = open
        .head
        .lines()
        .find_map(|l| l.strip_prefix("X-Iotad-Incident: "))
        .unwrap()
        .parse()
        .unwrap();
    let opened = logged
        .iter()
        .find(|e| e["phase"] == "open" && e["incident"] == incident)
        .expect("the mail's incident opened in the event log");
    assert_eq!(opened["device"]["mac"], SCANNER);
    let name = opened["device"]["name"].as_str().unwrap();
    assert!(
        name.contains("<script>"),
        "the hostile name was the scanner's: {name}"
    );
    eprintln!("the name as iotad kept it: {name:?}");

    // the head: exactly our headers, each on one line, the name in the subject made safe
    let head_names: Vec<&str> = open
        .head
        .split("\r\n")
        .map(|l| l.split_once(':').expect("name: value").0)
        .collect();
    for h in [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "X-Iotad-Incident",
    ] {
        assert_eq!(
            head_names.iter().filter(|n| **n == h).count(),
            1,
            "{h}: {}",
            open.head
        );
    }
    // "Bcc: victim@..." stays inside the subject's text: no header of its own
    assert!(!head_names.contains(&"Bcc"), "{}", open.head);
    let subject = open
        .head
        .lines()
        .find(|l| l.starts_with("Subject: "))
        .unwrap();
    assert!(subject.contains("<script>alert(1)</script>"), "{subject}");
    assert!(subject.contains(&format!("({SCANNER})")), "{subject}");
    assert!(
        subject.ends_with(&format!(
            "incident {}, {}",
            opened["incident"],
            opened["severity"].as_str().unwrap()
        )),
        "{subject}"
    );
    // the body: the explanation, line by line, and the status page
    for c in opened["explanation"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        assert!(
            open.body.contains(&format!("  - {text}\r\n")),
            "{text} in\n{}",
            open.body
        );
    }
    assert!(
        open.body.contains("Status page: http://pi.test:8080/"),
        "{}",
        open.body
    );
    eprintln!("the incident's mail:\n{}\r\n\r\n{}", open.head, open.body);

    // the webhook: the name in the JSON, as iotad kept it
    let hooked: Vec<Value> = std::fs::read_to_string(&got_hook)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each body is JSON"))
        .collect();
    assert!(hooked.iter().any(|e| e["device"]["name"] == name));

    // MQTT: the name in JSON payloads only, never in a topic
    if let Some(m) = &mqtt {
        let text = std::fs::read_to_string(&m.out).unwrap();
        let mut in_payload = 0;
        for line in text.lines() {
            let (topic, hex) = line.split_once('\t').unwrap();
            assert!(
                !topic.contains("script") && !topic.contains("cam") && !topic.contains('"'),
                "{topic}"
            );
            let payload = unhex(hex);
            if String::from_utf8_lossy(&payload).contains("<script>") {
                let v: Value = serde_json::from_slice(&payload).expect("a JSON payload");
                assert!(strings(&v).iter().any(|s| s.contains(name)), "{v}");
                in_payload += 1;
            }
        }
        assert!(in_payload > 0, "the name reached MQTT payloads:\n{text}");
        eprintln!("MQTT: the name in {in_payload} payloads, in no topic");
    }
    drop(mqtt);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A CA and a certificate for localhost it signed, and the password file, in `dir`.
fn certificates(dir: &Path) {
    sh_in(
        dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
           -subj /CN=iotad-test-ca 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
           -subj /CN=localhost 2>/dev/null && \
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
           -out server.pem -days 2 -extfile san.ext 2>/dev/null && \
         printf 's3cret pass\\n' > password",
    );
}

#[test]
fn implicit_tls_a_refused_recipient_and_a_wrong_ca() {
    use iotad::config::{EmailConfig, Security};
    use iotad::detect::{
        Contribution, DeviceRef, Event, EventKind, Phase, Severity, ThresholdSource,
    };
    use iotad::sink::{email::Email, Sink};
    const TEST: &str = "implicit_tls_a_refused_recipient_and_a_wrong_ca";
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok
        || !Command::new("sh")
            .args(["-c", "command -v openssl"])
            .output()
            .is_ok_and(|o| o.status.success())
    {
        eprintln!("\n*** SKIPPED {TEST}: no openssl, or no aiosmtpd for {PYTHON} (Debian: openssl python3-aiosmtpd) ***\n");
        return;
    }
    let dir = scratch("email-tls");
    certificates(&dir);
    let got = dir.join("mail.jsonl");
    let (_smtp, port) = python(
        &dir,
        "smtps",
        SMTP_SERVER,
        &[
            s(&got),
            s(&dir.join("server.pem")),
            s(&dir.join("server.key")),
            "0",
            "tls",
        ],
    );
    let cfg = |to: &[&str], ca: &str| EmailConfig {
        server: Some("localhost".into()),
        port: Some(port),
        security: Security::Tls,
        username: Some("iotad".into()),
        password_file: Some(dir.join("password")),
        ca_file: Some(dir.join(ca)),
        from: Some("iotad@pi.test".into()),
        to: to.iter().map(|t| t.to_string()).collect(),
        ..EmailConfig::default()
    };
    let event = Event {
        kind: EventKind::Anomaly,
        phase: Some(Phase::Open),
        incident: Some(9),
        device: DeviceRef {
            mac: "02:10:00:00:00:09".into(),
            ipv4: vec!["192.168.1.9".into()],
            ipv6: vec![],
            name: "plug-9".into(),
            vendor_class: String::new(),
            randomized: true,
        },
        window_start: "2026-11-30T05:00:00Z".into(),
        window_end: "2026-11-30T05:00:10Z".into(),
        window_start_epoch: 1_796_014_800,
        score: 30.0,
        threshold: 10.0,
        threshold_source: ThresholdSource::Device,
        severity: Severity::Medium,
        behaviour: None,
        role: None,
        counterpart: None,
        explanation: vec![Contribution {
            feature: "syn_out".into(),
            unit: "packets".into(),
            observed: 500.0,
            expected: 0.0,
            weight: 40.0,
            text: "sent 500 SYNs".into(),
        }],
        detail: None,
    };
    // implicit TLS and a login: delivered
    let mut m = Email::open(&cfg(&["me@home.test"], "ca.pem"))
        .unwrap()
        .unwrap();
    m.deliver(&event).unwrap();
    let sent = mails(&got);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].tls && sent[0].login);
    assert!(
        sent[0].head.contains(
            "Subject: [iotad] anomaly: plug-9 (02:10:00:00:00:09), incident 9, medium\r\n"
        ),
        "{}",
        sent[0].head
    );
    assert!(
        sent[0].body.contains("  - sent 500 SYNs\r\n"),
        "{}",
        sent[0].body
    );
    // a recipient the server refuses for good (550): dropped, not retried for ever
    let mut m = Email::open(&cfg(&["nobody@home.test"], "ca.pem"))
        .unwrap()
        .unwrap();
    m.deliver(&event).unwrap();
    assert_eq!(mails(&got).len(), 1);
    // a certificate from another CA: not delivered, an error to retry
    sh_in(&dir, "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=other 2>/dev/null");
    let mut m = Email::open(&cfg(&["me@home.test"], "other.pem"))
        .unwrap()
        .unwrap();
    let err = m.deliver(&event).unwrap_err();
    assert!(err.contains("TLS"), "{err}");
    assert_eq!(mails(&got).len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
