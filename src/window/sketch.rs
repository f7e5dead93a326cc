//! Fixed-size structures for counting within a window: distinct values (linear counting),
//! the heaviest key (count-min), and pending connection attempts. Memory never grows with
//! traffic: a port scan of 65,535 ports costs the same bytes as silence.

pub use crate::math::mix;

/// Hash of an IP address, folded to 64 bits.
#[inline]
pub fn hash_ip(ip: &std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(a) => mix(u64::from(u32::from(*a))),
        std::net::IpAddr::V6(a) => {
            let v = u128::from(*a);
            mix((v as u64) ^ mix((v >> 64) as u64 ^ 0x6a09_e667))
        }
    }
}

/// Counts distinct values with a 2048-bit linear-counting bitmap (Whang et al. 1990): within
/// a few percent up to ten thousand values, saturating near 15,600.
#[derive(Clone, Debug)]
pub struct Distinct {
    bits: [u64; Distinct::WORDS],
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct {
            bits: [0; Distinct::WORDS],
        }
    }
}

impl Distinct {
    const WORDS: usize = 32;
    const M: f64 = (Distinct::WORDS * 64) as f64;

    /// Records a value by its (well-mixed) hash.
    #[inline]
    pub fn insert(&mut self, hash: u64) {
        let bit = (hash % (Distinct::WORDS as u64 * 64)) as usize;
        self.bits[bit / 64] |= 1 << (bit % 64);
    }

    /// The estimated number of distinct values inserted.
    pub fn estimate(&self) -> f64 {
        let set: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        let zeros = Distinct::M - f64::from(set);
        if set == 0 {
            // not -M ln 1, which is -0
            0.0
        } else if zeros == 0.0 {
            Distinct::M * Distinct::M.ln()
        } else {
            (-Distinct::M * (zeros / Distinct::M).ln()).round()
        }
    }

    pub fn clear(&mut self) {
        self.bits = [0; Distinct::WORDS];
    }
}

/// The largest count of any one key, estimated with a 2 x 128 count-min sketch with
/// conservative update: never below the true maximum, close to it when one key dominates (a
/// brute-force target), and only a few above 1 when a scan spreads a thousand keys thinly.
#[derive(Clone, Debug)]
pub struct HeaviestKey {
    rows: [[u16; HeaviestKey::WIDTH]; 2],
    max: u16,
}

impl Default for HeaviestKey {
    fn default() -> Self {
        HeaviestKey {
            rows: [[0; HeaviestKey::WIDTH]; 2],
            max: 0,
        }
    }
}

impl HeaviestKey {
    const WIDTH: usize = 128;

    #[inline]
    pub fn add(&mut self, hash: u64) {
        let a = (hash as usize) % Self::WIDTH;
        let b = ((hash >> 32) as usize) % Self::WIDTH;
        // conservative update: raise only the counters that hold the estimate
        let estimate = self.rows[0][a].min(self.rows[1][b]).saturating_add(1);
        self.rows[0][a] = self.rows[0][a].max(estimate);
        self.rows[1][b] = self.rows[1][b].max(estimate);
        self.max = self.max.max(estimate);
    }

    pub fn max(&self) -> u16 {
        self.max
    }

    pub fn clear(&mut self) {
        *self = HeaviestKey::default();
    }
}

/// One remote station a device exchanged packets with in a window: its address, the port
/// (the device's port for packets it received, the remote's for packets it sent) when every
/// packet counted used the same one, and an estimate of the packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    pub ip: Option<std::net::IpAddr>,
    pub port: Option<u16>,
    pub packets: u32,
}

/// The remote stations that exchanged the most packets with a device in one direction: a
/// space-saving heavy-hitter sketch (Metwally et al. 2005) of [`TopPeers::K`] entries, so a
/// scan or flood from ten thousand spoofed sources costs what one peer does. The heaviest
/// entry is never below its true count and is the true heaviest whenever that one sent
/// more than a fifth of the packets.
#[derive(Clone, Copy, Debug, Default)]
pub struct TopPeers {
    ips: [Option<std::net::IpAddr>; TopPeers::K],
    counts: [u32; TopPeers::K],
    ports: [u16; TopPeers::K],
    mixed: [bool; TopPeers::K],
}

impl TopPeers {
    pub const K: usize = 4;

    /// Counts one packet exchanged with `ip` on `port` (0: no port).
    pub fn add(&mut self, ip: std::net::IpAddr, port: u16) {
        if let Some(i) = self.ips.iter().position(|x| *x == Some(ip)) {
            self.counts[i] = self.counts[i].saturating_add(1);
            self.mixed[i] |= self.ports[i] != port;
            return;
        }
        // a free entry, else the smallest one's place (its count carries over: an upper bound)
        let i = (0..Self::K)
            .min_by_key(|&i| (self.ips[i].is_some(), self.counts[i]))
            .unwrap_or(0);
        self.ips[i] = Some(ip);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.ports[i] = port;
        self.mixed[i] = false;
    }

