//! The email sink: one plain-text mail per incident opened (with its explanation and a link to
//! the status page) and one when it closes, over SMTP with STARTTLS, implicit TLS or (on a
//! trusted network, without a login) none.
//!
//! A flood must not become hundreds of mails: at most `email.max_per_hour` mails leave in any
//! hour. Events beyond that wait in a digest (held in memory, bounded, counted) that goes out
//! as one mail as soon as the hour allows. Incident updates are not mailed (the close says how
//! it ended); other events (ARP spoofing, a new router, a MAC flood; new devices if
//! `email.new_devices` lets them through) are mailed like an opening.
//!
//! Everything a device sent (its DHCP name, vendor class) is hostile: a header carries only
//! printable ASCII (anything else becomes `?`, so CR/LF can never start a header of its
//! own), bounded in length; the body is text/plain with control characters replaced, lines
//! bounded and dot-stuffed.
//!
//! The SMTP client is our own (EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA) over a std
//! `TcpStream` and rustls, as the webhook's HTTP is: lettre would add some forty crates (an
//! IDNA/Unicode stack, a parser combinator, MIME encoders) to the static binary for a few
//! hundred bytes of ASCII each alert, and its header encoding is not what keeps device
//! strings out of headers here: [`header_text`] is.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Sink;
use crate::config::{EmailConfig, Security};
use crate::detect::{Event, EventKind, Phase};

/// Events a digest holds at most; beyond, the oldest are dropped and counted.
const DIGEST_MAX: usize = 200;
/// Events a digest mail lists in full; the rest are counted.
const DIGEST_LISTED: usize = 50;
/// Longest line of a mail's body (RFC 5321 allows 998 bytes).
const LINE_MAX: usize = 900;
/// Longest header value built from event text.
const HEADER_MAX: usize = 160;

/// A header's value from untrusted text: printable ASCII only (anything else, CR and LF
/// first, becomes `?`), at most [`HEADER_MAX`] bytes.
pub fn header_text(s: &str) -> String {
    s.chars()
        .take(HEADER_MAX)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// A body line from untrusted text: control characters become `?`.
fn body_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The message's body as SMTP DATA: CRLF line ends, long lines split, leading dots doubled.
fn data(body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    for line in body.lines() {
        let mut rest = line;
        loop {
            let mut cut = rest.len().min(LINE_MAX);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (piece, after) = rest.split_at(cut);
            if piece.starts_with('.') {
                out.push(b'.');
            }
            out.extend_from_slice(piece.as_bytes());
            out.extend_from_slice(b"\r\n");
            rest = after;
            if rest.is_empty() {
                break;
            }
        }
    }
    out
}

/// An RFC 5322 date: `Mon, 30 Nov 2026 04:29:50 +0000`.
fn mail_date(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::export::civil_from_days(days);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Standard base64 (for AUTH PLAIN).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What an event is, in a few words, for a subject line.
fn what(e: &Event) -> &'static str {
    match (e.kind, e.phase) {
        (EventKind::Anomaly, Some(Phase::Open)) => "anomaly",
        (EventKind::Anomaly, Some(Phase::Update)) => "anomaly continues",
        (EventKind::Anomaly, Some(Phase::Close)) => "anomaly over",
        (EventKind::Anomaly, None) => "anomaly",
        (EventKind::NewDevice, _) => "new device",
        (EventKind::GatewayChange, _) => "router change",
        (EventKind::NextHopChange, _) => "next hop change",
        (EventKind::ArpSpoof, _) => "ARP spoofing",
        (EventKind::MacFlood, _) => "MAC flood",
        (EventKind::DeviceQuiet, _) => "device gone quiet",
    }
}

/// Who an event is about: `name (mac)` or the MAC.
fn who(e: &Event) -> String {
    match e.device.name.is_empty() {
        true => e.device.mac.clone(),
        false => format!("{} ({})", e.device.name, e.device.mac),
    }
}

/// The subject of one event's mail (before [`header_text`]).
pub fn subject(e: &Event) -> String {
    let mut s = format!("[iotad] {}: {}", what(e), who(e));
    if let Some(n) = e.incident {
        s += &format!(", incident {n}");
    }
    if e.phase == Some(Phase::Open) {
        s += &format!(", {:?}", e.severity).to_lowercase();
    }
    s
}

/// One event in words: who, when, how bad, and why.
fn describe(e: &Event, out: &mut String) {
    let d = &e.device;
    *out += &format!("{}: {}\n", what(e), body_text(&who(e)));
    *out += &format!("  when:      {} to {}\n", e.window_start, e.window_end);
    if let Some(n) = e.incident {
        *out += &format!("  incident:  {n}\n");
    }
    if !d.ipv4.is_empty() || !d.ipv6.is_empty() {
        let ips: Vec<&str> = d.ipv4.iter().chain(&d.ipv6).map(String::as_str).collect();
        *out += &format!("  addresses: {}\n", body_text(&ips.join(", ")));
    }
    if !d.vendor_class.is_empty() {
        *out += &format!("  vendor class: {}\n", body_text(&d.vendor_class));
    }
    if d.randomized {
        *out += "  (a locally administered, likely randomized MAC)\n";
    }
    if e.kind == EventKind::Anomaly && e.phase != Some(Phase::Close) {
        *out += &format!(
            "  score {:.2} over threshold {:.2} ({}), severity {:?}\n",
            e.score,
            e.threshold,
            e.threshold_source.as_str(),
            e.severity
        )
        .to_lowercase();
    }
    if let Some(detail) = &e.detail {
        *out += &format!("  {}\n", body_text(detail));
    }
    if !e.explanation.is_empty() {
        *out += "  why:\n";
        for c in &e.explanation {
            *out += &format!("  - {}\n", body_text(&c.text));
        }
    }
}

/// How the connection is secured.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.as_mut(),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// An SMTP failure: worth trying again later (the server is away, busy, or said 4xx), or a
/// permanent refusal of this message (5xx to its sender, recipients or content).
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    Retry(String),
    Refused(String),
}

