//! Attacks the synthesizer injects: `KIND@SECONDS[+DURATION]:MAC` starts KIND from the
//! device with that MAC, SECONDS after the capture's start, for DURATION seconds (default 60).
//! The victim is the next synthesized device (the router when there is only one device).

use std::net::Ipv4Addr;
use std::str::FromStr;

use super::frames::{self, Host};
use super::{Network, Out, ROUTER, SECOND, START_NS};
use crate::wire::arp::{REPLY, REQUEST};
use crate::wire::tcp::flags::{ACK, FIN, PSH, RST, SYN, URG};
use crate::wire::{port, Mac};

const MS: u64 = 1_000_000;
/// Attacks act ten times a second.
const TICK: u64 = 100 * MS;

/// The kinds of attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum AttackKind {
    /// TCP SYN scan of the victim's ports 1..: 100 ports a second.
    PortScan,
    /// SYN flood of the victim's port 80: 500 SYNs a second.
    SynFlood,
    /// UDP flood of random victim ports: 500 datagrams of 512 bytes a second.
    UdpFlood,
    /// Telnet logins to the victim's port 23: two attempts a second.
    TelnetBrute,
    /// DNS tunnelling: ten TXT queries a second with 50-character encoded labels.
    DnsTunnel,
    /// ARP requests for every address of the /24: 50 a second.
    ArpScan,
    /// Probes without a SYN, one every [`PROBE_EVERY`] to the victim's next port: a FIN, a
    /// NULL (no flags), an XMAS (FIN, PSH, URG) or an ACK scan. The victim resets each probe
    /// to a closed port and, to an ACK, every probe; an open port ignores the others.
    FinScan,
    NullScan,
    XmasScan,
    AckScan,
    /// FTP password guessing (port 21), as hydra does it: a connection every half second,
    /// three USER/PASS tries on each, every one refused.
    FtpBrute,
    /// SSH password guessing on port 2222 in bursts: three connections a second apart every
    /// [`SSH_BURST_EVERY`], each a key exchange and two refused passwords.
    SshBrute,
    /// A crypto-miner: one connection to a mining pool on port 3333, an address the device
    /// never used, kept open: a login, then a job from the pool every 30 s and a share
    /// submitted every 20 s (Stratum's JSON-RPC, a few hundred bytes each way).
    Miner,
}

/// The time between two bursts of the SSH brute force.
pub const SSH_BURST_EVERY: u64 = 120 * SECOND;

/// The time between two probes of a FIN, NULL, XMAS or ACK scan: a handful a minute.
pub const PROBE_EVERY: u64 = 20 * SECOND;

/// The messages of a miner's Stratum session (CryptoNote flavour), at the sizes xmrig's are.
#[derive(Clone, Copy, Debug)]
enum Stratum {
    /// The miner logs in with its wallet (160 bytes).
    Login,
    /// The pool's answer to the login, with a first job (420 bytes; an answer names no
    /// method).
    FirstJob,
    /// A new job from the pool (310 bytes).
    Job,
    /// A share the miner submits (180 bytes).
    Submit,
    /// The pool accepts a share (60 bytes; no method: not a mining message by itself).
    Accepted,
}

