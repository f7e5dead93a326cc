//! What a device's windows remember from one window to the next: its TCP connections, so
//! that a segment it sends outside any connection it opened or accepted is seen for what it
//! is (a probe: an ACK, FIN, NULL or XMAS scan sends no SYN). Fixed size, allocated once
//! per device slot, nothing per packet.

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
        let key = key | 1;
        let set = self.set(key);
        let i = match set.iter().position(|c| c.key == key) {
            Some(i) => i,
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
                };
                i
            }
        };
        let c = &mut set[i];
        c.last_s = now_s;
        c
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

/// Everything a device's windows carry from one to the next.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    pub conns: Conns,
    /// Segments waiting to be answered, or to count as probes.
    pub waiting: Waiting,
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