/// One SMTP session.
struct Session {
    stream: Stream,
    /// The extensions of the last EHLO answer.
    ehlo: String,
}

impl Session {
    fn send(&mut self, line: &str) -> Result<(), Failure> {
        let io = self.stream.io();
        io.write_all(line.as_bytes())
            .and_then(|()| io.write_all(b"\r\n"))
            .and_then(|()| io.flush())
            .map_err(|e| Failure::Retry(format!("cannot send: {e}")))
    }

    /// The server's reply: its code and its text (all lines).
    fn reply(&mut self) -> Result<(u16, String), Failure> {
        let io = self.stream.io();
        let mut text = String::new();
        for _ in 0..64 {
            let mut line = Vec::with_capacity(128);
            let mut byte = [0u8; 1];
            while line.len() < 2048 && !line.ends_with(b"\n") {
                match io.read(&mut byte) {
                    Ok(0) => return Err(Failure::Retry("the server hung up".into())),
                    Ok(_) => line.push(byte[0]),
                    Err(e) => return Err(Failure::Retry(format!("no answer: {e}"))),
                }
            }
            let l = String::from_utf8_lossy(&line);
            let l = l.trim_end();
            let code = l
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| Failure::Retry(format!("not an SMTP answer: {l:?}")))?;
            text += l.get(4..).unwrap_or("");
            text.push('\n');
            if l.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
        Err(Failure::Retry("an endless answer".into()))
    }

    /// Sends `line` (or nothing) and insists on a reply in `ok`; 4xx and the unexpected are
    /// worth a retry, 5xx is a refusal.
    fn expect(&mut self, line: Option<&str>, ok: &[u16], what: &str) -> Result<String, Failure> {
        if let Some(l) = line {
            self.send(l)?;
        }
        let (code, text) = self.reply()?;
        if ok.contains(&code) {
            return Ok(text);
        }
        let msg = format!("{what}: {code} {}", text.trim_end().replace('\n', " "));
        match code {
            500..=599 => Err(Failure::Refused(msg)),
            _ => Err(Failure::Retry(msg)),
        }
    }
}

/// Which mails went out in the last hour, to stay under `max_per_hour`.
struct Budget {
    per_hour: u32,
    sent: VecDeque<Instant>,
}