impl Stratum {
    fn message(self) -> Vec<u8> {
        // (the start, the padded hex field's length, the end) of each message
        let (head, len, tail): (&str, usize, &str) = match self {
            Stratum::Login => (
                r#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"4"#,
                160,
                r#"","pass":"x","agent":"xmrig/6.21.0"}}"#,
            ),
            Stratum::FirstJob => (
                r#"{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"1","job":{"blob":""#,
                420,
                r#"","job_id":"1","target":"b88d0600"},"status":"OK"}}"#,
            ),
            Stratum::Job => (
                r#"{"jsonrpc":"2.0","method":"job","params":{"blob":""#,
                310,
                r#"","job_id":"2","target":"b88d0600"}}"#,
            ),
            Stratum::Submit => (
                r#"{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"1","job_id":"2","nonce":"0100a0b1","result":""#,
                180,
                r#""}}"#,
            ),
            Stratum::Accepted => (r#"{"id":2,"result":{"status":""#, 60, r#"OK"}}"#),
        };
        let mut m = head.as_bytes().to_vec();
        let pad = len.saturating_sub(head.len() + tail.len() + 1);
        m.extend(std::iter::repeat_n(b'a', pad));
        m.extend_from_slice(tail.as_bytes());
        m.push(b'\n');
        m
    }
}

/// The mining pool: an address on the internet no synthesized device uses, and its port.
const POOL: Ipv4Addr = Ipv4Addr::new(94, 23, 199, 191);
const STRATUM: u16 = 3333;

/// The port the SSH brute force guesses on (SSH moved off 22, as often on IoT devices).
const SSH_ALT: u16 = 2222;

/// Ports a stealthy scan tries first, then the rest from 1 up.
const FAVOURITE_PORTS: [u16; 12] = [21, 22, 23, 25, 80, 110, 143, 443, 445, 3389, 8080, 8443];

impl AttackKind {
    pub const ALL: [AttackKind; 13] = [
        AttackKind::PortScan,
        AttackKind::SynFlood,
        AttackKind::UdpFlood,
        AttackKind::TelnetBrute,
        AttackKind::DnsTunnel,
        AttackKind::ArpScan,
        AttackKind::FinScan,
        AttackKind::NullScan,
        AttackKind::XmasScan,
        AttackKind::AckScan,
        AttackKind::FtpBrute,
        AttackKind::SshBrute,
        AttackKind::Miner,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AttackKind::PortScan => "portscan",
            AttackKind::SynFlood => "synflood",
            AttackKind::UdpFlood => "udpflood",
            AttackKind::TelnetBrute => "telnet-brute",
            AttackKind::DnsTunnel => "dns-tunnel",
            AttackKind::ArpScan => "arp-scan",
            AttackKind::FinScan => "fin-scan",
            AttackKind::NullScan => "null-scan",
            AttackKind::XmasScan => "xmas-scan",
            AttackKind::AckScan => "ack-scan",
            AttackKind::FtpBrute => "ftp-brute",
            AttackKind::SshBrute => "ssh-brute",
            AttackKind::Miner => "miner",
        }
    }
}

/// An attack as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub kind: AttackKind,
    pub start_s: u64,
    pub duration_s: u64,
    pub mac: Mac,
}

impl FromStr for Spec {
    type Err = String;
    fn from_str(s: &str) -> Result<Spec, String> {
        let usage = || {
            format!("attack {s:?}: expected KIND@SECONDS[+DURATION]:MAC, e.g. portscan@600:02:10:00:00:00:00")
        };
        let (kind, rest) = s.split_once('@').ok_or_else(usage)?;
        let kind = AttackKind::ALL
            .into_iter()
            .find(|k| k.name() == kind)
            .ok_or_else(|| {
                let names: Vec<_> = AttackKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "attack {s:?}: unknown kind {kind:?}; kinds: {}",
                    names.join(", ")
                )
            })?;
        let (when, mac) = rest.split_once(':').ok_or_else(usage)?;
        let (start, duration) = match when.split_once('+') {
            Some((a, b)) => (a, Some(b)),
            None => (when, None),
        };
        let start_s = start.parse().map_err(|_| usage())?;
        let duration_s = duration
            .map(str::parse)
            .transpose()
            .map_err(|_| usage())?
            .unwrap_or(60);
        let mac = Mac::parse(mac).ok_or_else(usage)?;
        Ok(Spec {
            kind,
            start_s,
            duration_s,
            mac,
        })
    }
}

