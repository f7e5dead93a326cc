//! Webhook end to end: `iotad run` on a veth pair fed a synthesized port scan, POSTing its
//! events over https to a real receiver (Python's http.server behind ssl, with a certificate
//! from a CA the test makes with openssl) that fails the first requests with 503. Needs root,
//! `ip`, `tcpreplay`, `python3` and `openssl`; without them the test says so loudly and does
//! nothing.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::live::{cannot_run, events, sh_in, Daemon, Veth};
use common::{s, scratch, synth};
use serde_json::Value;

const SCANNER: &str = "02:10:00:00:00:00";

/// Answers the first `fail` POSTs with 503, the rest with 204, and writes one JSON line per
/// request (path, Authorization, status, body) to `out`; its port goes to `port_file`.
const RECEIVER: &str = r#"
import http.server, json, ssl, sys
port_file, out, fail, cert, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global fail
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = 503 if fail > 0 else 204
        fail -= 1
        with open(out, "a") as f:
            f.write(json.dumps({"path": self.path, "auth": self.headers.get("Authorization"),
                                "status": status, "body": body.decode()}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(cert, key)
server.socket = tls.wrap_socket(server.socket, server_side=True)
with open(port_file, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
"#;

struct Receiver(Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the receiver got: (status it answered, Authorization, the event).
fn received(path: &Path) -> Vec<(u64, Option<String>, String, Value)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            (
                r["status"].as_u64().unwrap(),
                r["auth"].as_str().map(str::to_string),
                r["path"].as_str().unwrap().to_string(),
                serde_json::from_str(r["body"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn events_reach_an_https_webhook_in_order_through_its_failures() {
    if let Some(why) = cannot_run(&["python3", "openssl"], "python3 openssl") {
        eprintln!(
            "\n*** SKIPPED events_reach_an_https_webhook_in_order_through_its_failures: {why} ***\n"
        );
        return;
    }
    let dir = scratch("webhook-live");
    sh_in(
        &dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
           -subj /CN=iotad-test-ca 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
           -subj /CN=localhost 2>/dev/null && \
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
           -out server.pem -days 2 -extfile san.ext 2>/dev/null && \
         printf 'tok3n\\n' > token",
    );
    std::fs::write(dir.join("receiver.py"), RECEIVER).unwrap();
    let (port_file, got) = (dir.join("port"), dir.join("got.jsonl"));
    let _receiver = Receiver(
        Command::new("python3")
            .arg(dir.join("receiver.py"))
            .args([s(&port_file), s(&got), "2"])
            .args([s(&dir.join("server.pem")), s(&dir.join("server.key"))])
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts"),
    );
    let t = Instant::now();
    let port = loop {
        if let Some(p) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
        {
            break p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the receiver is not up"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let pcap = dir.join("net.pcap");
    synth(&pcap, 3, 30, 3, &[&format!("portscan@20:{SCANNER}")]);
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"webhook": {{"url": "https://localhost:{port}/hook/iotad", "ca_file": "{}",
                 "token_file": "{}"}}}}"#,
            dir.join("ca.pem").display(),
            dir.join("token").display()
        ),
    )
    .unwrap();
    let veth = Veth::new("w");
    let log_file = dir.join("events.jsonl");
    let d = Daemon::start(
        &dir,
        "webhook",
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
    veth.play(&pcap, 1.0);
    let t = Instant::now();
    loop {
        let delivered: Vec<Value> = received(&got)
            .into_iter()
            .filter(|r| r.0 == 204)
            .map(|r| r.3)
            .collect();
        if delivered
            .iter()
            .any(|e| e["kind"] == "anomaly" && e["device"]["mac"] == SCANNER)
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "no anomaly for the scanner at the webhook: {:?}\n{}",
            received(&got),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, clean, log) = d.terminate();
    assert!(clean, "{log}");
    let got = received(&got);
    assert!(got.iter().all(|r| r.1.as_deref() == Some("Bearer tok3n")));
    assert!(got.iter().all(|r| r.2 == "/hook/iotad"));
    // the two 503s were answered to the first event, which came again until taken
    assert_eq!(got.iter().filter(|r| r.0 == 503).count(), 2);
    assert_eq!(got[0].3, got[2].3);
    let delivered: Vec<Value> = got
        .into_iter()
        .filter(|r| r.0 == 204)
        .map(|r| r.3)
        .collect();
    assert_eq!(delivered, events(&log_file), "every event, once, in order");
    assert!(log.contains("HTTP 503"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}
