//! What a device's windows remember from one window to the next: its TCP connections, so
//! that a segment it sends outside any connection it opened or accepted is seen for what it
//! is (a probe: an ACK, FIN, NULL or XMAS scan sends no SYN), and so that a connection it
//! opened that carried data both ways (a request and its response: a login, on any port)
//! counts once for its remote service ([`Logins`]). Fixed size, allocated once per device
//! slot, nothing per packet.

/// Who began a connection, as far as the device's traffic shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// An empty entry.
    #[default]
    None,
    /// The device sent the SYN.
    Device,
    /// The remote end sent the SYN.
    Remote,
    /// Seen mid-stream (begun before the device was watched, or forgotten since): the remote
    /// end sent something on it that was not a reset.
    Adopted,
}

/// One connection the device takes part in.
#[derive(Clone, Copy, Debug, Default)]
pub struct Conn {
    /// Flow key (see `accumulator::flow_key`), never 0 in a used entry.
    pub key: u64,
    /// The remote service (address and port) it is with, hashed.
    pub service: u32,
    /// Second of the last segment seen on it (which entry of a full set to replace).
    pub last_s: u32,
    pub origin: Origin,
    /// The device sent payload on it.
    pub sent: bool,
    /// The device received payload on it.
    pub got: bool,
    /// Payload bytes it received on it (saturating).
    pub got_bytes: u32,
    /// Its session was counted as a login attempt in this window of the device's (the
    /// [`Logins::epoch`] then, plus one; 0: not counted).
    pub attempt: u32,
}

/// What payload on a connection made of its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Session {
    /// Nothing new.
    Same,
    /// A connection the device opened carried data both ways for the first time: a session
    /// (a login attempt at least, whatever the port).
    Began,
    /// The session received more than [`LOGIN_MAX_BYTES`]: a download, not a login.
    Grew,
}

/// A session that received more than this many payload bytes is no login attempt: an
/// authentication exchange is small (an SSH session of the brute force in ../shared/data
/// received 2.3 to 2.4 KB, an FTP or HTTP refusal well under one), while a phone that
/// fetched two 40 KB pages from one server within a second made two "repeated logins".
pub const LOGIN_MAX_BYTES: u32 = 16 * 1024;

impl Conn {
    /// Records `len` bytes of payload sent (`out`) or received on this connection.
    pub fn payload(&mut self, out: bool, len: u32) -> Session {
        let before = self.sent && self.got;
        if out {
            self.sent = true;
        } else {
            self.got = true;
            let was = self.got_bytes;
            self.got_bytes = self.got_bytes.saturating_add(len);
            if was <= LOGIN_MAX_BYTES && self.got_bytes > LOGIN_MAX_BYTES {
                return if self.origin == Origin::Device {
                    Session::Grew
                } else {
                    Session::Same
                };
            }
        }
        if self.origin == Origin::Device && !before && self.sent && self.got {
            Session::Began
        } else {
            Session::Same
        }
    }
}

/// A device's connections: a set-associative table of [`Conns::SETS`] x [`Conns::WAYS`]
/// entries; a connection not seen for longest makes room in its set. A forgotten connection
/// is adopted again as soon as the remote end sends on it, so forgetting costs at most a
/// segment the device sends into silence.
#[derive(Clone, Debug)]
pub struct Conns {
    sets: [[Conn; Conns::WAYS]; Conns::SETS],
}

impl Default for Conns {
    fn default() -> Self {
        Conns {
            sets: [[Conn::default(); Conns::WAYS]; Conns::SETS],
        }
    }
}

impl Conns {
    const SETS: usize = 16;
    const WAYS: usize = 4;

    fn set(&mut self, key: u64) -> &mut [Conn; Conns::WAYS] {
        &mut self.sets[(key >> 40) as usize % Conns::SETS]
    }

    /// The connection with this key, its last-seen time moved to `now_s`.
    pub fn touch(&mut self, key: u64, now_s: u32) -> Option<&mut Conn> {
        let key = key | 1;
        let c = self.set(key).iter_mut().find(|c| c.key == key)?;
        c.last_s = now_s;
        Some(c)
    }

