//! The status page, its JSON API and the Prometheus metrics (`iotad run`, the `http` section).
//!
//! The server never touches live state: the capture loop posts a [`Snapshot`] (the engine's
//! [`Status`], the kernel's and the sinks' counters, the last [`RECENT`] events) to a
//! [`StatusBoard`] every second and after events, and every request reads the latest one.
//!
//! The server is ours, on `std::net`: one accept thread, one thread per connection up to
//! `http.max_connections`. A client has `http.timeout_secs` to send its request head (at
//! most [`MAX_HEAD`] bytes; no body is read) and to read the answer; one request per
//! connection. When every slot is taken, the connection that has waited longest for its
//! request head is closed to make room (idle clients cannot starve the others); when every
//! slot is busy answering, the newcomer waits up to [`ROOM_WAIT`] for one, then gets 503.
//!
//! Actions (name a device, mute its alerts, relearn it, forget it) are POST forms to
//! `/device/<mac>/<action>` carrying the access token (cookie or bearer) and the server's
//! CSRF token (random at each start, in the device page's forms); a GET changes nothing.
//! The server does not apply them: it hands them to the capture loop through a bounded
//! channel ([`ACTIONS`] deep; full is 503), which applies them between packets and saves the
//! state at once.

pub mod metrics;
pub mod page;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::capture::CaptureStats;
use crate::config::HttpConfig;
use crate::detect::Event;
use crate::engine::{Action, Status};
use crate::sink::{QueueStats, StatusBoard};
use crate::wire::Mac;

/// Events kept for the page and `/api/anomalies`.
pub const RECENT: usize = 50;
/// Longest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a newcomer waits for a slot when every one is answering, before it gets 503.
pub const ROOM_WAIT: Duration = Duration::from_millis(500);
/// Longest request body read (an action's form).
pub const MAX_BODY: usize = 2 * 1024;
/// Actions waiting for the capture loop at most.
pub const ACTIONS: usize = 16;
/// Longest mute, in minutes (30 days).
pub const MAX_MUTE_MIN: u64 = 30 * 24 * 60;
/// `/healthz` answers 503 when the capture loop has not posted for this long.
pub const STALE: Duration = Duration::from_secs(5);
const COOKIE: &str = "iotad_token";

/// What the capture loop publishes for the server.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub version: &'static str,
    pub uptime_secs: u64,
    pub interface: String,
    pub kernel: CaptureStats,
    pub sinks: Vec<SinkStatus>,
    /// In `/api/status` with its fields at the top level (its devices are `/api/devices`).
    #[serde(skip)]
    pub node: Arc<Status>,
    #[serde(skip)]
    pub recent: Arc<Vec<Event>>,
    /// What the capture can see from where it sits (`iotad run` measures it).
    pub visibility: Option<crate::daemon::visibility::Report>,
}

/// One sink's queue.
#[derive(Clone, Debug, Serialize)]
pub struct SinkStatus {
    pub name: String,
    #[serde(flatten)]
    pub queue: QueueStats,
}

impl SinkStatus {
    pub fn all(stats: Vec<(String, QueueStats)>) -> Vec<SinkStatus> {
        stats
            .into_iter()
            .map(|(name, queue)| SinkStatus { name, queue })
            .collect()
    }
}

/// The last [`RECENT`] events, oldest first, kept by the capture loop.
#[derive(Default)]
pub struct Recent {
    events: VecDeque<Event>,
    shared: Arc<Vec<Event>>,
    changed: bool,
}

impl Recent {
    pub fn push(&mut self, e: &Event) {
        if self.events.len() == RECENT {
            self.events.pop_front();
        }
        self.events.push_back(e.clone());
        self.changed = true;
    }

    /// The events as they are now (copied only when they changed).
    pub fn shared(&mut self) -> Arc<Vec<Event>> {
        if self.changed {
            self.shared = Arc::new(self.events.iter().cloned().collect());
            self.changed = false;
        }
        Arc::clone(&self.shared)
    }
}

