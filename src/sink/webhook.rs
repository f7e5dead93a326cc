//! The webhook sink: each event POSTed as JSON to a URL (http:// or https://), one request
//! per event, in order.
//!
//! A 2xx answer delivers the event. No answer, a timeout, 408, 425, 429 or a 5xx leave it at
//! the front of the queue to be tried again (capped backoff): the receiver is down or busy.
//! Any other answer (400, 401, 404, a redirect...) says the receiver will never take this
//! request: retrying would block every later event behind it, so the event is dropped,
//! logged with the status, and counted. With `webhook.token_file` the request carries
//! `Authorization: Bearer <token>`.
//!
//! The client is our own few lines of HTTP/1.1 (`Connection: close`, the status line read,
//! the rest ignored) over a std `TcpStream`, with rustls for https: a webhook needs no more,
//! and no HTTP crate is added for it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use super::Sink;
use crate::config::{HttpUrl, WebhookConfig};
use crate::detect::Event;

/// What became of one POST.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// Try again later: the receiver is down or busy.
    Retry(String),
    /// The receiver will never take it.
    Rejected(u16),
}

/// What an HTTP status means for an event.
fn outcome(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 425 | 429 | 500..=599 => Outcome::Retry(format!("HTTP {status}")),
        _ => Outcome::Rejected(status),
    }
}

/// The webhook sink.
pub struct Webhook {
    url: HttpUrl,
    token: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    rejected: u64,
}

impl Webhook {
    /// The sink the configuration asks for; `None` without a URL.
    pub fn open(cfg: &WebhookConfig) -> Result<Option<Webhook>, String> {
        let Some(url) = cfg.url.as_deref() else {
            return Ok(None);
        };
        let url = HttpUrl::parse(url)?;
        let token = match &cfg.token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("webhook.token_file {}: {e}", path.display()))?;
                let token = text.lines().next().unwrap_or("").trim().to_string();
                if token.is_empty() || token.chars().any(|c| c.is_control()) {
                    return Err(format!(
                        "webhook.token_file {}: its first line must be the token",
                        path.display()
                    ));
                }
                Some(token)
            }
        };
        let tls = match url.tls {
            true => Some(Arc::new(super::tls::client_config(
                cfg.ca_file.as_deref(),
                "webhook.ca_file",
            )?)),
            false => None,
        };
        log::info!("webhook: events are POSTed to {url}");
        Ok(Some(Webhook {
            url,
            token,
            tls,
            timeout: Duration::from_secs(u64::from(cfg.timeout_secs)),
            rejected: 0,
        }))
    }

    /// The request's head.
    fn head(&self, len: usize) -> String {
        let auth = match &self.token {
            Some(t) => format!("Authorization: Bearer {t}\r\n"),
            None => String::new(),
        };
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: iotad/{}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n{auth}\
             Connection: close\r\n\r\n",
            self.url.path,
            self.url.host_header(),
            env!("CARGO_PKG_VERSION")
        )
    }

    /// POSTs `body`; the answer's status.
    fn post(&self, body: &[u8]) -> Result<u16, String> {
        let addrs = (self.url.host.as_str(), self.url.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.url.host))?;
        let mut last = format!("{} resolves to no address", self.url.host);
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("cannot connect to {a}: {e}"),
            }
        }
        let tcp = tcp.ok_or(last)?;
        tcp.set_read_timeout(Some(self.timeout))
            .and_then(|()| tcp.set_write_timeout(Some(self.timeout)))
            .map_err(|e| e.to_string())?;
        let head = self.head(body.len());
        match &self.tls {
            None => exchange(tcp, head.as_bytes(), body),
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from(self.url.host.clone())
                    .map_err(|e| format!("{}: {e}", self.url.host))?;
                let conn = rustls::ClientConnection::new(Arc::clone(cfg), name)
                    .map_err(|e| format!("TLS: {e}"))?;
                exchange(rustls::StreamOwned::new(conn, tcp), head.as_bytes(), body)
            }
        }
    }
}