    /// Whether the device knows a connection with this remote service: a segment on a
    /// connection forgotten under churn (a busy device, a brute force) goes to one it knows,
    /// a probe does not.
    pub fn serves(&self, service: u32) -> bool {
        self.sets
            .iter()
            .flatten()
            .any(|c| c.origin != Origin::None && c.service == service)
    }

    /// The connection with this key, with the remote `service`; made with `origin` when it
    /// is not known (replacing the entry of its set seen longest ago).
    pub fn enter(&mut self, key: u64, service: u32, origin: Origin, now_s: u32) -> &mut Conn {
        self.entered(key, service, origin, now_s).1
    }

    /// As [`Conns::enter`], and whether the connection was new.
    pub fn entered(
        &mut self,
        key: u64,
        service: u32,
        origin: Origin,
        now_s: u32,
    ) -> (bool, &mut Conn) {
        let key = key | 1;
        let set = self.set(key);
        let (i, new) = match set.iter().position(|c| c.key == key) {
            Some(i) => (i, false),
            None => {
                // cannot fail: a set is never empty
                let (i, _) = set
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, c)| (c.origin != Origin::None, c.last_s))
                    .expect("a set has ways");
                set[i] = Conn {
                    key,
                    service,
                    last_s: now_s,
                    origin,
                    sent: false,
                    got: false,
                    got_bytes: 0,
                    attempt: 0,
                };
                (i, true)
            }
        };
        let c = &mut set[i];
        c.last_s = now_s;
        (new, c)
    }
}

/// How long a segment sent outside any connection waits for its answer before it counts
/// as a probe: one sent just before a window ends is judged in the next window.
pub const PROBE_WAIT_NS: u64 = 2_000_000_000;

/// Segments sent outside any known connection (or opening one), waiting for an answer: a
/// fixed list whose overflow counts as probes at once (a fast scan is what overflows it).
#[derive(Clone, Debug, Default)]
pub struct Waiting {
    sent: heapless::Vec<(u64, u64), { Waiting::CAP }>,
    overflow: u32,
}

impl Waiting {
    const CAP: usize = 64;

    /// A segment was sent on `flow` at `ts_ns` (again on a waiting flow: nothing new).
    pub fn open(&mut self, flow: u64, ts_ns: u64) {
        if !self.sent.iter().any(|&(k, _)| k == flow) && self.sent.push((flow, ts_ns)).is_err() {
            self.overflow = self.overflow.saturating_add(1);
        }
    }