/// A running attack.
pub struct Attack {
    pub kind: AttackKind,
    pub index: u16,
    pub start: u64,
    pub end: u64,
    attacker: Host,
    attacker_idx: u16,
    victim: Host,
    victim_idx: Option<u16>,
    counter: u64,
}

impl Attack {
    pub fn new(spec: &Spec, index: u16, net: &Network) -> Result<Attack, String> {
        let a = net
            .by_mac(&spec.mac)
            .ok_or_else(|| format!("attack from {}: no such synthesized device", spec.mac))?;
        let victim = net
            .devices
            .get((a.index as usize + 1) % net.devices.len())
            .filter(|v| v.index != a.index);
        Ok(Attack {
            kind: spec.kind,
            index,
            start: START_NS + spec.start_s * SECOND,
            end: START_NS + (spec.start_s + spec.duration_s) * SECOND,
            attacker: a.host(),
            attacker_idx: a.index,
            victim: victim.map(|v| v.host()).unwrap_or(ROUTER),
            victim_idx: victim.map(|v| v.index),
            counter: 0,
        })
    }

    /// The victim's address, for the ground truth.
    pub fn victim_ip(&self) -> Ipv4Addr {
        self.victim.ip
    }

    fn send(&self, out: &mut Out<'_>, ts: u64, mut f: frames::Frame, outbound: bool) {
        f.meta.attack = Some(self.index);
        if outbound {
            out.send(ts, f, Some(self.attacker_idx), self.victim_idx);
        } else {
            out.send(ts, f, self.victim_idx, Some(self.attacker_idx));
        }
    }