/// Writes the request and reads the status of the answer.
fn exchange(mut s: impl Read + Write, head: &[u8], body: &[u8]) -> Result<u16, String> {
    s.write_all(head)
        .and_then(|()| s.write_all(body))
        .and_then(|()| s.flush())
        .map_err(|e| format!("cannot send: {e}"))?;
    // the status line: "HTTP/1.1 204 No Content"
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while line.len() < 1024 && !line.ends_with(b"\n") {
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(format!("no answer: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&line);
    let mut words = text.split_whitespace();
    match (
        words.next(),
        words.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err(format!("not an HTTP answer: {:?}", text.trim_end())),
    }
}

impl Sink for Webhook {
    fn deliver(&mut self, e: &Event) -> Result<(), String> {
        let body = serde_json::to_vec(e).map_err(|e| e.to_string())?;
        let status = self
            .post(&body)
            .map_err(|why| format!("{}: {why}", self.url))?;
        match outcome(status) {
            Outcome::Delivered => Ok(()),
            Outcome::Retry(why) => Err(format!("{}: {why}", self.url)),
            Outcome::Rejected(code) => {
                self.rejected += 1;
                log::error!(
                    "webhook: {} answered HTTP {code}: the event is dropped ({} so far); check \
                     the URL and the token",
                    self.url,
                    self.rejected
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{DeviceRef, EventKind, Severity, ThresholdSource};
    use std::net::TcpListener;

    #[test]
    fn urls_parse_and_errors_name_the_key() {
        let u = HttpUrl::parse("https://ha.lan:8123/api/webhook/iotad?x=1").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "ha.lan", 8123, "/api/webhook/iotad?x=1")
        );
        assert_eq!(u.host_header(), "ha.lan:8123");
        let u = HttpUrl::parse("http://[fd00::1]").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert_eq!(u.to_string(), "http://[fd00::1]/");
        assert_eq!(HttpUrl::parse("https://h?q").unwrap().path, "/?q");
        for bad in [
            "ftp://x",
            "http://",
            "http://u:p@x/",
            "http://x:0/",
            "http://x/a b",
        ] {
            let e = HttpUrl::parse(bad).unwrap_err();
            assert!(e.contains("webhook.url"), "{bad}: {e}");
        }
        assert_eq!(outcome(204), Outcome::Delivered);
        assert_eq!(outcome(503), Outcome::Retry("HTTP 503".into()));
        assert_eq!(outcome(429), Outcome::Retry("HTTP 429".into()));
        assert_eq!(outcome(404), Outcome::Rejected(404));
        assert_eq!(outcome(301), Outcome::Rejected(301));
    }

    fn event() -> Event {
        Event {
            kind: EventKind::NewDevice,
            phase: None,
            incident: None,
            device: DeviceRef {
                mac: "02:00:00:00:00:01".into(),
                ipv4: vec![],
                ipv6: vec![],
                name: "plug".into(),
                vendor_class: String::new(),
                randomized: false,
            },
            window_start: String::new(),
            window_end: String::new(),
            window_start_epoch: 7,
            score: 0.0,
            threshold: 1.0,
            threshold_source: ThresholdSource::Population,
            severity: Severity::Low,
            behaviour: None,
            explanation: vec![],
            detail: None,
            role: None,
            counterpart: None,
        }
    }

    /// A receiver on a real socket answering each request with the next of `statuses`; it
    /// returns every request it read.
    fn receiver(statuses: Vec<u16>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let mut got = Vec::new();
            for status in statuses {
                let (mut s, _) = l.accept().unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // read the head, then Content-Length bytes of body
                loop {
                    let n = s.read(&mut buf).unwrap();
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .unwrap()
                            .parse()
                            .unwrap();
                        if req.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                got.push(String::from_utf8(req).unwrap());
                write!(s, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").unwrap();
            }
            got
        });
        (port, t)
    }

    #[test]
    fn events_are_posted_retried_on_5xx_and_dropped_on_4xx() {
        let (port, t) = receiver(vec![503, 204, 400]);
        let dir = std::env::temp_dir().join(format!("iotad-webhook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "s3cret\n").unwrap();
        let cfg = WebhookConfig {
            url: Some(format!("http://127.0.0.1:{port}/hook?n=1")),
            token_file: Some(dir.join("token")),
            ..WebhookConfig::default()
        };
        cfg.validate().unwrap();
        let mut w = Webhook::open(&cfg).unwrap().unwrap();
        let e = event();
        let err = w.deliver(&e).unwrap_err();
        assert!(err.contains("HTTP 503"), "{err}");
        w.deliver(&e).unwrap();
        w.deliver(&e).unwrap();
        assert_eq!(w.rejected, 1);
        let got = t.join().unwrap();
        assert_eq!(got.len(), 3);
        let req = &got[1];
        assert!(req.starts_with("POST /hook?n=1 HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
            "{req}"
        );
        assert!(
            req.contains("\r\nAuthorization: Bearer s3cret\r\n"),
            "{req}"
        );
        assert!(
            req.contains("\r\nContent-Type: application/json\r\n"),
            "{req}"
        );
        let body = req.split("\r\n\r\n").nth(1).unwrap();
        let back: Event = serde_json::from_str(body).unwrap();
        assert_eq!(back, e);
        // nobody listening: an error to retry, not a drop
        assert!(w.deliver(&e).is_err());
        assert_eq!(w.rejected, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