    /// Something came back on `flow`: whether a segment was waiting for it.
    pub fn take(&mut self, flow: u64) -> bool {
        match self.sent.iter().position(|&(k, _)| k == flow) {
            Some(i) => {
                self.sent.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// At the end of a window (`end_ns`): the segments that waited [`PROBE_WAIT_NS`] in vain,
    /// and the overflow, are probes; they are forgotten, younger ones wait on.
    pub fn expire(&mut self, end_ns: u64) -> u32 {
        let before = self.sent.len();
        self.sent.retain(|&(_, t)| t + PROBE_WAIT_NS > end_ns);
        let n = (before - self.sent.len()) as u32 + self.overflow;
        self.overflow = 0;
        n
    }
}

/// One remote service's sessions (connections the device opened that carried data both
/// ways).
#[derive(Clone, Copy, Debug, Default)]
struct Service {
    /// The service (address and port), hashed; 0 for an empty entry.
    key: u32,
    /// When its last session began, seconds.
    last_s: u32,
    /// Repeated sessions in the open window.
    now: u16,
    /// Repeated sessions summed over past windows, fading (see [`Logins::close`]).
    sum: f32,
    /// Windows since the last repeated session.
    quiet: u32,
    /// Its sessions have repeated (the first one was counted then).
    repeated: bool,
    /// Its last session grew into a download before it was counted: a repeat after it
    /// counts only itself.
    last_grew: bool,
    /// The session before the first repeat was counted with it, in this window: the next
    /// uncounted session of the service that grows is taken to be that one.
    retro: bool,
}

/// Login attempts per remote service, on any port: sessions (connections the device opened
/// that carried a request and a response) that begin within [`REPEAT_S`] of the previous
/// one with the same service, and that previous one. A brute force reconnects at once (the SSH brute force in
/// ../shared/data every 4.5 to 11 s, hydra's FTP in parallel); a device polling its cloud
/// does it every 15 s or more, and a session alone is no attempt. A fixed table of
/// [`Logins::CAP`] services; a full table gives the entry used longest ago to a new service.
#[derive(Clone, Debug, Default)]
pub struct Logins {
    services: [Service; Logins::CAP],
    /// Windows closed so far (which window a counted session was counted in).
    epoch: u32,
}

/// A session that begins within this many seconds of the previous one with the same
/// service repeats it.
pub const REPEAT_S: u32 = 10;

impl Logins {
    const CAP: usize = 16;

    /// A session with `service` began at `now_s`; when it counts as a login attempt, the
    /// window it counted in (for [`Conn::attempt`]: the epoch plus one), else 0.
    pub fn session(&mut self, service: u32, now_s: u32) -> u32 {
        let key = service | 1;
        let epoch = self.epoch.wrapping_add(1).max(1);
        match self.services.iter_mut().find(|s| s.key == key) {
            Some(s) => {
                let repeats = now_s.saturating_sub(s.last_s) <= REPEAT_S;
                if repeats {
                    // the first repeat shows the session before it was an attempt too,
                    // unless that one was a download
                    let retro = !s.repeated && !s.last_grew;
                    s.now = s.now.saturating_add(if retro { 2 } else { 1 });
                    s.retro |= retro;
                    s.repeated = true;
                }
                s.last_s = now_s;
                s.last_grew = false;
                if repeats {
                    epoch
                } else {
                    0
                }
            }
            None => {
                // cannot fail: the table has entries
                let s = self
                    .services
                    .iter_mut()
                    .min_by_key(|s| (s.key != 0, s.now > 0 || s.sum > 0.0, s.last_s))
                    .expect("the table has entries");
                *s = Service {
                    key,
                    last_s: now_s,
                    quiet: u32::MAX,
                    ..Service::default()
                };
                0
            }
        }
    }

    /// A session with `service` received more than [`LOGIN_MAX_BYTES`]: it was a download,
    /// not a login. Counted as an attempt in the open window (`attempt`, from
    /// [`Logins::session`]), or counted with the first repeat there, it is taken back;
    /// counted in a window already closed, it stays; not counted, the next repeat does not
    /// count it.
    pub fn grew(&mut self, service: u32, attempt: u32) {
        let key = service | 1;
        let epoch = self.epoch.wrapping_add(1).max(1);
        if let Some(s) = self.services.iter_mut().find(|s| s.key == key) {
            if attempt == epoch {
                s.now = s.now.saturating_sub(1);
            } else if attempt == 0 && s.retro {
                s.now = s.now.saturating_sub(1);
                s.retro = false;
            } else if attempt == 0 {
                s.last_grew = true;
            }
        }
    }

    /// Ends a window: returns the most repeated sessions with one service in this window,
    /// and the most summed over past windows, each window's sum kept times `decay` (a
    /// service without a repeated session for `quiet` windows reads zero: its attempts
    /// stopped).
    pub fn close(&mut self, decay: f32, quiet: u32) -> (f32, f32) {
        self.epoch = self.epoch.wrapping_add(1);
        let (mut fast, mut slow) = (0f32, 0f32);
        for s in self.services.iter_mut().filter(|s| s.key != 0) {
            s.sum += f32::from(s.now);
            s.quiet = if s.now > 0 {
                0
            } else {
                s.quiet.saturating_add(1)
            };
            fast = fast.max(f32::from(s.now));
            if s.quiet < quiet {
                slow = slow.max(s.sum);
            }
            s.now = 0;
            s.retro = false;
            s.sum *= decay;
            if s.sum < super::SLOW_ZERO {
                s.sum = 0.0;
                s.repeated = false;
            }
        }
        (fast, slow)
    }
}

/// How long after a device is first seen the services it uses are learned at once.
pub const NOVELTY_LEARN_S: u32 = 3600;
/// How long a service first used after that stays new before it is learned.
pub const NOVELTY_PROBATION_S: u32 = 3600;
/// A device that added nothing to its services for this long is half as stable as one
/// that never does (see [`Novelty::stability`]).
pub const STABILITY_HALF_S: f64 = 1800.0;
/// What a new address on a protocol and port the device already uses, or that another
/// device on the network uses, weighs against a port new to both: clouds move their clients
/// from address to address, and a device's daily DNS or NTP lookups are the network's own.
pub const FAMILIAR_PORT_WEIGHT: f32 = 0.25;

/// The protocols and ports the network's devices have learned (see [`Novelty`]): a fixed
/// table of [`NetPorts::CAP`], the oldest replaced when full; and when a port new to the
/// network was last used, for its stability.
#[derive(Clone, Debug)]
pub struct NetPorts {
    ports: [u32; NetPorts::CAP],
    next: usize,
    /// When the network saw its first packet, seconds.
    born_s: Option<u32>,
    /// When it last learned a port (or, in its first [`NOVELTY_LEARN_S`], used one it had
    /// not learned), seconds.
    last_new_s: u32,
    /// A bit per hash of the ports in the table: most ports asked about on a busy network
    /// are not in it, and this answers them without reading the table.
    present: [u64; 8],
}

impl Default for NetPorts {
    fn default() -> Self {
        NetPorts {
            ports: [0; NetPorts::CAP],
            next: 0,
            born_s: None,
            last_new_s: 0,
            present: [0; 8],
        }
    }
}

impl NetPorts {
    const CAP: usize = 128;

    fn bit(port: u32) -> (usize, u64) {
        let h = port.wrapping_mul(0x9e37_79b1) >> 23;
        ((h / 64) as usize, 1 << (h % 64))
    }

    pub fn contains(&self, port: u32) -> bool {
        let (word, bit) = Self::bit(port);
        self.present[word] & bit != 0 && self.ports.contains(&port)
    }

    /// Seconds since the network last saw a new port at `now_s` (its first packet starts
    /// the count); [`stability`] turns them into how stable its ports have been (as
    /// [`Novelty::stability`]): what its devices learned, not what is on probation, so that
    /// a second compromised device using the first one's new port is not taken for the
    /// network's habit.
    fn quiet_s(&mut self, now_s: u32) -> u32 {
        if self.born_s.is_none() {
            self.born_s = Some(now_s);
            self.last_new_s = now_s;
        }
        now_s.saturating_sub(self.last_new_s)
    }

    /// A port no device learned was used at `now_s`: while the network is young, that is
    /// its ports changing.
    fn used_new(&mut self, now_s: u32) {
        if self
            .born_s
            .is_some_and(|b| now_s.saturating_sub(b) < NOVELTY_LEARN_S)
        {
            self.last_new_s = now_s;
        }
    }

    fn add(&mut self, port: u32, now_s: u32) {
        if !self.contains(port) {
            let replaced = self.ports[self.next];
            self.ports[self.next] = port;
            self.next = (self.next + 1) % Self::CAP;
            self.last_new_s = now_s;
            if replaced != 0 {
                self.present = [0; 8];
                for p in self.ports {
                    let (word, bit) = Self::bit(p);
                    self.present[word] |= bit;
                }
            } else {
                let (word, bit) = Self::bit(port);
                self.present[word] |= bit;
            }
        }
    }
}

/// A service on probation: used for the first time after learning.
#[derive(Clone, Copy, Debug, Default)]
struct Candidate {
    /// The service (address, protocol and port), hashed; 0 for an empty entry.
    key: u64,
    /// Its protocol and port.
    port: u32,
    first_s: u32,
    /// What it weighs (see [`Novelty::observe`]).
    weight: f32,
    /// Its port is new to the device and to the network.
    new_port: bool,
}

/// The remote services a device uses, and what it does with new ones. Services (address,
/// protocol, port) used in its first [`NOVELTY_LEARN_S`] are learned at once (but for one
/// on a port no device of the network has learned, which is new: a device that appears and
/// talks at once to a port the network never used, weighted by how stable the network's
/// ports have been), into a
/// 2048-bit Bloom filter (three probes: under 1 % false positives at 150 services), their
/// protocols and ports into a table of [`Novelty::PORTS`] (and the network's, [`NetPorts`]);
/// a service used for the first time later is new, on probation for
/// [`NOVELTY_PROBATION_S`] (a table of [`Novelty::CANDIDATES`]; when full, the oldest is
/// forgotten and will be new again), then learned. A new service weighs how stable the
/// device's services have been (see [`Novelty::stability`]), and a quarter of that
/// ([`FAMILIAR_PORT_WEIGHT`]) when its port is one the device or another device of the
/// network uses. Stability is kept apart for ports and for addresses: a new port weighs how
/// long the device has used no new port, a new address how long it has used nothing new.
/// Fixed size, nothing per packet.
#[derive(Clone, Debug)]
pub struct Novelty {
    born_s: Option<u32>,
    bloom: [u64; 32],
    ports: [u32; Novelty::PORTS],
    next_port: usize,
    /// When the device last used a service it had not used before, seconds.
    last_new_s: u32,
    /// When the device last used a protocol and port it had not used before, seconds.
    last_new_port_s: u32,
    candidates: [Candidate; Novelty::CANDIDATES],
    /// Candidates seen in the open window (bit i: candidate i).
    active: u32,
    /// Packets with new services in the open window, weighted.
    packets: f32,
}

impl Default for Novelty {
    fn default() -> Self {
        Novelty {
            born_s: None,
            bloom: [0; 32],
            ports: [0; Novelty::PORTS],
            next_port: 0,
            last_new_s: 0,
            last_new_port_s: 0,
            candidates: [Candidate::default(); Novelty::CANDIDATES],
            active: 0,
            packets: 0.0,
        }
    }
}

/// 0 right after something new, half after [`STABILITY_HALF_S`] of nothing new, near 1 after
/// hours.
fn stability(quiet_s: u32) -> f32 {
    let quiet = f64::from(quiet_s);
    (1.0 - crate::math::exp(-std::f64::consts::LN_2 * quiet / STABILITY_HALF_S)) as f32
}

// the active candidates are the bits of a u32
const _: () = assert!(Novelty::CANDIDATES <= 32);

impl Novelty {
    const PORTS: usize = 32;
    const CANDIDATES: usize = 16;

    fn probes(key: u64) -> [usize; 3] {
        let m = 32 * 64;
        [
            (key % m) as usize,
            ((key >> 21) % m) as usize,
            ((key >> 42) % m) as usize,
        ]
    }

    fn known(&self, key: u64) -> bool {
        Self::probes(key)
            .iter()
            .all(|&b| self.bloom[b / 64] & (1 << (b % 64)) != 0)
    }

    fn learn(&mut self, key: u64, port: u32, now_s: u32, net: &mut NetPorts) {
        for b in Self::probes(key) {
            self.bloom[b / 64] |= 1 << (b % 64);
        }
        if !self.ports.contains(&port) {
            self.ports[self.next_port] = port;
            self.next_port = (self.next_port + 1) % Self::PORTS;
        }
        net.add(port, now_s);
    }

    /// How stable the device's services have been at `now_s`: 0 right after it used a
    /// service for the first time, half after [`STABILITY_HALF_S`] without a new one, near 1
    /// after hours.
    pub fn stability(&self, now_s: u32) -> f32 {
        stability(now_s.saturating_sub(self.last_new_s))
    }

    /// The same for its protocols and ports: a camera whose cloud moves it from address to
    /// address every day can still be stable in its ports.
    pub fn port_stability(&self, now_s: u32) -> f32 {
        stability(now_s.saturating_sub(self.last_new_port_s))
    }

    /// A packet exchanged with the remote service `key` (address, protocol and port,
    /// hashed), of protocol and port `port`, at `now_s`, on the network that knows `net`.
    pub fn observe(&mut self, key: u64, port: u32, now_s: u32, net: &mut NetPorts) {
        let key = key | 1;
        let port = port | 1 << 31;
        let born = *self.born_s.get_or_insert(now_s);
        let net_quiet_s = net.quiet_s(now_s);
        if self.known(key) {
            return;
        }
        let learning = now_s.saturating_sub(born) < NOVELTY_LEARN_S;
        let new_to_net = !net.contains(port);
        if new_to_net {
            net.used_new(now_s);
        }
        let device_knows_port = self.ports.contains(&port);
        if learning && !new_to_net {
            self.learn(key, port, now_s, net);
            self.last_new_s = now_s;
            if !device_knows_port {
                self.last_new_port_s = now_s;
            }
            return;
        }
        let i = match self.candidates.iter().position(|c| c.key == key) {
            Some(i) => i,
            None => {
                let new_port = !device_knows_port && new_to_net;
                // a device still learning has no history of its own: a port new to the
                // network weighs how stable the network's ports have been
                let weight = if learning {
                    stability(net_quiet_s)
                } else if new_port {
                    self.port_stability(now_s)
                } else {
                    self.stability(now_s) * FAMILIAR_PORT_WEIGHT
                };
                if !device_knows_port {
                    self.last_new_port_s = now_s;
                }
                // cannot fail: the table has entries
                let (i, _) = self
                    .candidates
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, c)| (c.key != 0, c.first_s))
                    .expect("the table has entries");
                self.candidates[i] = Candidate {
                    key,
                    port,
                    first_s: now_s,
                    weight,
                    new_port,
                };
                self.last_new_s = now_s;
                i
            }
        };
        self.active |= 1 << i;
        let c = &self.candidates[i];
        if c.new_port {
            self.packets += c.weight;
        }
    }

    /// Ends a window at `now_s`: returns the new services used in it, and the packets
    /// exchanged with those on a new port, each weighted; services new for
    /// [`NOVELTY_PROBATION_S`] are learned.
    pub fn close(&mut self, now_s: u32, net: &mut NetPorts) -> (f32, f32) {
        let mut services = 0f32;
        for (i, c) in self.candidates.iter().enumerate() {
            if self.active & (1 << i) != 0 {
                services += c.weight;
            }
        }
        let packets = self.packets;
        self.active = 0;
        self.packets = 0.0;
        for i in 0..Self::CANDIDATES {
            let c = self.candidates[i];
            if c.key != 0 && now_s.saturating_sub(c.first_s) >= NOVELTY_PROBATION_S {
                self.learn(c.key, c.port, now_s, net);
                self.candidates[i] = Candidate::default();
            }
        }
        (services, packets)
    }
}

/// Everything a device's windows carry from one to the next.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    pub conns: Conns,
    /// Segments waiting to be answered, or to count as probes.
    pub waiting: Waiting,
    /// Sessions per remote service.
    pub logins: Logins,
    /// The services the device uses.
    pub novelty: Novelty,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::mix;

