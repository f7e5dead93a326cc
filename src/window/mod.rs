//! Per-device feature windows on the packets' own clock.
//!
//! Windows have a fixed length and are aligned to the Unix epoch, so replaying a capture
//! always cuts it the same way. When a packet's timestamp passes the end of the open window,
//! that window closes for every device at once ([`Windows::advance`]); windows in which a
//! device sent nothing close as zeros, because the model must see silence too. Each device
//! keeps a ring of its last [`RING`] closed windows for the model, and a [`Memory`] of what
//! outlives a window (its TCP connections). Slow features ([`SLOW`]) carry a window's count
//! into the next ones, halving every [`SLOW_HALF_LIFE_S`] seconds, so that attempts or probes
//! spread thinly over many windows add up; they read zero once no attempt came for
//! [`SLOW_QUIET_S`] seconds (the sum is kept and fades on, and comes back with the next
//! attempt), so that an incident ends soon after the attempts do, not hours later.

pub mod accumulator;
pub mod features;
pub mod memory;
pub mod sketch;

pub use accumulator::{Accumulator, ArpVerdict, Direction};
pub use features::{Feat, Features, F, FEATURES};
pub use memory::{Memory, NetPorts};
pub use sketch::{Answer, Peer, Peers, Probers};

use crate::device::DeviceId;
use crate::wire::Summary;

/// Default window length, seconds (the built-in model's).
pub const DEFAULT_WINDOW_SECS: u32 = 10;

/// Closed windows kept per device.
pub const RING: usize = 32;

/// A window that just closed.
#[derive(Clone, Copy, Debug)]
pub struct Closed<'a> {
    pub device: DeviceId,
    /// Start of the window, nanoseconds since the epoch.
    pub start_ns: u64,
    pub features: &'a Features,
    /// The window's heaviest peers each way (whom an anomaly names).
    pub peers: &'a Peers,
}

/// Counters about the window clock.
#[derive(Clone, Debug, Default)]
pub struct WindowStats {
    /// Device-windows emitted.
    pub closed: u64,
    /// Packets whose timestamp was before the open window (out of order): counted in it.
    pub late_packets: u64,
    /// Empty windows not emitted because a silence was longer than the gap limit.
    pub skipped_windows: u64,
}

/// The slow features, each with the feature whose counts it sums over past windows
/// ([`Feat::LoginAttemptsSlow`] is summed per remote service, in [`memory::Logins`]).
pub const SLOW: [(Feat, Feat); 1] = [(Feat::ProbesSlow, Feat::Probes)];

#[derive(Clone, Debug, Default)]
struct Slot {
    active: bool,
    acc: Accumulator,
    mem: Memory,
    ring: heapless::Deque<Features, RING>,
    /// The last closed window's heaviest peers.
    peers: Peers,
    /// The running sums behind the [`SLOW`] features.
    slow: [f32; SLOW.len()],
    /// Windows since each slow feature's source was last non-zero.
    slow_quiet: [u32; SLOW.len()],
}

impl Slot {
    /// Closes the open window, which ends at `end_ns`, into the ring; returns it.
    fn close(&mut self, end_ns: u64, w: &mut Closing<'_>) -> (&Features, &Peers) {
        self.peers = self.acc.peers();
        let mut features = self.acc.close(&mut self.mem, end_ns);
        let (logins, slow) = self.mem.logins.close(w.slow_decay, w.slow_quiet);
        features[Feat::LoginAttempts] = logins;
        features[Feat::LoginAttemptsSlow] = slow;
        let end_s = (end_ns / 1_000_000_000) as u32;
        let (services, packets) = self.mem.novelty.close(end_s, w.net);
        features[Feat::NewServices] = services;
        features[Feat::NewServicePkts] = packets;
        for (i, (slow, source)) in SLOW.into_iter().enumerate() {
            let v = self.slow[i] * w.slow_decay + features[source];
            self.slow[i] = if v < SLOW_ZERO { 0.0 } else { v };
            let quiet = &mut self.slow_quiet[i];
            *quiet = if features[source] > 0.0 {
                0
            } else {
                quiet.saturating_add(1)
            };
            features[slow] = if *quiet < w.slow_quiet {
                self.slow[i]
            } else {
                0.0
            };
        }
        if self.ring.is_full() {
            self.ring.pop_front();
        }
        // cannot fail: a slot was just freed if the ring was full
        let _ = self.ring.push_back(features);
        (self.ring.back().expect("just pushed"), &self.peers)
    }
}

/// What closing a window needs besides the slot: the slow features' constants and the
/// network's ports (for novelty).
struct Closing<'a> {
    slow_decay: f32,
    slow_quiet: u32,
    net: &'a mut NetPorts,
}

/// Half-life of the slow features, in seconds.
pub const SLOW_HALF_LIFE_S: f64 = 600.0;

/// Below this a slow feature is zero again, so that silence is all zeros.
pub const SLOW_ZERO: f32 = 0.05;

/// A slow feature reads zero after this many seconds without an attempt.
pub const SLOW_QUIET_S: u64 = 300;