    /// The heaviest peer, if any packet was counted.
    pub fn top(&self) -> Peer {
        let i = (0..Self::K).max_by_key(|&i| (self.counts[i], std::cmp::Reverse(i)));
        match i {
            Some(i) if self.ips[i].is_some() => Peer {
                ip: self.ips[i],
                port: (!self.mixed[i] && self.ports[i] != 0).then_some(self.ports[i]),
                packets: self.counts[i],
            },
            _ => Peer::default(),
        }
    }
}

/// A window's heaviest peers, each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peers {
    /// The station that sent the device the most packets (the local port they went to).
    pub inbound: Peer,
    /// The station the device sent the most packets to (the remote port).
    pub outbound: Peer,
    /// The stations whose probes the device answered: TCP segments opening no connection it
    /// knew that it refused (with a reset: a probe of a closed port, whatever its flags, is
    /// refused) and ARP requests it answered (a sweep finds it so). A scan's targets know their scanner so
    /// even when it is not their heaviest sender (a camera streaming to its cloud, probed
    /// once every twenty seconds).
    pub probers: Probers,
}

/// How a device answered a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A TCP segment that opened no connection it knew (a SYN, or a FIN, NULL, XMAS or ACK
    /// scan's stray segment), refused with a reset: a closed port probed. (A SYN-ACK, an
    /// open port found, is no such evidence: the scanner's usual connections get one too.)
    Tcp,
    /// An ARP request for its address, answered by a reply the device table found asked for.
    Arp,
}

/// One station that probed a device in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Prober {
    ip: std::net::IpAddr,
    /// Segments it sent that opened no connection the device knew.
    asked: u32,
    /// Resets to what it asked, and ARP replies to it.
    tcp: u32,
    arp: u32,
}

/// The stations whose probes a device answered in a window, at most [`Probers::CAP`]: a
/// TCP answer (a reset) counts only to a station that sent the device a segment
/// opening no connection it knew in the window (no device makes itself anyone's target by
/// sending it resets), an ARP reply only when asked for. When full, a newcomer takes the
/// place of the entry that sent the least (a few spoofed probes first do not hide the
/// scanner, nor answered ones a brute forcer on an open port).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Probers([Option<Prober>; Probers::CAP]);

impl Probers {
    pub const CAP: usize = 8;

    fn entry(&mut self, ip: std::net::IpAddr) -> &mut Prober {
        let i = match self.0.iter().position(|p| p.is_some_and(|p| p.ip == ip)) {
            Some(i) => i,
            None => {
                let i = (0..Self::CAP)
                    .min_by_key(|&i| self.0[i].map_or((0, 0), |p| (1, p.asked + p.arp)))
                    .unwrap_or(0);
                self.0[i] = Some(Prober {
                    ip,
                    asked: 0,
                    tcp: 0,
                    arp: 0,
                });
                i
            }
        };
        self.0[i].as_mut().expect("set above")
    }

    /// `ip` sent the device a segment that opened no connection it knew.
    pub fn ask(&mut self, ip: std::net::IpAddr) {
        let p = self.entry(ip);
        p.asked = p.asked.saturating_add(1);
    }

    /// The device refused a segment of `ip` that it was sent before it was known (its first
    /// window: what came earlier was counted nowhere). Counts as an answer, not as an ask.
    pub fn refuse_unseen(&mut self, ip: std::net::IpAddr) {
        let p = self.entry(ip);
        p.tcp = p.tcp.saturating_add(1);
    }

    /// The device answered `ip` (for TCP: only what `ip` asked counts).
    pub fn answer(&mut self, ip: std::net::IpAddr, how: Answer) {
        match how {
            Answer::Tcp => {
                if let Some(p) = self
                    .0
                    .iter_mut()
                    .flatten()
                    .find(|p| p.ip == ip && p.asked > 0)
                {
                    p.tcp = p.tcp.saturating_add(1);
                }
            }
            Answer::Arp => {
                let p = self.entry(ip);
                p.arp = p.arp.saturating_add(1);
            }
        }
    }

    /// The stations that opened connections to the device (or sent it segments of none it
    /// knew), as peers, with how many.
    pub fn askers(&self) -> impl Iterator<Item = Peer> + '_ {
        self.0
            .iter()
            .flatten()
            .filter(|p| p.asked > 0)
            .map(|p| Peer {
                ip: Some(p.ip),
                port: None,
                packets: p.asked,
            })
    }

    /// The stations answered, as peers (no port: a scan's probes go to many), with how.
    pub fn peers(&self) -> impl Iterator<Item = (Peer, Answer)> + '_ {
        self.0.iter().flatten().flat_map(|p| {
            let peer = |packets| Peer {
                ip: Some(p.ip),
                port: None,
                packets,
            };
            [(p.tcp, Answer::Tcp), (p.arp, Answer::Arp)]
                .into_iter()
                .filter(|(n, _)| *n > 0)
                .map(move |(n, how)| (peer(n), how))
        })
    }
}