    #[test]
    fn a_probe_waits_for_its_answer_across_the_window_end() {
        const S: u64 = 1_000_000_000;
        let mut w = Waiting::default();
        w.open(1, 10 * S);
        w.open(1, 11 * S);
        w.open(2, 19 * S);
        w.open(3, 19 * S);
        assert_eq!(w.expire(20 * S), 1, "flow 1 waited 10 s");
        assert!(w.take(2), "answered in the next window");
        assert!(!w.take(1), "already counted");
        assert_eq!(w.expire(30 * S), 1, "flow 3");
        for k in 0..100 {
            w.open(100 + k, 31 * S);
        }
        assert_eq!(w.expire(32 * S), 36, "the overflow at once");
        assert_eq!(w.expire(40 * S), 64);
    }

    #[test]
    fn sessions_repeated_within_seconds_are_logins() {
        let d = 0.5f32;
        let mut l = Logins::default();
        // a poll every 15 s: no attempt; sessions 5 s apart: every one
        for t in [0, 15, 30, 45] {
            l.session(7, t);
        }
        for t in [100, 105, 110, 116] {
            l.session(9, t);
        }
        assert_eq!(l.close(d, 3), (4.0, 4.0));
        assert_eq!(l.close(d, 3), (0.0, 2.0), "the sum fades");
        l.session(9, 120);
        assert_eq!(l.close(d, 3), (1.0, 2.0), "4 s after the last one");
        assert_eq!(l.close(d, 3).1, 1.0);
        l.close(d, 3);
        assert_eq!(
            l.close(d, 3),
            (0.0, 0.0),
            "three windows without a repeat read zero"
        );
    }

