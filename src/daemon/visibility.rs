//! What the capture can see from where it sits. On a switched LAN a host plugged into any
//! port sees broadcasts, multicasts and its own traffic, not the devices' conversations, and
//! the detector is then blind without knowing it. The daemon counts the unicast frames it
//! captures and those between two other stations (neither from nor to one of this host's
//! own MACs), and per station whether any of its unicast traffic with another station was
//! seen. After `capture.visibility_secs` with unicast traffic to judge by and no more than
//! [`BLIND_SHARE`] of it between other stations, it warns once: on the log, in the status
//! snapshot, in the metrics, and (through the report file it writes next to the state) in
//! `iotad tune --dry-run`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::wire::Mac;

/// At most this share of the unicast frames between two other stations is blindness (a
/// switch floods a few frames for stations it has not learned yet).
pub const BLIND_SHARE: f64 = 0.01;
/// Stations remembered as visible at most (the device table is smaller).
const MAX_SEEN: usize = 4096;
/// What the warning says.
pub const WARNING: &str = "only broadcast and this host's own traffic seen: see README, Placement";

/// The counters and the verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Unicast Ethernet frames captured.
    pub unicast_frames: u64,
    /// Of those, frames between two other stations than this host.
    pub others_frames: u64,
    /// `others_frames / unicast_frames` (0 before any unicast frame).
    pub others_share: f64,
    /// Seconds measured so far.
    pub measured_secs: u64,
    /// The verdict is in (`capture.visibility_secs` have passed).
    pub judged: bool,
    /// Blind: judged, and no more than [`BLIND_SHARE`] of the unicast frames were between
    /// other stations.
    pub blind: bool,
    /// The warning, when blind.
    pub warning: Option<String>,
}

/// The measurement.
pub struct Visibility {
    own: Vec<Mac>,
    unicast: u64,
    others: u64,
    seen: HashSet<Mac>,
    started: Instant,
    after: Duration,
    warned: bool,
}

/// This host's MACs: every interface's under `/sys/class/net`.
pub fn own_macs(net: &Path) -> Vec<Mac> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(net) else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("address")) else {
            continue;
        };
        if let Some(m) = Mac::parse(text.trim()) {
            if m.0 != [0; 6] && !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

impl Visibility {
    /// Judged `after` the start; `own` are this host's MACs.
    pub fn new(own: Vec<Mac>, after: Duration) -> Visibility {
        Visibility {
            own,
            unicast: 0,
            others: 0,
            seen: HashSet::new(),
            started: Instant::now(),
            after,
            warned: false,
        }
    }

    /// Counts one Ethernet frame (anything shorter than a header is ignored).
    #[inline]
    pub fn frame(&mut self, data: &[u8]) {
        let (Some(dst), Some(src)) = (data.get(0..6), data.get(6..12)) else {
            return;
        };
        if dst[0] & 1 != 0 {
            return; // broadcast or multicast
        }
        self.unicast += 1;
        let own = |m: &[u8]| self.own.iter().any(|o| o.0 == m);
        if own(dst) || own(src) {
            return;
        }
        self.others += 1;
        if self.seen.len() < MAX_SEEN {
            for m in [dst, src] {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(m);
                self.seen.insert(Mac(mac));
            }
        }
    }

    /// Whether unicast traffic between `mac` and another station than this host was seen.
    pub fn visible(&self, mac: Mac) -> bool {
        self.seen.contains(&mac)
    }

    pub fn report(&self) -> Report {
        let judged = self.started.elapsed() >= self.after;
        let share = if self.unicast == 0 {
            0.0
        } else {
            self.others as f64 / self.unicast as f64
        };
        let blind = judged && share <= BLIND_SHARE;
        Report {
            unicast_frames: self.unicast,
            others_frames: self.others,
            others_share: share,
            measured_secs: self.started.elapsed().as_secs(),
            judged,
            blind,
            warning: blind.then(|| WARNING.to_string()),
        }
    }

    /// The warning, the first time the verdict is blind (for the log).
    pub fn take_warning(&mut self) -> Option<Report> {
        if self.warned {
            return None;
        }
        let r = self.report();
        if r.judged {
            self.warned = true;
        }
        r.blind.then_some(r)
    }
}

/// Where the daemon leaves its report for `iotad tune --dry-run`: `visibility.json` next to
/// the state file.
pub fn report_path(state_file: Option<&Path>) -> Option<PathBuf> {
    state_file.map(|s| s.with_file_name("visibility.json"))
}

/// The report's lines for `iotad tune --dry-run`.
pub fn describe(path: Option<&Path>) -> String {
    let Some(path) = path else {
        return "visibility: not measured (no state.file: iotad run writes its report next to it)\n"
            .into();
    };
    let report: Option<Report> = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match report {
        None => format!(
            "visibility: not measured yet ({} is written by iotad run after capture.visibility_secs)\n",
            path.display()
        ),
        Some(r) if r.blind => format!(
            "visibility: WARNING: {} ({} of {} unicast frames between other stations, over {} s)\n",
            WARNING, r.others_frames, r.unicast_frames, r.measured_secs
        ),
        Some(r) => format!(
            "visibility: {:.1}% of {} unicast frames were between other stations (over {} s): \
             the devices' conversations are seen\n",
            r.others_share * 100.0,
            r.unicast_frames,
            r.measured_secs
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f
    }

    #[test]
    fn visibility_tells_blind_from_seeing() {
        let me = [2, 0, 0, 0, 0, 1];
        let (a, b) = ([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]);
        let mut v = Visibility::new(vec![Mac(me)], Duration::ZERO);
        v.frame(&frame([0xff; 6], a));
        v.frame(&frame(me, a));
        v.frame(&frame(a, me));
        v.frame(&[1, 2, 3]);
        let r = v.report();
        assert_eq!((r.unicast_frames, r.others_frames), (2, 0));
        assert!(r.blind && r.warning.as_deref() == Some(WARNING));
        assert!(v.take_warning().is_some() && v.take_warning().is_none());
        assert!(!v.visible(Mac(a)));
        for _ in 0..10 {
            v.frame(&frame(b, a));
        }
        let r = v.report();
        assert_eq!((r.unicast_frames, r.others_frames), (12, 10));
        assert!(!r.blind && v.visible(Mac(a)) && v.visible(Mac(b)));
        assert!(
            !Visibility::new(vec![], Duration::from_secs(60))
                .report()
                .judged
        );
    }
}