/// All devices' open windows and their rings, one slot per device-table slot.
pub struct Windows {
    len_ns: u64,
    max_gap: u64,
    current: Option<u64>,
    slots: Box<[Slot]>,
    /// The ports the network's devices use.
    net: NetPorts,
    stats: WindowStats,
    /// What a slow feature keeps of itself from one window to the next.
    slow_decay: f32,
    /// Windows without an attempt after which a slow feature reads zero.
    slow_quiet: u32,
}

impl Windows {
    /// `capacity` slots (the device table's), windows of `len_ns`; silences longer than
    /// `max_gap` windows emit only the first `max_gap` empty windows.
    pub fn new(capacity: usize, len_ns: u64, max_gap: u64) -> Windows {
        assert!(len_ns > 0, "window length must be positive");
        Windows {
            len_ns,
            max_gap,
            current: None,
            slots: vec![Slot::default(); capacity].into_boxed_slice(),
            net: NetPorts::default(),
            stats: WindowStats::default(),
            slow_decay: crate::math::exp(
                -std::f64::consts::LN_2 * len_ns as f64 / 1e9 / SLOW_HALF_LIFE_S,
            ) as f32,
            slow_quiet: (SLOW_QUIET_S * 1_000_000_000).div_ceil(len_ns) as u32,
        }
    }

    pub fn len_ns(&self) -> u64 {
        self.len_ns
    }

    pub fn stats(&self) -> &WindowStats {
        &self.stats
    }

    /// A device (new, or replacing an evicted one) takes `id`: its history starts empty.
    pub fn start(&mut self, id: DeviceId) {
        let slot = &mut self.slots[id as usize];
        slot.active = true;
        slot.acc = Accumulator::first();
        slot.mem = Memory::default();
        slot.ring.clear();
        slot.slow = [0.0; SLOW.len()];
        slot.slow_quiet = [u32::MAX; SLOW.len()];
    }

    /// The device in `id` is gone (evicted, or found to be the gateway).
    pub fn stop(&mut self, id: DeviceId) {
        self.slots[id as usize].active = false;
    }

    /// Adds a packet to a device's open window.
    pub fn add(&mut self, id: DeviceId, s: &Summary<'_>, dir: Direction) {
        let slot = &mut self.slots[id as usize];
        slot.acc.add(s, dir, &mut slot.mem, &mut self.net);
    }

    /// Records the device table's conclusion about an ARP packet the device sent.
    pub fn arp_verdict(&mut self, id: DeviceId, v: ArpVerdict) {
        self.slots[id as usize].acc.arp_verdict(v);
    }

    /// The device's last closed windows, oldest first.
    pub fn history(&self, id: DeviceId) -> impl Iterator<Item = &Features> {
        self.slots[id as usize].ring.iter()
    }