/// The running server; stops its accept thread when dropped.
pub struct Server {
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wake the accept thread
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

/// One connection being served.
struct Slot {
    id: u64,
    stream: TcpStream,
    since: Instant,
    /// Still waiting for its request head (may be closed to make room).
    reading: bool,
}

/// Where actions go, and the token their forms must carry.
pub struct Actions {
    pub tx: SyncSender<Action>,
    pub csrf: String,
}

impl Actions {
    /// Actions sent to `tx`, with a fresh random CSRF token.
    pub fn new(tx: SyncSender<Action>) -> Actions {
        Actions {
            tx,
            csrf: random_token(),
        }
    }
}

/// 128 random bits as hex (the kernel's random source; the clock and the process id when
/// it cannot be read).
fn random_token() -> String {
    let mut b = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Shared {
    board: Arc<StatusBoard<Snapshot>>,
    token: Option<String>,
    actions: Option<Actions>,
    timeout: Duration,
    max: usize,
    slots: Mutex<Vec<Slot>>,
    next_id: AtomicU64,
}

/// Binds `cfg.bind` and serves from `board` on a thread of its own; actions go to `actions`
/// (none: the page has no actions).
pub fn start(
    cfg: &HttpConfig,
    board: Arc<StatusBoard<Snapshot>>,
    actions: Option<SyncSender<Action>>,
) -> Result<Server, String> {
    let addr = cfg.addr()?;
    let token = cfg.token()?;
    let listener = TcpListener::bind(addr).map_err(|e| format!("http.bind {}: {e}", cfg.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        board,
        token,
        actions: actions.map(Actions::new),
        timeout: Duration::from_secs(u64::from(cfg.timeout_secs)),
        max: cfg.max_connections,
        slots: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(0),
    });
    let halt = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || accept(&listener, &shared, &halt))
        .map_err(|e| e.to_string())?;
    Ok(Server { addr, stop })
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = conn else {
            // out of file descriptors and the like: do not spin
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = stream.set_read_timeout(Some(shared.timeout));
        let _ = stream.set_write_timeout(Some(shared.timeout));
        let _ = stream.set_nodelay(true);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut slots = shared.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.len() >= shared.max {
                // make room: close the client that has waited longest without asking
                let oldest = slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.reading)
                    .min_by_key(|(_, s)| s.since)
                    .map(|(i, _)| i);
                match oldest {
                    Some(i) => {
                        let s = slots.swap_remove(i);
                        let _ = s.stream.shutdown(Shutdown::Both);
                    }
                    // every slot is answering: they finish within moments unless the machine
                    // is starved (the capture thread comes first), so wait for one a little
                    None => {
                        drop(slots);
                        if !wait_for_room(shared) {
                            let mut stream = stream;
                            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                            let _ = stream.write_all(
                                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\
                                  Connection: close\r\nRetry-After: 1\r\n\r\nbusy\n",
                            );
                            continue;
                        }
                        slots = shared.slots.lock().unwrap_or_else(|p| p.into_inner());
                    }
                }
            }
            let Ok(copy) = stream.try_clone() else {
                continue;
            };
            slots.push(Slot {
                id,
                stream: copy,
                since: Instant::now(),
                reading: true,
            });
        }
        let sh = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("http-conn".into())
            .spawn(move || {
                serve(&sh, id, stream);
                let mut slots = sh.slots.lock().unwrap_or_else(|p| p.into_inner());
                slots.retain(|s| s.id != id);
            });
        if spawned.is_err() {
            let mut slots = shared.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.retain(|s| s.id != id);
        }
    }
}

/// Waits up to [`ROOM_WAIT`] for a connection slot to free; true when one did.
fn wait_for_room(shared: &Shared) -> bool {
    let until = Instant::now() + ROOM_WAIT;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
        let slots = shared.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() < shared.max {
            return true;
        }
    }
    false
}

/// A parsed request: what the server looks at.
#[derive(Debug, Default, PartialEq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
    pub content_length: Option<usize>,
    pub content_type: Option<String>,
    /// The body (POST only, at most [`MAX_BODY`] bytes).
    pub body: Vec<u8>,
}

/// Where the head in `buf` ends (after its blank line).
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads the rest of a body of `len` bytes after the `got` bytes already read, by
/// `deadline`.
fn read_body(
    stream: &mut TcpStream,
    mut got: Vec<u8>,
    len: usize,
    deadline: Instant,
) -> Result<Vec<u8>, u16> {
    got.truncate(len);
    let mut buf = [0u8; 1024];
    while got.len() < len {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(408);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf[..(len - got.len()).min(1024)]) {
            Ok(0) => return Err(400),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return Err(408),
        }
    }
    Ok(got)
}