impl Budget {
    fn available(&mut self) -> bool {
        while self
            .sent
            .front()
            .is_some_and(|t| t.elapsed() >= Duration::from_secs(3600))
        {
            self.sent.pop_front();
        }
        self.sent.len() < self.per_hour as usize
    }

    fn spend(&mut self) {
        self.sent.push_back(Instant::now());
    }
}

/// The email sink.
pub struct Email {
    server: String,
    port: u16,
    security: Security,
    tls: Option<Arc<rustls::ClientConfig>>,
    login: Option<(String, String)>,
    from: String,
    to: Vec<String>,
    status_url: Option<String>,
    hostname: String,
    timeout: Duration,
    budget: Budget,
    /// Events waiting for the next digest mail, and how many a full digest dropped.
    digest: VecDeque<Event>,
    digest_dropped: u64,
    /// When a digest last failed to go out (it waits a little before the next try).
    digest_failed: Option<(Instant, u32)>,
    sent: u64,
    refused: u64,
}

impl Email {
    /// The sink the configuration asks for; `None` without a server.
    pub fn open(cfg: &EmailConfig) -> Result<Option<Email>, String> {
        let Some(server) = cfg.server.clone() else {
            return Ok(None);
        };
        cfg.validate()?;
        let password = match (&cfg.password, &cfg.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("email.password_file {}: {e}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
            (None, None) => None,
        };
        let login = cfg
            .username
            .clone()
            .map(|u| (u, password.unwrap_or_default()));
        let tls = match cfg.security {
            Security::None => None,
            _ => Some(Arc::new(super::tls::client_config(
                cfg.ca_file.as_deref(),
                "email.ca_file",
            )?)),
        };
        let hostname = super::mqtt::hostname();
        let from = cfg.from.clone().unwrap_or_else(|| {
            format!(
                "iotad@{}",
                super::mqtt::topic::sanitize(&hostname).replace('_', "-")
            )
        });
        let port = cfg.port();
        log::info!(
            "email: incidents are mailed to {} through {server}:{port} ({:?}), at most {} mails an hour",
            cfg.to.join(", "),
            cfg.security,
            cfg.max_per_hour
        );
        Ok(Some(Email {
            server,
            port,
            security: cfg.security,
            tls,
            login,
            from,
            to: cfg.to.clone(),
            status_url: cfg.status_url.as_deref().map(header_text),
            hostname,
            timeout: Duration::from_secs(u64::from(cfg.timeout_secs)),
            budget: Budget {
                per_hour: cfg.max_per_hour,
                sent: VecDeque::new(),
            },
            digest: VecDeque::new(),
            digest_dropped: 0,
            digest_failed: None,
            sent: 0,
            refused: 0,
        }))
    }

    /// Whether an event is mailed at all: incident updates are not.
    fn mailed(e: &Event) -> bool {
        e.phase != Some(Phase::Update)
    }

    /// The whole message: headers and body, as DATA (dot-stuffed, CRLF, no final dot).
    fn message(&self, subject: &str, body: &str, incident: Option<u64>) -> Vec<u8> {
        let now = now_secs();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let domain = self.from.rsplit_once('@').map_or("iotad", |(_, d)| d);
        let mut head = format!(
            "From: iotad <{}>\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\n\
             Message-ID: <{now}.{nanos}.{}.{}@{}>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\
             Auto-Submitted: auto-generated\r\nX-Mailer: iotad {}\r\n",
            self.from,
            self.to.join(", "),
            header_text(subject),
            mail_date(now),
            std::process::id(),
            self.sent,
            header_text(domain),
            env!("CARGO_PKG_VERSION"),
        );
        if let Some(n) = incident {
            head += &format!("X-Iotad-Incident: {n}\r\n");
        }
        let mut out = head.into_bytes();
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&data(body));
        out
    }

    /// The footer of every mail: the status page, and who sent it.
    fn footer(&self, out: &mut String) {
        *out += "\n--\n";
        if let Some(url) = &self.status_url {
            *out += &format!("Status page: {url}\n");
        }
        *out += &format!(
            "iotad {} on {}\n",
            env!("CARGO_PKG_VERSION"),
            body_text(&self.hostname)
        );
    }