    /// Moves the clock to `ts_ns`, closing every window that ended before it.
    pub fn advance(&mut self, ts_ns: u64, emit: &mut impl FnMut(Closed<'_>)) {
        let idx = ts_ns / self.len_ns;
        let Some(current) = self.current else {
            self.current = Some(idx);
            return;
        };
        if idx < current {
            self.stats.late_packets += 1;
            return;
        }
        if idx == current {
            return;
        }
        self.close(current, emit);
        let empty = idx - current - 1;
        let emitted = empty.min(self.max_gap);
        self.stats.skipped_windows += empty - emitted;
        for w in current + 1..current + 1 + emitted {
            self.close(w, emit);
        }
        self.current = Some(idx);
    }

    /// Moves the clock to `ts_ns` when a timer says so; unlike [`Windows::advance`], it does
    /// not start the clock (no window is open before the first packet).
    pub fn tick(&mut self, ts_ns: u64, emit: &mut impl FnMut(Closed<'_>)) {
        if self.current.is_some_and(|c| ts_ns / self.len_ns > c) {
            self.advance(ts_ns, emit);
        }
    }

    /// Closes the open window at the end of the capture.
    pub fn finish(&mut self, emit: &mut impl FnMut(Closed<'_>)) {
        if let Some(current) = self.current.take() {
            self.close(current, emit);
        }
    }

    fn close(&mut self, window: u64, emit: &mut impl FnMut(Closed<'_>)) {
        let start_ns = window * self.len_ns;
        let mut closing = Closing {
            slow_decay: self.slow_decay,
            slow_quiet: self.slow_quiet,
            net: &mut self.net,
        };
        for (id, slot) in self.slots.iter_mut().enumerate().filter(|(_, s)| s.active) {
            self.stats.closed += 1;
            let (features, peers) = slot.close(start_ns + self.len_ns, &mut closing);
            emit(Closed {
                device: id as DeviceId,
                start_ns,
                features,
                peers,
            });
        }
    }

    /// Closes the open window of one device now (it stops being a device).
    pub fn close_one(&mut self, id: DeviceId, emit: &mut impl FnMut(Closed<'_>)) {
        let (Some(window), Some(slot)) = (self.current, self.slots.get_mut(id as usize)) else {
            return;
        };
        if slot.active {
            self.stats.closed += 1;
            let start_ns = window * self.len_ns;
            let mut closing = Closing {
                slow_decay: self.slow_decay,
                slow_quiet: self.slow_quiet,
                net: &mut self.net,
            };
            let (features, peers) = slot.close(start_ns + self.len_ns, &mut closing);
            emit(Closed {
                device: id,
                start_ns,
                features,
                peers,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::{flags, Tcp};
    use crate::wire::{App, Mac, Net, Transport};

    /// A SYN to port 22 sent by the device at `ts_ns`, from source address `src`.
    fn ssh_syn(ts_ns: u64, src: [u8; 4]) -> Summary<'static> {
        Summary {
            ts_ns,
            src_mac: Mac([2, 0, 0, 0, 0, 1]),
            dst_mac: Mac([2, 0, 0, 0, 0, 2]),
            vlan: None,
            wire_len: 60,
            net: Net::Ip {
                src: src.into(),
                dst: [192, 168, 1, 50].into(),
                fragment: false,
            },
            transport: Transport::Tcp(Tcp {
                src_port: 40000,
                dst_port: 22,
                flags: flags::SYN,
                payload_len: 0,
            }),
            app: App::None,
            issue: None,
        }
    }

    /// An ACK probe sent by the device at `ts_ns` from local port `sport` (nobody answers).
    fn ack_probe(ts_ns: u64, sport: u16) -> Summary<'static> {
        let mut s = ssh_syn(ts_ns, [192, 168, 1, 7]);
        s.transport = Transport::Tcp(Tcp {
            src_port: sport,
            dst_port: 80,
            flags: flags::ACK,
            payload_len: 0,
        });
        s
    }

    #[test]
    fn slow_features_add_up_thin_attempts_and_fade_to_zero() {
        const S: u64 = 1_000_000_000;
        let mut w = Windows::new(1, 10 * S, 10_000);
        w.start(0);
        let mut seen: Vec<(u64, f32, f32)> = Vec::new();
        let mut emit = |c: Closed<'_>| {
            seen.push((
                c.start_ns / S,
                c.features[Feat::Probes],
                c.features[Feat::ProbesSlow],
            ))
        };
        // one probe a minute for five minutes, silence, one more ten minutes later
        for m in [0, 1, 2, 3, 4, 14u64] {
            w.advance(m * 60 * S, &mut emit);
            w.add(0, &ack_probe(m * 60 * S, 40000 + m as u16), Direction::Out);
        }
        w.advance(7200 * S, &mut emit);
        let at = |t: u64| seen.iter().find(|s| s.0 == t).copied().unwrap();
        assert_eq!(at(0), (0, 1.0, 1.0));
        assert_eq!(at(10).1, 0.0);
        let d = 0.5f32.powf(10.0 / 600.0);
        assert!((at(10).2 - d).abs() < 1e-6, "{:?}", at(10));
        // five probes in four minutes: more than four of them still count
        assert!(at(240).2 > 4.0 && at(240).2 < 5.0, "{:?}", at(240));
        // it reads on for five minutes without a probe, then zero
        assert!(
            (at(530).2 / at(240).2 - d.powi(29)).abs() < 1e-3,
            "{:?}",
            at(530)
        );
        assert_eq!(at(540).2, 0.0);
        // the next probe brings back what is left: half of it ten minutes later, plus one
        assert!(
            (at(840).2 - 1.0 - at(240).2 * 0.5).abs() < 1e-2,
            "{:?}",
            at(840)
        );
        assert_eq!(at(6000).2, 0.0);
        assert!(seen.iter().all(|s| s.2 >= 0.0));
    }

    #[test]
    fn spoofed_sources_are_counted() {
        let mut acc = Accumulator::default();
        let mem = &mut Memory::default();
        let net = &mut NetPorts::default();
        for i in 0..40u8 {
            acc.add(&ssh_syn(0, [10, 0, i, 1]), Direction::Out, mem, net);
        }
        acc.add(&ssh_syn(0, [10, 0, 0, 1]), Direction::Out, mem, net);
        let f = acc.close(mem, 10_000_000_000);
        assert!(
            (f[Feat::SrcIpsOut] - 40.0).abs() <= 2.0,
            "{}",
            f[Feat::SrcIpsOut]
        );
        let mut one = Accumulator::default();
        for _ in 0..10 {
            one.add(&ssh_syn(0, [192, 168, 1, 7]), Direction::Out, mem, net);
        }
        assert_eq!(one.close(mem, 10_000_000_000)[Feat::SrcIpsOut], 1.0);
        // a camera that rejoins the Wi-Fi asks DHCP from 0.0.0.0, then uploads from its
        // address: one source address, not a spoofed second one
        let mut rejoined = Accumulator::default();
        rejoined.add(&ssh_syn(0, [0, 0, 0, 0]), Direction::Out, mem, net);
        rejoined.add(&ssh_syn(0, [192, 168, 1, 7]), Direction::Out, mem, net);
        assert_eq!(rejoined.close(mem, 10_000_000_000)[Feat::SrcIpsOut], 1.0);
    }
}
