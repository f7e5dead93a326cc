//! What the detector has learned, saved across restarts: each device's recurrent state,
//! prediction, learning progress, typical errors, threshold and open incident, keyed by MAC,
//! as JSON written atomically. A restart restores it and neither relearns nor re-announces
//! known devices. A file of another format version, of another model or of another window
//! length is refused with the reason.

use serde::{Deserialize, Serialize};

use super::{DeviceState, Incident};
use crate::model::{Model, State};
use crate::window::features::F;
use crate::wire::Mac;

/// Version of the state file format.
pub const STATE_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
pub(super) struct SavedDetector {
    pub format_version: u32,
    /// [`fingerprint`] of the model the states belong to.
    pub model: String,
    pub window_secs: u64,
    pub first_window: Option<u64>,
    pub incidents: u64,
    /// The LAN's routers when it was saved, so that a restart does not take them for new
    /// devices while it finds them again.
    #[serde(default)]
    pub gateways: Vec<String>,
    pub devices: Vec<SavedDevice>,
    /// What people said about devices on the status page, by MAC.
    #[serde(default)]
    pub notes: std::collections::BTreeMap<String, super::Note>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SavedDevice {
    mac: String,
    h1: Vec<f32>,
    c1: Vec<f32>,
    h2: Vec<f32>,
    pred: Vec<f32>,
    scored: u32,
    threshold_scored: u32,
    sq_err: Vec<f32>,
    scale: Option<Vec<f32>>,
    max_learning: f32,
    threshold: Option<f32>,
    incident: Option<Incident>,
    quiet: u32,
    held: u32,
    /// The last window scored (0 in files written before it was kept).
    #[serde(default)]
    last_window: u64,
    #[serde(default)]
    last_score: f32,
    /// The alarm features it used while learning (bit j: feature j).
    #[serde(default)]
    alarms_learned: u64,
    /// The largest errors of its learning's first half (none in files written before).
    #[serde(default)]
    max_err: Vec<f32>,
}

/// A short hash of the model's weights and metadata (FNV-1a, 64 bits, hex).
pub fn fingerprint(model: &Model) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for part in model.weights.parts() {
        for v in part {
            eat(&v.to_bits().to_le_bytes());
        }
    }
    eat(serde_json::to_string(&model.meta)
        .unwrap_or_default()
        .as_bytes());
    eat(model.kernel.name().as_bytes());
    format!("{h:016x}")
}

fn array(v: &[f32], what: &str) -> Result<[f32; F], String> {
    v.try_into()
        .map_err(|_| format!("{what} has {} values, expected {F}", v.len()))
}

pub(super) fn parse_mac(s: &str) -> Result<Mac, String> {
    Mac::parse(s).ok_or_else(|| format!("{s:?} is not a MAC address"))
}

impl SavedDevice {
    pub fn of(d: &DeviceState) -> SavedDevice {
        SavedDevice {
            mac: d.mac.to_string(),
            h1: d.state.h1.clone(),
            c1: d.state.c1.clone(),
            h2: d.state.h2.clone(),
            pred: d.pred.to_vec(),
            scored: d.scored,
            threshold_scored: d.threshold_scored,
            sq_err: d.sq_err.to_vec(),
            max_err: d.max_err.to_vec(),
            scale: d.scale.map(|s| s.to_vec()),
            max_learning: d.max_learning,
            threshold: d.threshold,
            incident: d.incident.clone(),
            quiet: d.quiet,
            held: d.held,
            last_window: d.last_window,
            last_score: d.last_score,
            alarms_learned: d.alarms_learned,
        }
    }

    pub fn restore(self, model: &Model) -> Result<DeviceState, String> {
        let sizes = model.sizes();
        if self.h1.len() != sizes.lstm || self.c1.len() != sizes.lstm || self.h2.len() != sizes.rnn
        {
            return Err(format!(
                "device {}: recurrent state of another size",
                self.mac
            ));
        }
        let values = self
            .h1
            .iter()
            .chain(&self.c1)
            .chain(&self.h2)
            .chain(&self.pred);
        if values
            .chain(&self.sq_err)
            .chain(&self.max_err)
            .any(|v| !v.is_finite())
        {
            return Err(format!("device {}: values that are not numbers", self.mac));
        }
        Ok(DeviceState {
            mac: parse_mac(&self.mac)?,
            state: State {
                h1: self.h1,
                c1: self.c1,
                h2: self.h2,
            },
            pred: array(&self.pred, "a prediction")?,
            scored: self.scored,
            threshold_scored: self.threshold_scored,
            sq_err: array(&self.sq_err, "the squared errors")?,
            max_err: if self.max_err.is_empty() {
                [0.0; F]
            } else {
                array(&self.max_err, "the largest errors")?
            },
            scale: self.scale.map(|s| array(&s, "a scale")).transpose()?,
            max_learning: self.max_learning,
            threshold: self.threshold,
            incident: self.incident,
            quiet: self.quiet,
            held: self.held,
            last_window: self.last_window,
            last_score: self.last_score,
            alarms_learned: self.alarms_learned,
            queued: false,
            announced: true,
            at_rest: false,
            mean_sum: [0.0; F],
            mean_n: 0,
            hit: None,
            probed: None,
            ips: heapless::Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_read_back() {
        let m = Mac([0x02, 0x10, 0xab, 0, 0xff, 9]);
        assert_eq!(parse_mac(&m.to_string()).unwrap(), m);
        assert!(parse_mac("02:10:ab:00:ff").is_err());
        assert!(parse_mac("02:10:ab:00:ff:zz").is_err());
    }
}