    /// One event's mail.
    fn event_mail(&self, e: &Event) -> Vec<u8> {
        let mut body = String::new();
        describe(e, &mut body);
        self.footer(&mut body);
        self.message(&subject(e), &body, e.incident)
    }

    /// The digest of what waited.
    fn digest_mail(&self) -> Vec<u8> {
        let n = self.digest.len() as u64 + self.digest_dropped;
        let mut body = format!(
            "{n} events came while the hour's {} mails were spent; here they are in one.\n\n",
            self.budget.per_hour
        );
        for e in self.digest.iter().take(DIGEST_LISTED) {
            describe(e, &mut body);
            body.push('\n');
        }
        let unlisted = n - self.digest.len().min(DIGEST_LISTED) as u64;
        if unlisted > 0 {
            body += &format!(
                "... and {unlisted} more (the event log and the status page have them all).\n"
            );
        }
        self.footer(&mut body);
        self.message(&format!("[iotad] {n} events (digest)"), &body, None)
    }

    /// Connects, says hello, secures and logs in.
    fn session(&self) -> Result<Session, Failure> {
        let addrs = (self.server.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| Failure::Retry(format!("cannot resolve {}: {e}", self.server)))?;
        let mut last = format!("{} resolves to no address", self.server);
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
        let tcp = tcp.ok_or(Failure::Retry(last))?;
        tcp.set_read_timeout(Some(self.timeout))
            .and_then(|()| tcp.set_write_timeout(Some(self.timeout)))
            .map_err(|e| Failure::Retry(e.to_string()))?;
        let stream = match self.security {
            Security::Tls => Stream::Tls(Box::new(self.wrap(tcp)?)),
            _ => Stream::Plain(tcp),
        };
        let mut s = Session {
            stream,
            ehlo: String::new(),
        };
        s.expect(None, &[220], "greeting")?;
        let hello = format!("EHLO {}", header_text(&self.hostname).replace(' ', "-"));
        s.ehlo = s.expect(Some(&hello), &[250], "EHLO")?;
        if self.security == Security::Starttls {
            if !s.ehlo.to_ascii_uppercase().contains("STARTTLS") {
                return Err(Failure::Retry(
                    "the server does not offer STARTTLS (email.security is starttls)".into(),
                ));
            }
            s.expect(Some("STARTTLS"), &[220], "STARTTLS")?;
            s.stream = match s.stream {
                Stream::Plain(tcp) => Stream::Tls(Box::new(self.wrap(tcp)?)),
                tls => tls,
            };
            s.ehlo = s.expect(Some(&hello), &[250], "EHLO after STARTTLS")?;
        }
        if let Some((user, password)) = &self.login {
            let token = base64(format!("\0{user}\0{password}").as_bytes());
            // a refused login is the configuration's fault: retried (the events wait) while
            // someone fixes it, not dropped
            s.expect(Some(&format!("AUTH PLAIN {token}")), &[235], "login")
                .map_err(|f| match f {
                    Failure::Refused(m) => Failure::Retry(m),
                    r => r,
                })?;
        }
        Ok(s)
    }