    #[test]
    fn new_services_weigh_how_stable_the_device_was() {
        const H: u32 = 3600;
        let mut n = Novelty::default();
        let net = &mut NetPorts::default();
        // learning: a cloud on 443 and DNS
        n.observe(mix(1), 443, 0, net);
        n.observe(mix(2), 53, 60, net);
        let (services, _) = n.close(600, net);
        assert!(
            services < 0.05,
            "a young network's new ports weigh nearly nothing"
        );
        // hours later, with nothing new since: a new port weighs nearly 1
        n.observe(mix(3), 3333, 5 * H, net);
        n.observe(mix(3), 3333, 5 * H + 1, net);
        let (services, packets) = n.close(5 * H + 10, net);
        assert!(
            services > 0.99 && (packets - 2.0 * services).abs() < 1e-6,
            "{services} {packets}"
        );
        // a new address on a known port right after weighs little (a quarter of nothing)
        n.observe(mix(4), 443, 5 * H + 20, net);
        n.observe(mix(3), 3333, 5 * H + 20, net);
        let (services, _) = n.close(5 * H + 30, net);
        assert!(services > 0.99 && services < 1.01, "{services}");
        // known ones never count; after its probation the new one is learned
        n.close(6 * H + 30, net);
        n.observe(mix(1), 443, 7 * H, net);
        n.observe(mix(3), 3333, 7 * H, net);
        assert_eq!(n.close(7 * H + 10, net), (0.0, 0.0));
        assert!(n.stability(7 * H) > 0.4);
        // a cloud that moves the device to a new address does not make its next new port
        // weigh less
        let mut cam = Novelty::default();
        cam.observe(mix(30), 443, 0, net);
        cam.observe(mix(31), 443, 5 * H, net);
        cam.close(5 * H + 10, net);
        cam.observe(mix(32), 21, 5 * H + 20, net);
        let (services, _) = cam.close(5 * H + 30, net);
        assert!(services > 0.99 && services < 1.0 + 0.25, "{services}");
        // a device that appears on this network, stable for hours, and uses a port the
        // network never used: new, though the device is still learning
        let mut newcomer = Novelty::default();
        newcomer.observe(mix(20), 22, 9 * H, net);
        newcomer.observe(mix(21), 443, 9 * H, net);
        let (services, packets) = newcomer.close(9 * H + 10, net);
        assert!(services > 0.9 && packets > 0.9, "{services} {packets}");
        // a second device using that port soon after is no less new: the port is on
        // probation, not the network's habit
        let mut second = Novelty::default();
        second.observe(mix(22), 22, 9 * H + 90, net);
        let (services, _) = second.close(9 * H + 100, net);
        assert!(services > 0.9, "{services}");
        // a port another device of the network uses weighs a quarter
        let mut other = Novelty::default();
        other.observe(mix(9), 80, 0, net);
        net.add(3389 | 1 << 31, 5 * H - 2 * H);
        other.observe(mix(10), 3389, 5 * H, net);
        let (services, packets) = other.close(5 * H + 10, net);
        assert!(
            (services - 0.25).abs() < 0.01 && packets == 0.0,
            "{services} {packets}"
        );
    }