/// Reads the request head: up to [`MAX_HEAD`] bytes within `timeout` overall (with what
/// came after it: the start of a body).
fn read_head(stream: &mut TcpStream, timeout: Duration) -> Result<Vec<u8>, u16> {
    let deadline = Instant::now() + timeout;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        if head_end(&head).is_some() {
            return Ok(head);
        }
        if head.len() >= MAX_HEAD {
            return Err(431);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(408);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => return Err(0),
            Ok(n) => head.extend_from_slice(&buf[..n.min(MAX_HEAD + 4 - head.len())]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(408)
            }
            Err(_) => return Err(0),
        }
    }
}

/// Parses a request head; `None` when it is not HTTP/1.x.
pub fn parse(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let mut first = lines.next()?.split(' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    if !version.starts_with("HTTP/1.")
        || first.next().is_some()
        || !target.bytes().all(|b| b.is_ascii_graphic())
    {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut r = Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        ..Request::default()
    };
    for l in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = l.split_once(':')?;
        let value = value.trim().to_string();
        if name.eq_ignore_ascii_case("authorization") {
            r.authorization = Some(value);
        } else if name.eq_ignore_ascii_case("cookie") {
            r.cookie = Some(value);
        } else if name.eq_ignore_ascii_case("content-length") {
            r.content_length = Some(value.parse().ok()?);
        } else if name.eq_ignore_ascii_case("content-type") {
            r.content_type = Some(value);
        }
    }
    Some(r)
}

/// An answer.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    fn text(status: u16, body: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{body}\n"))
    }

    fn json(v: &impl Serialize) -> Response {
        let body = serde_json::to_vec_pretty(v).unwrap_or_default();
        Response::new(200, "application/json", body)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    }
}

fn serve(shared: &Shared, id: u64, mut stream: TcpStream) {
    let deadline = Instant::now() + shared.timeout;
    let head = read_head(&mut stream, shared.timeout).and_then(|buf| {
        let end = head_end(&buf).unwrap_or(buf.len());
        let mut req = parse(&buf[..end]).ok_or(400u16)?;
        if req.method == "POST" {
            let len = req.content_length.ok_or(411u16)?;
            if len > MAX_BODY {
                return Err(413);
            }
            req.body = read_body(&mut stream, buf[end..].to_vec(), len, deadline)?;
        }
        Ok(req)
    });
    {
        let mut slots = shared.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slots.iter_mut().find(|s| s.id == id) {
            s.reading = false;
        }
    }
    let (response, head_only) = match head {
        Err(0) => return,
        Err(code) => (Response::text(code, reason(code)), false),
        Ok(req) => (answer(shared, &req), req.method == "HEAD"),
    };
    let _ = stream.set_write_timeout(Some(shared.timeout));
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    if response.content_type.starts_with("text/html") {
        out += "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; \
                img-src 'self'; form-action 'self'; frame-ancestors 'none'\r\n\
                X-Frame-Options: DENY\r\n";
    }
    for (k, v) in &response.headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += "\r\n";
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&response.body);
    }
    let _ = stream.write_all(&bytes);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The query parameter `name`'s value (tokens are printable ASCII: no decoding needed).
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// Whether `req` carries `token` as a bearer token or in the cookie.
fn carries(req: &Request, token: &str) -> bool {
    let bearer = req
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim(), token));
    let cookie = req.cookie.as_deref().is_some_and(|c| {
        c.split(';')
            .filter_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .any(|t| same(t, token))
    });
    bearer || cookie
}

fn unauthorized() -> Response {
    let mut r = Response::text(401, "a token is needed (Authorization: Bearer, or ?token=)");
    r.headers
        .push(("WWW-Authenticate", "Bearer realm=\"iotad\"".into()));
    r
}

/// `%XX` and `+` decoded (a form field); `None` when it is not UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            x => out.push(x),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The form field `name` of an `application/x-www-form-urlencoded` body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(form_decode)
}