    fn wrap(
        &self,
        tcp: TcpStream,
    ) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, Failure> {
        let cfg = self
            .tls
            .as_ref()
            .ok_or_else(|| Failure::Retry("no TLS configuration".into()))?;
        let name = rustls::pki_types::ServerName::try_from(self.server.clone())
            .map_err(|e| Failure::Retry(format!("{}: {e}", self.server)))?;
        let conn = rustls::ClientConnection::new(Arc::clone(cfg), name)
            .map_err(|e| Failure::Retry(format!("TLS: {e}")))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        // the handshake now, so a bad certificate says so here
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .map_err(|e| Failure::Retry(format!("TLS with {}: {e}", self.server)))?;
        }
        Ok(s)
    }

    /// Mails one message to every recipient.
    fn mail(&self, message: &[u8]) -> Result<(), Failure> {
        let mut s = self.session()?;
        s.expect(
            Some(&format!("MAIL FROM:<{}>", self.from)),
            &[250],
            "MAIL FROM",
        )?;
        for to in &self.to {
            s.expect(Some(&format!("RCPT TO:<{to}>")), &[250, 251], "RCPT TO")?;
        }
        s.expect(Some("DATA"), &[354], "DATA")?;
        let io = s.stream.io();
        io.write_all(message)
            .and_then(|()| io.write_all(b".\r\n"))
            .and_then(|()| io.flush())
            .map_err(|e| Failure::Retry(format!("cannot send the message: {e}")))?;
        s.expect(None, &[250], "the message")?;
        let _ = s.send("QUIT");
        Ok(())
    }

    /// Sends `message`: Ok when it went out or was refused for good (logged, counted).
    fn send_or_drop(&mut self, message: &[u8], what: &str) -> Result<(), String> {
        match self.mail(message) {
            Ok(()) => {
                self.budget.spend();
                self.sent += 1;
                log::info!("email: {what} mailed to {}", self.to.join(", "));
                Ok(())
            }
            Err(Failure::Retry(why)) => Err(format!("{}:{}: {why}", self.server, self.port)),
            Err(Failure::Refused(why)) => {
                self.refused += 1;
                log::error!(
                    "email: {}:{} refused {what} ({why}); it is dropped ({} so far)",
                    self.server,
                    self.port,
                    self.refused
                );
                Ok(())
            }
        }
    }

    /// Sends the digest when the hour allows.
    fn flush_digest(&mut self) {
        if self.digest.is_empty() || !self.budget.available() {
            return;
        }
        if let Some((at, failures)) = self.digest_failed {
            let wait = Duration::from_secs(5u64 << failures.min(6)).min(Duration::from_secs(300));
            if at.elapsed() < wait {
                return;
            }
        }
        let n = self.digest.len();
        let message = self.digest_mail();
        match self.send_or_drop(&message, &format!("a digest of {n} events")) {
            Ok(()) => {
                self.digest.clear();
                self.digest_dropped = 0;
                self.digest_failed = None;
            }
            Err(why) => {
                let failures = self.digest_failed.map_or(0, |(_, f)| f + 1);
                if failures == 0 {
                    log::warn!("email: {why}; the digest waits, retrying");
                }
                self.digest_failed = Some((Instant::now(), failures));
            }
        }
    }
}

impl Sink for Email {
    fn deliver(&mut self, e: &Event) -> Result<(), String> {
        if !Email::mailed(e) {
            return Ok(());
        }
        // what waits in the digest goes first, so mails keep the events' order
        if !self.digest.is_empty() || !self.budget.available() {
            if self.digest.len() >= DIGEST_MAX {
                self.digest.pop_front();
                self.digest_dropped += 1;
            }
            self.digest.push_back(e.clone());
            if self.digest.len() == 1 {
                log::warn!(
                    "email: {} mails in the last hour: the next events wait for one digest mail",
                    self.budget.per_hour
                );
            }
            return Ok(());
        }
        let message = self.event_mail(e);
        self.send_or_drop(&message, &format!("{} about {}", what(e), e.device.mac))
    }

    fn idle(&mut self) {
        self.flush_digest();
    }