    fn tcp_out(&self, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> frames::Frame {
        let (a, v) = (self.attacker, self.victim);
        frames::tcp(a.mac, v.mac, a.ip, v.ip, sport, dport, flags, 7, payload)
    }

    fn tcp_back(&self, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> frames::Frame {
        let (a, v) = (self.attacker, self.victim);
        frames::tcp(v.mac, a.mac, v.ip, a.ip, dport, sport, flags, 9, payload)
    }

    /// One conversation of a brute force, from `now`: (ms after the SYN, sent by the
    /// attacker, flags, payload) to `dport` from `sport`.
    fn converse(
        &self,
        out: &mut Out<'_>,
        now: u64,
        sport: u16,
        dport: u16,
        steps: &[(u64, bool, u8, &[u8])],
    ) {
        for &(ms, outbound, flags, payload) in steps {
            let f = if outbound {
                self.tcp_out(sport, dport, flags, payload)
            } else {
                self.tcp_back(sport, dport, flags, payload)
            };
            self.send(out, now + ms * MS, f, outbound);
        }
    }

    /// One tick of the attack.
    pub fn act(&mut self, now: u64, out: &mut Out<'_>) -> Option<u64> {
        if now >= self.end {
            return None;
        }
        let (a, v) = (self.attacker, self.victim);
        match self.kind {
            AttackKind::PortScan => {
                for i in 0..10u64 {
                    let dport = (self.counter % 65535 + 1) as u16;
                    self.counter += 1;
                    let t = now + i * 10 * MS;
                    self.send(out, t, self.tcp_out(61000, dport, SYN, &[]), true);
                    let open = matches!(dport, 22 | 80 | 443 | 8080);
                    self.send(
                        out,
                        t + MS,
                        self.tcp_back(61000, dport, if open { SYN | ACK } else { RST | ACK }, &[]),
                        false,
                    );
                    if open {
                        self.send(out, t + 2 * MS, self.tcp_out(61000, dport, RST, &[]), true);
                    }
                }
            }
            AttackKind::SynFlood => {
                for i in 0..50u64 {
                    let sport = 1024 + (out.rng.range(0, 60000) as u16);
                    let t = now + i * 2 * MS;
                    self.send(out, t, self.tcp_out(sport, 80, SYN, &[]), true);
                    if out.rng.chance(1, 5) {
                        self.send(out, t + MS, self.tcp_back(sport, 80, SYN | ACK, &[]), false);
                    }
                }
            }
            AttackKind::UdpFlood => {
                for i in 0..50u64 {
                    let dport = out.rng.range(1, 65535) as u16;
                    let f = frames::udp(a.mac, v.mac, a.ip, v.ip, 53000, dport, &[0x41; 512]);
                    self.send(out, now + i * 2 * MS, f, true);
                }
            }
            AttackKind::TelnetBrute => {
                if self.counter % 5 == 0 {
                    let sport = 30000 + (self.counter / 5 % 30000) as u16;
                    // one failed login: (ms after the SYN, sent by the attacker, flags, payload)
                    const LOGIN: [(u64, bool, u8, &[u8]); 9] = [
                        (0, true, SYN, b""),
                        (1, false, SYN | ACK, b""),
                        (2, true, ACK, b""),
                        (5, false, PSH | ACK, b"login: "),
                        (8, true, PSH | ACK, b"root\r\n"),
                        (10, false, PSH | ACK, b"Password: "),
                        (12, true, PSH | ACK, b"admin1\r\n"),
                        (40, false, PSH | ACK, b"Login incorrect\r\n"),
                        (41, true, RST, b""),
                    ];
                    self.converse(out, now, sport, port::TELNET, &LOGIN);
                }
                self.counter += 1;
            }
            AttackKind::DnsTunnel => {
                const B32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
                let label: String = (0..50)
                    .map(|_| B32[out.rng.range(0, 32) as usize] as char)
                    .collect();
                let name = format!("{label}.t.exfil-example.net");
                let id = out.rng.next_u64() as u16;
                let sport = 20000 + (self.counter % 40000) as u16;
                self.counter += 1;
                let mut q = frames::udp(
                    a.mac,
                    ROUTER.mac,
                    a.ip,
                    ROUTER.ip,
                    sport,
                    port::DNS,
                    &frames::dns_query(id, &name, 16),
                );
                q.meta.dns_query = Some(name.clone());
                q.meta.attack = Some(self.index);
                out.send(now, q, Some(self.attacker_idx), None);
                let answer = Some(Ipv4Addr::new(10, 0, 0, 1));
                let mut r = frames::udp(
                    ROUTER.mac,
                    a.mac,
                    ROUTER.ip,
                    a.ip,
                    port::DNS,
                    sport,
                    &frames::dns_response(id, &name, 16, answer),
                );
                r.meta.attack = Some(self.index);
                out.send(now + 20 * MS, r, None, Some(self.attacker_idx));
            }
            AttackKind::ArpScan => {
                for i in 0..5u64 {
                    let host = (self.counter % 254 + 1) as u8;
                    self.counter += 1;
                    let target = Ipv4Addr::new(192, 168, 1, host);
                    let t = now + i * 20 * MS;
                    let mut f = frames::arp(REQUEST, a, Mac::UNKNOWN, target);
                    f.meta.attack = Some(self.index);
                    out.send(t, f, Some(self.attacker_idx), None);
                    if let Some(d) = out
                        .net
                        .by_ip(target)
                        .filter(|d| d.index != self.attacker_idx)
                    {
                        let mut r = frames::arp(REPLY, d.host(), a.mac, a.ip);
                        r.meta.attack = Some(self.index);
                        out.send(t + MS, r, Some(d.index), Some(self.attacker_idx));
                    }
                }
            }
            AttackKind::FtpBrute => {
                const LOGIN: [(u64, bool, u8, &[u8]); 21] = [
                    (0, true, SYN, b""),
                    (1, false, SYN | ACK, b""),
                    (2, true, ACK, b""),
                    (4, false, PSH | ACK, b"220 (vsFTPd 2.3.4)\r\n"),
                    (6, true, PSH | ACK, b"USER admin\r\n"),
                    (7, false, PSH | ACK, b"331 Please specify the password.\r\n"),
                    (9, true, PSH | ACK, b"PASS 123456\r\n"),
                    (40, false, PSH | ACK, b"530 Login incorrect.\r\n"),
                    (42, true, PSH | ACK, b"USER admin\r\n"),
                    (
                        43,
                        false,
                        PSH | ACK,
                        b"331 Please specify the password.\r\n",
                    ),
                    (45, true, PSH | ACK, b"PASS password\r\n"),
                    (80, false, PSH | ACK, b"530 Login incorrect.\r\n"),
                    (82, true, PSH | ACK, b"USER admin\r\n"),
                    (
                        83,
                        false,
                        PSH | ACK,
                        b"331 Please specify the password.\r\n",
                    ),
                    (85, true, PSH | ACK, b"PASS qwerty\r\n"),
                    (120, false, PSH | ACK, b"530 Login incorrect.\r\n"),
                    (122, true, PSH | ACK, b"QUIT\r\n"),
                    (123, false, PSH | ACK, b"221 Goodbye.\r\n"),
                    (124, false, FIN | ACK, b""),
                    (125, true, FIN | ACK, b""),
                    (126, false, ACK, b""),
                ];
                if self.counter % 5 == 0 {
                    let sport = 30000 + (self.counter / 5 % 30000) as u16;
                    self.converse(out, now, sport, port::FTP, &LOGIN);
                }
                self.counter += 1;
            }
            AttackKind::SshBrute => {
                // a key exchange, then two refused passwords, and the server hangs up
                const LOGIN: [(u64, bool, u8, &[u8]); 16] = [
                    (0, true, SYN, b""),
                    (1, false, SYN | ACK, b""),
                    (2, true, ACK, b""),
                    (5, false, PSH | ACK, b"SSH-2.0-OpenSSH_8.9p1\r\n"),
                    (6, true, PSH | ACK, b"SSH-2.0-libssh_0.9.6\r\n"),
                    (8, true, PSH | ACK, &[0x14; 900]),
                    (10, false, PSH | ACK, &[0x14; 1080]),
                    (12, true, PSH | ACK, &[0x1e; 48]),
                    (20, false, PSH | ACK, &[0x1f; 560]),
                    (22, true, PSH | ACK, &[0x15; 80]),
                    (30, false, PSH | ACK, &[0x06; 52]),
                    (32, true, PSH | ACK, &[0x32; 96]),
                    (2000, false, PSH | ACK, &[0x33; 52]),
                    (2002, true, PSH | ACK, &[0x32; 96]),
                    (4000, false, PSH | ACK, &[0x33; 52]),
                    (4001, false, FIN | ACK, b""),
                ];
                const CLOSE: [(u64, bool, u8, &[u8]); 2] =
                    [(4002, true, FIN | ACK, b""), (4003, false, ACK, b"")];
                for i in 0..3u64 {
                    let sport = 50000 + ((self.counter * 3 + i) % 10000) as u16;
                    let t = now + i * SECOND;
                    self.converse(out, t, sport, SSH_ALT, &LOGIN);
                    self.converse(out, t, sport, SSH_ALT, &CLOSE);
                }
                self.counter += 1;
                return Some(now + SSH_BURST_EVERY);
            }
            AttackKind::Miner => {
                // every 10 s: the login at first, a job every third tick, a share every other
                // (CryptoNote Stratum, as xmrig speaks it: one JSON object a line)
                let (a, pool) = (self.attacker, POOL);
                let to_pool = |flags, payload: &[u8]| {
                    frames::tcp(
                        a.mac, ROUTER.mac, a.ip, pool, 41777, STRATUM, flags, 1, payload,
                    )
                };
                let to_me = |flags, payload: &[u8]| {
                    frames::tcp(
                        ROUTER.mac, a.mac, pool, a.ip, STRATUM, 41777, flags, 1, payload,
                    )
                };
                let exchange =
                    |out: &mut Out<'_>, t: u64, up: Option<Stratum>, down: Option<Stratum>| {
                        if let Some(m) = up {
                            self.send(out, t, to_pool(PSH | ACK, &m.message()), true);
                            self.send(out, t + 30 * MS, to_me(ACK, &[]), false);
                        }
                        if let Some(m) = down {
                            self.send(out, t + 40 * MS, to_me(PSH | ACK, &m.message()), false);
                            self.send(out, t + 41 * MS, to_pool(ACK, &[]), true);
                        }
                    };
                if self.counter == 0 {
                    self.send(out, now, to_pool(SYN, &[]), true);
                    self.send(out, now + 30 * MS, to_me(SYN | ACK, &[]), false);
                    self.send(out, now + 31 * MS, to_pool(ACK, &[]), true);
                    exchange(
                        out,
                        now + 32 * MS,
                        Some(Stratum::Login),
                        Some(Stratum::FirstJob),
                    );
                } else {
                    let job = (self.counter % 3 == 0).then_some(Stratum::Job);
                    let share = (self.counter % 2 == 0).then_some(Stratum::Submit);
                    let answer = job.or(share.map(|_| Stratum::Accepted));
                    exchange(out, now, share, answer);
                }
                self.counter += 1;
                return Some(now + 10 * SECOND);
            }
            AttackKind::FinScan
            | AttackKind::NullScan
            | AttackKind::XmasScan
            | AttackKind::AckScan => {
                let i = self.counter as usize;
                let dport = FAVOURITE_PORTS
                    .get(i)
                    .copied()
                    .unwrap_or_else(|| (i - FAVOURITE_PORTS.len()) as u16 % 65535 + 1);
                self.counter += 1;
                let flags = match self.kind {
                    AttackKind::FinScan => FIN,
                    AttackKind::NullScan => 0,
                    AttackKind::XmasScan => FIN | PSH | URG,
                    _ => ACK,
                };
                let sport = 45000 + (self.counter % 1000) as u16;
                self.send(out, now, self.tcp_out(sport, dport, flags, &[]), true);
                let open = matches!(dport, 22 | 80 | 443 | 8080);
                if self.kind == AttackKind::AckScan || !open {
                    self.send(out, now + MS, self.tcp_back(sport, dport, RST, &[]), false);
                }
                return Some(now + PROBE_EVERY);
            }
        }
        Some(now + TICK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_miners_stratum_messages_are_what_the_parser_recognizes() {
        use crate::wire::mining::message;
        for (m, len, mining) in [
            (Stratum::Login, 160, true),
            (Stratum::FirstJob, 420, false),
            (Stratum::Job, 310, true),
            (Stratum::Submit, 180, true),
            (Stratum::Accepted, 60, false),
        ] {
            let b = m.message();
            assert_eq!(b.len(), len, "{m:?}");
            assert_eq!(
                message(&b).is_some(),
                mining,
                "{m:?}: {}",
                String::from_utf8_lossy(&b)
            );
        }
    }

    #[test]
    fn specs() {
        let s: Spec = "portscan@600:02:10:00:00:00:00".parse().unwrap();
        assert_eq!(
            (s.kind, s.start_s, s.duration_s),
            (AttackKind::PortScan, 600, 60)
        );
        let s: Spec = "dns-tunnel@30+120:02:10:03:00:00:03".parse().unwrap();
        assert_eq!(
            (s.kind, s.start_s, s.duration_s, s.mac.0[5]),
            (AttackKind::DnsTunnel, 30, 120, 3)
        );
        assert!("nuke@1:02:10:00:00:00:00"
            .parse::<Spec>()
            .unwrap_err()
            .contains("kinds: portscan, synflood"));
        assert!("portscan@x:02:10:00:00:00:00".parse::<Spec>().is_err());
        assert!("portscan@1:02:10".parse::<Spec>().is_err());
        assert!("portscan".parse::<Spec>().is_err());
    }
}