/// A POST: an action, checked (access token, CSRF token, form) and handed to the capture
/// loop.
fn act(token: Option<&str>, actions: Option<&Actions>, req: &Request) -> Response {
    let Some(actions) = actions else {
        let mut r = Response::text(405, "no actions here: only GET and HEAD");
        r.headers.push(("Allow", "GET, HEAD".into()));
        return r;
    };
    let Some((mac, verb)) = req
        .path
        .strip_prefix("/device/")
        .and_then(|p| p.split_once('/'))
    else {
        return Response::text(404, "not found");
    };
    if token.is_some_and(|t| !carries(req, t)) {
        return unauthorized();
    }
    if !req
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
    {
        return Response::text(415, "a form is needed (application/x-www-form-urlencoded)");
    }
    if !form_field(&req.body, "csrf").is_some_and(|c| same(&c, &actions.csrf)) {
        return Response::text(
            403,
            "no or a stale CSRF token: reload the page and submit its form again",
        );
    }
    let Some(mac) = Mac::parse(mac) else {
        return Response::text(400, "not a MAC address");
    };
    let action = match verb {
        "name" => Action::Name {
            mac,
            name: form_field(&req.body, "name").unwrap_or_default(),
        },
        "mute" => match form_field(&req.body, "minutes").and_then(|m| m.parse::<u64>().ok()) {
            Some(m) if m <= MAX_MUTE_MIN => Action::Mute { mac, secs: m * 60 },
            _ => {
                return Response::text(
                    400,
                    &format!("minutes: a whole number from 0 (unmute) to {MAX_MUTE_MIN}"),
                )
            }
        },
        "relearn" => Action::Relearn { mac },
        "forget" => Action::Forget { mac },
        _ => return Response::text(404, "no such action"),
    };
    let back = if verb == "forget" {
        "/".to_string()
    } else {
        format!("/device/{mac}")
    };
    match actions.tx.try_send(action) {
        Ok(()) => {
            let mut r = Response::text(303, "done: see other");
            r.headers.push(("Location", back));
            r
        }
        Err(TrySendError::Full(_)) => {
            let mut r = Response::text(503, "busy: too many actions waiting, try again");
            r.headers.push(("Retry-After", "1".into()));
            r
        }
        Err(TrySendError::Disconnected(_)) => Response::text(503, "the capture loop is gone"),
    }
}

/// The answer to `req`, actions included.
pub fn respond(
    board: &StatusBoard<Snapshot>,
    token: Option<&str>,
    actions: Option<&Actions>,
    req: &Request,
) -> Response {
    if req.method == "POST" {
        return act(token, actions, req);
    }
    answer_with(board, token, actions.map(|a| a.csrf.as_str()), req)
}

/// The answer to a GET or HEAD `req` (`csrf`: the token the device page's forms carry,
/// none for a page without actions).
pub fn answer_with(
    board: &StatusBoard<Snapshot>,
    token: Option<&str>,
    csrf: Option<&str>,
    req: &Request,
) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = Response::text(405, "only GET and HEAD, and POST for actions");
        r.headers.push(("Allow", "GET, HEAD, POST".into()));
        return r;
    }
    let latest = board.latest();
    if req.path == "/healthz" {
        return match &latest {
            Some((at, _)) if at.elapsed() <= STALE => Response::text(200, "ok"),
            Some((at, _)) => Response::text(
                503,
                &format!(
                    "stale: the capture loop last published {:?} ago",
                    at.elapsed()
                ),
            ),
            None => Response::text(503, "starting"),
        };
    }
    if let Some(token) = token {
        if let Some(t) = query_param(&req.query, "token") {
            if same(t, token) {
                // once: a cookie, and the address without the token
                let mut r = Response::text(303, "see other");
                r.headers.push(("Location", req.path.clone()));
                r.headers.push((
                    "Set-Cookie",
                    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"),
                ));
                return r;
            }
        }
        if !carries(req, token) {
            return unauthorized();
        }
    }
    let Some((_, snap)) = latest else {
        return Response::text(503, "starting: no snapshot yet");
    };
    match req.path.as_str() {
        "/" => Response::new(200, "text/html; charset=utf-8", page::index(&snap)),
        "/api/status" => {
            let mut v = serde_json::to_value(&*snap).unwrap_or_default();
            if let (Some(top), Ok(serde_json::Value::Object(node))) =
                (v.as_object_mut(), serde_json::to_value(&*snap.node))
            {
                for (k, x) in node.into_iter().filter(|(k, _)| k != "devices") {
                    top.insert(k, x);
                }
                top.insert("devices".into(), snap.node.devices.len().into());
            }
            Response::json(&v)
        }
        "/api/devices" => Response::json(&snap.node.devices),
        "/api/anomalies" => Response::json(&*snap.recent),
        "/metrics" => Response::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(&snap),
        ),
        p => match p.strip_prefix("/device/") {
            Some(mac) => {
                let mac = mac.to_ascii_lowercase();
                match snap.node.devices.iter().find(|d| d.mac == mac) {
                    Some(d) => Response::new(
                        200,
                        "text/html; charset=utf-8",
                        page::device(&snap, d, csrf),
                    ),
                    None => Response::text(404, "no such device"),
                }
            }
            None => Response::text(404, "not found"),
        },
    }
}

