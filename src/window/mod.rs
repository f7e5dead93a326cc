//! Per-device feature windows on the packets' own clock.
//!
//! Windows have a fixed length and are aligned to the Unix epoch, so replaying a capture
//! always cuts it the same way. When a packet's timestamp passes the end of the open window,
//! that window closes for every device at once ([`Windows::advance`]); windows in which a
//! device sent nothing close as zeros, because the model must see silence too. Each device
//! keeps a ring of its last [`RING`] closed windows for the model.

pub mod accumulator;
pub mod features;
pub mod sketch;

pub use accumulator::{Accumulator, ArpVerdict, Direction};
pub use features::{Feat, Features, F, FEATURES};

use crate::device::DeviceId;
use crate::wire::Summary;

/// Closed windows kept per device.
pub const RING: usize = 32;

/// A window that just closed.
#[derive(Clone, Copy, Debug)]
pub struct Closed<'a> {
    pub device: DeviceId,
    /// Start of the window, nanoseconds since the epoch.
    pub start_ns: u64,
    pub features: &'a Features,
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

#[derive(Clone, Debug, Default)]
struct Slot {
    active: bool,
    acc: Accumulator,
    ring: heapless::Deque<Features, RING>,
}

/// All devices' open windows and their rings, one slot per device-table slot.
pub struct Windows {
    len_ns: u64,
    max_gap: u64,
    current: Option<u64>,
    slots: Box<[Slot]>,
    stats: WindowStats,
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
            stats: WindowStats::default(),
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
        slot.acc = Accumulator::default();
        slot.ring.clear();
    }

    /// The device in `id` is gone (evicted, or found to be the gateway).
    pub fn stop(&mut self, id: DeviceId) {
        self.slots[id as usize].active = false;
    }

    /// Adds a packet to a device's open window.
    pub fn add(&mut self, id: DeviceId, s: &Summary<'_>, dir: Direction) {
        self.slots[id as usize].acc.add(s, dir);
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

    /// Closes the open window at the end of the capture.
    pub fn finish(&mut self, emit: &mut impl FnMut(Closed<'_>)) {
        if let Some(current) = self.current.take() {
            self.close(current, emit);
        }
    }

    fn close(&mut self, window: u64, emit: &mut impl FnMut(Closed<'_>)) {
        let start_ns = window * self.len_ns;
        for (id, slot) in self.slots.iter_mut().enumerate().filter(|(_, s)| s.active) {
            let features = slot.acc.close();
            if slot.ring.is_full() {
                slot.ring.pop_front();
            }
            // cannot fail: a slot was just freed if the ring was full
            let _ = slot.ring.push_back(features);
            self.stats.closed += 1;
            let features = slot.ring.back().expect("just pushed");
            emit(Closed {
                device: id as DeviceId,
                start_ns,
                features,
            });
        }
    }
}