    #[test]
    fn a_connection_is_a_session_once_data_went_both_ways() {
        let mut c = Conns::default();
        let conn = c.enter(mix(1), 7, Origin::Device, 0);
        assert_eq!(conn.payload(true, 100), Session::Same);
        assert_eq!(conn.payload(true, 100), Session::Same);
        assert_eq!(conn.payload(false, 500), Session::Began, "the response");
        assert_eq!(conn.payload(true, 100), Session::Same, "one session");
        // a download: the session grows past a login's size once
        assert_eq!(conn.payload(false, LOGIN_MAX_BYTES), Session::Grew);
        assert_eq!(conn.payload(false, 1400), Session::Same);
        let theirs = c.enter(mix(2), 7, Origin::Remote, 0);
        assert_eq!(theirs.payload(false, 100), Session::Same);
        assert_eq!(
            theirs.payload(true, 100),
            Session::Same,
            "opened by the remote end"
        );
        assert_eq!(theirs.payload(false, 2 * LOGIN_MAX_BYTES), Session::Same);
    }

    /// Two pages fetched from one server within a second are no login attempts; two small
    /// sessions are (both, the first counted when the second shows it repeated); a counted
    /// session that grows into a download is taken back.
    #[test]
    fn downloads_are_no_login_attempts() {
        let mut l = Logins::default();
        assert_eq!(l.session(7, 100), 0);
        l.grew(7, 0);
        let a = l.session(7, 101);
        assert_ne!(a, 0, "a repeat");
        l.grew(7, a);
        assert_eq!(
            l.close(0.5, 30).0,
            0.0,
            "two downloads, one after the other"
        );
        // a browser's parallel downloads: the first is counted with the first repeat
        let mut l = Logins::default();
        let first = l.session(7, 200);
        let (b, c) = (l.session(7, 200), l.session(7, 200));
        for a in [first, b, c] {
            l.grew(7, a);
        }
        assert_eq!(l.close(0.5, 30).0, 0.0, "three downloads at once");
        let mut l = Logins::default();
        assert_eq!(l.session(7, 100), 0);
        assert_ne!(l.session(7, 104), 0);
        let late = l.session(7, 108);
        assert_eq!(l.close(0.5, 30).0, 3.0, "three small sessions");
        // a session counted in a closed window that grows now takes nothing from this one
        assert_ne!(l.session(7, 110), 0);
        l.grew(7, late);
        assert_eq!(l.close(0.5, 30).0, 1.0);
    }

    #[test]
    fn connections_are_remembered_and_the_oldest_of_a_set_makes_room() {
        let mut c = Conns::default();
        for k in 0..10u64 {
            c.enter(mix(k), 7, Origin::Device, k as u32);
        }
        assert!(c.serves(7) && !c.serves(8));
        assert!((0..10u64).all(|k| c.touch(mix(k), 100).is_some()));
        assert_eq!(c.touch(mix(99), 100).map(|c| c.origin), None);
        // fill one set well past its ways: the ones seen longest ago go first
        let set = |k: u64| ((mix(k) | 1) >> 40) as usize % Conns::SETS;
        let same: Vec<u64> = (1000..100_000u64)
            .filter(|&k| set(k) == set(0))
            .take(8)
            .collect();
        for (t, &k) in same.iter().enumerate() {
            c.enter(mix(k), 8, Origin::Remote, 200 + t as u32);
        }
        assert!(c.touch(mix(0), 300).is_none(), "forgotten");
        assert!(same[4..].iter().all(|&k| c.touch(mix(k), 300).is_some()));
        assert_eq!(
            c.enter(mix(same[7]), 9, Origin::Adopted, 301).origin,
            Origin::Remote,
            "a known connection keeps its origin"
        );
    }
}