fn answer(shared: &Shared, req: &Request) -> Response {
    respond(
        &shared.board,
        shared.token.as_deref(),
        shared.actions.as_ref(),
        req,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Request {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            ..Request::default()
        }
    }

    fn board() -> StatusBoard<Snapshot> {
        let b = StatusBoard::default();
        b.post(page::tests::sample());
        b
    }

    #[test]
    fn status_requests_parse() {
        let r =
            parse(b"GET /device/aa?token=x HTTP/1.1\r\nHost: a\r\nauthorization: Bearer t\r\n\r\n")
                .unwrap();
        assert_eq!(r.path, "/device/aa");
        assert_eq!(r.query, "token=x");
        assert_eq!(r.authorization.as_deref(), Some("Bearer t"));
        assert!(parse(b"GET / SPDY/3\r\n\r\n").is_none());
        assert!(parse(b"\xff\xfe\r\n\r\n").is_none());
    }

    #[test]
    fn status_token_gates_everything_but_healthz() {
        let b = board();
        let t = Some("s3cret-token");
        assert_eq!(answer_with(&b, t, None, &get("/")).status, 401);
        assert_eq!(answer_with(&b, t, None, &get("/metrics")).status, 401);
        assert_eq!(answer_with(&b, t, None, &get("/?token=wrong")).status, 401);
        assert_eq!(answer_with(&b, t, None, &get("/healthz")).status, 200);
        let once = answer_with(&b, t, None, &get("/api/status?token=s3cret-token"));
        assert_eq!(once.status, 303);
        let mut req = get("/api/status");
        req.cookie = Some("a=b; iotad_token=s3cret-token".into());
        assert_eq!(answer_with(&b, t, None, &req).status, 200);
        let mut req = get("/api/devices");
        req.authorization = Some("Bearer s3cret-token".into());
        assert_eq!(answer_with(&b, t, None, &req).status, 200);
        assert_eq!(answer_with(&b, None, None, &get("/")).status, 200);
        assert_eq!(answer_with(&b, None, None, &get("/nope")).status, 404);
    }

    #[test]
    fn status_healthz_is_503_before_the_first_snapshot() {
        let b = StatusBoard::default();
        assert_eq!(answer_with(&b, None, None, &get("/healthz")).status, 503);
        assert_eq!(answer_with(&b, None, None, &get("/")).status, 503);
    }

    fn fetch(addr: std::net::SocketAddr) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /api/status HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn status_server_outlasts_idle_and_slow_clients() {
        let cfg = HttpConfig {
            bind: "127.0.0.1:0".into(),
            max_connections: 8,
            timeout_secs: 1,
            ..HttpConfig::default()
        };
        let server = start(&cfg, Arc::new(board()), None).unwrap();
        let idle: Vec<TcpStream> = (0..200)
            .map(|_| TcpStream::connect(server.addr).unwrap())
            .collect();
        let t = Instant::now();
        assert!(fetch(server.addr).starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        drop(idle);
        // a client trickling its head is cut off after timeout_secs, head or not
        let mut slow = TcpStream::connect(server.addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = Instant::now();
        for _ in 0..20 {
            if slow.write_all(b"G").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut out = String::new();
        let _ = slow.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 408"), "{out}");
        assert!(
            t.elapsed() < Duration::from_millis(2500),
            "{:?}",
            t.elapsed()
        );
        // a head over the limit gets 431
        let mut big = TcpStream::connect(server.addr).unwrap();
        big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = big.write_all(&vec![b'a'; MAX_HEAD + 100]);
        let mut out = String::new();
        let _ = big.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    }
}