/// Connection attempts waiting for an answer, by flow hash; a fixed table whose overflow is
/// counted as unanswered (a flood of attempts is what overflows it).
#[derive(Clone, Debug)]
pub struct Pending {
    keys: heapless::Vec<u64, { Pending::CAP }>,
    overflow: u32,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            keys: heapless::Vec::new(),
            overflow: 0,
        }
    }
}

impl Pending {
    const CAP: usize = 64;

    /// An attempt was sent (a retransmission of a pending one is not counted twice).
    pub fn open(&mut self, key: u64) {
        if !self.keys.contains(&key) && self.keys.push(key).is_err() {
            self.overflow = self.overflow.saturating_add(1);
        }
    }

    /// An answer came back: whether the attempt was waiting for one.
    pub fn take(&mut self, key: u64) -> bool {
        match self.keys.iter().position(|&k| k == key) {
            Some(i) => {
                self.keys.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Attempts still unanswered.
    pub fn unanswered(&self) -> u32 {
        self.keys.len() as u32 + self.overflow
    }

    pub fn clear(&mut self) {
        self.keys.clear();
        self.overflow = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When the eight places are full, the station that sent the least gives way: a brute
    /// forcer knocking on an open port (asks, no answer) outlasts stations that probed once
    /// and were refused, and a sweep's answered request counts for its sender.
    #[test]
    fn probers_keep_the_stations_that_sent_most() {
        let ip = |n: u8| std::net::IpAddr::from([192, 168, 1, n]);
        let mut p = Probers::default();
        let forcer = ip(200);
        for _ in 0..3 {
            p.ask(forcer);
        }
        for n in 1..=12 {
            p.ask(ip(n));
            p.answer(ip(n), Answer::Tcp);
        }
        let askers: Vec<_> = p.askers().map(|a| (a.ip.unwrap(), a.packets)).collect();
        assert!(askers.contains(&(forcer, 3)), "{askers:?}");
        assert_eq!(askers.len(), Probers::CAP);
        // an answer to a station that asked nothing is none
        p.answer(ip(250), Answer::Tcp);
        assert!(p.peers().all(|(a, _)| a.ip != Some(ip(250))));
        // the last refused stations are there, answered once each
        assert!(p
            .peers()
            .any(|(a, how)| a.ip == Some(ip(12)) && how == Answer::Tcp));
    }

    #[test]
    fn distinct_is_close() {
        for &n in &[0u64, 1, 7, 50, 300, 1000, 3000, 8000] {
            let mut d = Distinct::default();
            for i in 0..n {
                d.insert(mix(i));
                d.insert(mix(i)); // duplicates do not count
            }
            let e = d.estimate();
            let tol = (n as f64 * 0.06).max(1.0);
            assert!((e - n as f64).abs() <= tol, "n={n} estimate={e}");
        }
        let mut full = Distinct::default();
        for i in 0..100_000 {
            full.insert(mix(i));
        }
        assert!(full.estimate() > 15000.0);
        full.clear();
        assert_eq!(full.estimate(), 0.0);
        assert!(full.estimate().is_sign_positive(), "never -0");
    }

    #[test]
    fn heaviest_key_finds_the_brute_force_target() {
        let mut h = HeaviestKey::default();
        for i in 0..200 {
            h.add(mix(i)); // 200 different services once each
        }
        for _ in 0..57 {
            h.add(mix(9999));
        }
        assert!(h.max() >= 57 && h.max() <= 60, "{}", h.max());
        let mut scan = HeaviestKey::default();
        for i in 0..1000 {
            scan.add(mix(i)); // a port scan: a thousand keys once each
        }
        assert!(scan.max() <= 8, "{}", scan.max());
    }

    #[test]
    fn pending_attempts() {
        let mut p = Pending::default();
        p.open(1);
        p.open(1);
        p.open(2);
        assert!(p.take(1));
        assert!(!p.take(3));
        assert_eq!(p.unanswered(), 1);
        for k in 10..100 {
            p.open(k);
        }
        assert_eq!(p.unanswered(), 91);
    }

    #[test]
    fn the_heaviest_peer_stands_out_of_a_spoofed_crowd() {
        use std::net::{IpAddr, Ipv4Addr};
        let mut t = TopPeers::default();
        assert_eq!(t.top(), Peer::default());
        let attacker = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
        for i in 0..3000u32 {
            // every third packet is the attacker's, on one port; the rest from new sources
            if i % 3 == 0 {
                t.add(attacker, 22);
            } else {
                t.add(IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i)), 443);
            }
        }
        let top = t.top();
        assert_eq!(top.ip, Some(attacker));
        assert_eq!(top.port, Some(22));
        assert!(top.packets >= 1000, "{top:?}");
        // a scan of many ports names the address without a port
        let mut t = TopPeers::default();
        for p in 1..100 {
            t.add(attacker, p);
        }
        assert_eq!(t.top().port, None);
        assert_eq!(t.top().packets, 99);
    }
}