    fn close(&mut self, _deadline: Instant) {
        if !self.digest.is_empty() {
            log::warn!(
                "email: {} events waited for a digest at exit (the event log has them)",
                self.digest.len() as u64 + self.digest_dropped
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Contribution, DeviceRef, Severity, ThresholdSource};

    pub fn event(name: &str) -> Event {
        Event {
            kind: EventKind::Anomaly,
            phase: Some(Phase::Open),
            incident: Some(7),
            device: DeviceRef {
                mac: "02:10:00:00:00:00".into(),
                ipv4: vec!["192.168.1.10".into()],
                ipv6: vec![],
                name: name.into(),
                vendor_class: "udhcp\r\nBcc: x@evil".into(),
                randomized: true,
            },
            window_start: "2024-01-01T01:05:00Z".into(),
            window_end: "2024-01-01T01:05:10Z".into(),
            window_start_epoch: 1_704_071_100,
            score: 812.5,
            threshold: 12.66,
            threshold_source: ThresholdSource::Device,
            severity: Severity::High,
            behaviour: None,
            role: None,
            counterpart: None,
            explanation: vec![Contribution {
                feature: "syn_out".into(),
                unit: "packets".into(),
                observed: 1000.0,
                expected: 0.0,
                weight: 800.0,
                text: "sent 1000 SYNs where 0 were expected\r\n.\r\nQUIT".into(),
            }],
            detail: None,
        }
    }

    fn sink() -> Email {
        let cfg = EmailConfig {
            server: Some("127.0.0.1".into()),
            security: Security::None,
            to: vec!["me@home.lan".into()],
            from: Some("iotad@pi.lan".into()),
            status_url: Some("http://pi.lan:8080/".into()),
            ..EmailConfig::default()
        };
        Email::open(&cfg).unwrap().unwrap()
    }

    #[test]
    fn hostile_names_never_make_a_header_and_never_end_the_data() {
        let hostile =
            "cam\r\nBcc: victim@x\r\n\r\n<script>\"'\u{0}\u{7f}é😀".to_string() + &"x".repeat(300);
        let m = sink().event_mail(&event(&hostile));
        let text = String::from_utf8(m).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let names: Vec<&str> = head
            .split("\r\n")
            .map(|l| l.split_once(':').unwrap().0)
            .collect();
        assert_eq!(
            names,
            [
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "MIME-Version",
                "Content-Type",
                "Content-Transfer-Encoding",
                "Auto-Submitted",
                "X-Mailer",
                "X-Iotad-Incident"
            ]
        );
        let subject = head.lines().find(|l| l.starts_with("Subject: ")).unwrap();
        assert!(
            subject.starts_with("Subject: [iotad] anomaly: cam??Bcc: victim@x????<script>\"'"),
            "{subject}"
        );
        assert!(subject.len() <= "Subject: ".len() + HEADER_MAX, "{subject}");
        assert!(subject.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
        // the body: every line ends CRLF, no bare CR or LF, no line is a lone dot
        assert!(!body.replace("\r\n", "").contains(['\r', '\n']));
        assert!(body.split("\r\n").all(|l| l != "."));
        assert!(
            body.contains("  - sent 1000 SYNs where 0 were expected??.??QUIT\r\n"),
            "{body}"
        );
        assert!(
            body.contains("vendor class: udhcp??Bcc: x@evil\r\n"),
            "{body}"
        );
        assert!(
            body.contains("Status page: http://pi.lan:8080/\r\n"),
            "{body}"
        );
        assert!(
            body.contains("score 812.50 over threshold 12.66 (device), severity high"),
            "{body}"
        );
    }

    #[test]
    fn data_is_dot_stuffed_and_bounded() {
        let long = "y".repeat(2000);
        let d = String::from_utf8(data(&format!(".hidden\n{long}\nend"))).unwrap();
        let lines: Vec<&str> = d.split("\r\n").collect();
        assert_eq!(lines[0], "..hidden");
        assert!(lines.iter().all(|l| l.len() <= LINE_MAX));
        assert_eq!(lines.iter().map(|l| l.len()).sum::<usize>(), 8 + 2000 + 3);
        assert_eq!(mail_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(mail_date(1_796_012_990), "Mon, 30 Nov 2026 04:29:50 +0000");
        assert_eq!(base64(b"\0u\0p"), "AHUAcA==");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn past_the_hours_budget_events_wait_for_one_digest() {
        let mut s = sink();
        s.budget.per_hour = 0;
        for n in 0..(DIGEST_MAX as u64 + 5) {
            let mut e = event("cam");
            e.incident = Some(n);
            s.deliver(&e).unwrap();
        }
        // updates are not mailed at all
        let mut u = event("cam");
        u.phase = Some(Phase::Update);
        s.deliver(&u).unwrap();
        assert_eq!((s.digest.len(), s.digest_dropped), (DIGEST_MAX, 5));
        let text = String::from_utf8(s.digest_mail()).unwrap();
        assert!(text.contains("Subject: [iotad] 205 events (digest)\r\n"));
        assert_eq!(
            text.matches("anomaly: cam (02:10:00:00:00:00)").count(),
            DIGEST_LISTED
        );
        assert!(text.contains("... and 155 more"));
    }
}
