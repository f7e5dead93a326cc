//! The baseline the model must beat: a per-device z-score on a handful of volume, port, SYN,
//! DNS, ARP and ICMP features (log1p, mean and standard deviation from the learning period,
//! the same floor as the model's), score = the largest |z|. Devices without a learning period
//! of their own are judged on the statistics of all devices pooled. Thresholds and incidents
//! work as the detector's do.

use crate::model::STD_FLOOR;
use crate::window::{Feat, Features};
use crate::wire::Mac;

const FEATS: [Feat; 11] = [
    Feat::PktsOut,
    Feat::BytesOut,
    Feat::RemoteIps,
    Feat::RemotePorts,
    Feat::SynOut,
    Feat::Unanswered,
    Feat::DnsQueries,
    Feat::DnsNameLenMean,
    Feat::ArpReqTargets,
    Feat::UdpOut,
    Feat::IcmpOut,
];
const K: usize = FEATS.len();
/// Threshold floor and the threshold of devices judged on pooled statistics.
const FLOOR: f32 = 4.0;
const POPULATION: f32 = 6.0;

#[derive(Clone, Debug, Default)]
struct Stats {
    n: f64,
    sum: [f64; K],
    sq: [f64; K],
}

impl Stats {
    fn add(&mut self, x: &[f32; K]) {
        self.n += 1.0;
        for k in 0..K {
            self.sum[k] += f64::from(x[k]);
            self.sq[k] += f64::from(x[k]) * f64::from(x[k]);
        }
    }
    fn z_max(&self, x: &[f32; K]) -> (f32, usize) {
        let n = self.n.max(1.0);
        let mut best = (0f32, 0);
        for k in 0..K {
            let mean = self.sum[k] / n;
            let std = (self.sq[k] / n - mean * mean).max(0.0).sqrt() as f32;
            let z = ((x[k] - mean as f32) / std.max(STD_FLOOR)).abs();
            if z > best.0 {
                best = (z, k);
            }
        }
        best
    }
}

#[derive(Clone, Debug)]
struct Dev {
    mac: Mac,
    stats: Stats,
    learning: Vec<f32>,
    threshold: Option<f32>,
    incident: bool,
    quiet: u32,
}

/// What one window came to.
pub struct BaseOutcome {
    pub score: f32,
    pub alerting: bool,
    pub opened: bool,
    pub feature: Option<&'static str>,
}

/// The baseline detector.
pub struct Baseline {
    learning: u32,
    devices: Vec<Option<Dev>>,
    pooled: Stats,
    window_ns: u64,
    first_window: Option<u64>,
}

impl Baseline {
    pub fn new(learning: u32, capacity: usize, window_ns: u64) -> Baseline {
        Baseline {
            learning,
            devices: vec![None; capacity],
            pooled: Stats::default(),
            window_ns,
            first_window: None,
        }
    }

    /// The capture starts at `ts_ns`: learning counts from its window (as the detector's).
    pub fn begin(&mut self, ts_ns: u64) {
        self.first_window.get_or_insert(ts_ns / self.window_ns);
    }

    pub fn on_window(&mut self, slot: usize, mac: Mac, start_ns: u64, f: &Features) -> BaseOutcome {
        let window = start_ns / self.window_ns;
        let first = *self.first_window.get_or_insert(window);
        let warmup = window < first + u64::from(self.learning);
        let mut x = [0f32; K];
        for (k, feat) in FEATS.iter().enumerate() {
            // plain log1p whatever the model does (bytes included): the reference stays put
            x[k] = crate::math::ln_1p(f[*feat].max(0.0));
        }
        if !matches!(&self.devices[slot], Some(d) if d.mac == mac) {
            self.devices[slot] = Some(Dev {
                mac,
                stats: Stats::default(),
                learning: Vec::new(),
                threshold: None,
                incident: false,
                quiet: 0,
            });
        }
        let d = self.devices[slot].as_mut().expect("set above");
        let (score, feature, threshold) = if warmup {
            d.stats.add(&x);
            self.pooled.add(&x);
            let (z, k) = d.stats.z_max(&x);
            d.learning.push(z);
            (z, k, f32::INFINITY)
        } else {
            if d.threshold.is_none() && d.stats.n > 0.0 {
                let mut l = std::mem::take(&mut d.learning);
                l.sort_by(f32::total_cmp);
                let q = l
                    .get(((l.len().saturating_sub(1)) as f64 * 0.995) as usize)
                    .copied()
                    .unwrap_or(0.0);
                d.threshold = Some((q * 1.5).max(FLOOR));
            }
            match d.threshold {
                Some(t) => {
                    let (z, k) = d.stats.z_max(&x);
                    (z, k, t)
                }
                None => {
                    let (z, k) = self.pooled.z_max(&x);
                    (z, k, POPULATION)
                }
            }
        };
        let above = score > threshold;
        let mut opened = false;
        if above {
            d.quiet = 0;
            if !d.incident {
                d.incident = true;
                opened = true;
            }
        } else if d.incident {
            d.quiet += 1;
            if d.quiet >= 3 {
                d.incident = false;
                d.quiet = 0;
            }
        }
        BaseOutcome {
            score,
            alerting: d.incident,
            opened,
            feature: Some(FEATS[feature].spec().name),
        }
    }
}
