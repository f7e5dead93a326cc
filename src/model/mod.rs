//! The LSTM+RNN that learns what each device normally does.
//!
//! A device's windows, standardized ([`Standardizer`]), go one at a time through an LSTM
//! (hidden 64) and an Elman RNN (tanh, hidden 32), and a dense layer predicts the device's
//! next window. A window's score is how far what it shows is from what was predicted from the
//! windows before it, feature by feature, in standard units: no labels are needed.
//!
//! Training runs on candle ([`network`], [`train`]); the file is safetensors (f32, [`mod@file`])
//! or GGUF (Q8_0, [`quant`]) with the architecture, the feature names and the
//! standardization in its metadata; streaming inference keeps each device's recurrent state
//! and advances it one step per closed window, the devices of one window as a batch
//! ([`step`], on the matrix products of [`kernel`]), allocation-free.

pub mod file;
pub mod kernel;
pub mod network;
pub mod quant;
pub mod step;
pub mod train;

pub use step::{Kernel, Scratch, State, MAX_BATCH};

use serde::{Deserialize, Serialize};

use crate::window::features::{Kind, BYTE_UNIT, F, FEATURES};

/// The population threshold is the score of the 99.9th percentile of validation windows times
/// this; a window of a device judged on it scores as normal below the threshold over this.
pub const POPULATION_MARGIN: f32 = 1.5;
use crate::window::Features;

/// Version of the model file format; a file of another version is refused. Version 2 counts
/// byte features in [`BYTE_UNIT`]s ([`Kind::Bytes`]); version 1 took their plain log1p.
pub const FORMAT_VERSION: u32 = 2;

/// The smallest standard deviation a feature may have (in log1p units), so that a feature
/// that never moved in training cannot blow a score up.
pub const STD_FLOOR: f32 = 0.25;

/// Standardized values are clipped to this, so one absurd value cannot dominate.
pub const CLIP: f32 = 20.0;

/// Layer sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    pub features: usize,
    pub lstm: usize,
    pub rnn: usize,
}

impl Default for Sizes {
    fn default() -> Sizes {
        Sizes {
            features: F,
            lstm: 64,
            rnn: 32,
        }
    }
}

/// Per-feature standardization: log1p for counts and means (bytes in [`BYTE_UNIT`]s), then (x - mean) / max(std, floor).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// The transform before standardization.
#[inline]
pub fn transform(kind: Kind, v: f32) -> f32 {
    match kind {
        Kind::Count | Kind::Mean => crate::math::ln_1p(v.max(0.0)),
        Kind::Bytes => crate::math::ln_1p(v.max(0.0) / BYTE_UNIT),
        Kind::Ratio => v,
    }
}

/// The inverse of [`transform`].
#[inline]
pub fn untransform(kind: Kind, v: f32) -> f32 {
    match kind {
        Kind::Count | Kind::Mean => crate::math::exp_m1(v).max(0.0),
        Kind::Bytes => crate::math::exp_m1(v).max(0.0) * BYTE_UNIT,
        Kind::Ratio => v,
    }
}

impl Standardizer {
    /// Learns means and deviations from windows.
    pub fn fit<'a>(windows: impl Iterator<Item = &'a Features>) -> Standardizer {
        let mut n = 0f64;
        let mut sum = [0f64; F];
        let mut sq = [0f64; F];
        for w in windows {
            n += 1.0;
            for (j, spec) in FEATURES.iter().enumerate() {
                let t = f64::from(transform(spec.kind, w.0[j]));
                sum[j] += t;
                sq[j] += t * t;
            }
        }
        let n = n.max(1.0);
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sum
            .iter()
            .zip(sq.iter())
            .map(|(s, q)| ((q / n - (s / n).powi(2)).max(0.0).sqrt()) as f32)
            .collect();
        Standardizer { mean, std }
    }

    /// The standardized vector of a window.
    #[inline]
    pub fn apply(&self, w: &Features, out: &mut [f32; F]) {
        for (j, spec) in FEATURES.iter().enumerate() {
            let z = (transform(spec.kind, w.0[j]) - self.mean[j]) / self.std[j].max(STD_FLOOR);
            out[j] = z.clamp(-CLIP, CLIP);
        }
    }

    /// The smallest typical error per feature, in standard units: the feature's tolerance
    /// (in log1p units) over its standard deviation, and at least [`SCALE_FLOOR`].
    pub fn floors(&self) -> [f32; F] {
        let mut f = [0f32; F];
        for (j, spec) in FEATURES.iter().enumerate() {
            f[j] = (spec.tolerance.log_units() / self.std[j].max(STD_FLOOR)).max(SCALE_FLOOR);
        }
        f
    }

    /// A standardized value back in the feature's own units.
    pub fn invert(&self, j: usize, z: f32) -> f32 {
        untransform(
            FEATURES[j].kind,
            z * self.std[j].max(STD_FLOOR) + self.mean[j],
        )
    }
}

/// What training saw, stored in the model file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub windows: u64,
    pub devices: u64,
    pub sources: Vec<String>,
    pub epochs: u32,
    pub train_loss: f32,
    pub validation_loss: f32,
    pub seed: u64,
}

/// Everything about a model except its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub format_version: u32,
    pub sizes: Sizes,
    pub window_secs: u32,
    pub features: Vec<String>,
    pub standardizer: Standardizer,
    /// Typical prediction error per feature (root mean square over the validation windows,
    /// standard units): how errors are scaled for devices whose own scale is not learned yet.
    pub residual_scale: Vec<f32>,
    /// Threshold for devices whose own threshold is not learned yet: a high quantile of the
    /// validation windows' scores, with a margin.
    pub population_threshold: f32,
    pub training: TrainingSummary,
}

/// The weights as plain row-major matrices (what the files store; the step's kernels are
/// made from them).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Weights {
    /// `[4H, F]`, `[4H, H]`, `[4H]` (both LSTM biases summed); gate order i, f, g, o.
    pub lstm_ih: Vec<f32>,
    pub lstm_hh: Vec<f32>,
    pub lstm_b: Vec<f32>,
    /// `[R, H]`, `[R, R]`, `[R]`.
    pub rnn_ih: Vec<f32>,
    pub rnn_hh: Vec<f32>,
    pub rnn_b: Vec<f32>,
    /// `[F, R]`, `[F]`.
    pub out_w: Vec<f32>,
    pub out_b: Vec<f32>,
}

/// The tensors of a model file, in [`Weights::parts`] order: name, shape, and whether it is a
/// weight matrix (quantized in GGUF files) rather than a bias. Both file formats use it.
pub fn layout(s: Sizes) -> [(&'static str, Vec<usize>, bool); 8] {
    let Sizes {
        features: f,
        lstm: h,
        rnn: r,
    } = s;
    [
        (network::names::LSTM_IH, vec![4 * h, f], true),
        (network::names::LSTM_HH, vec![4 * h, h], true),
        ("lstm.bias", vec![4 * h], false),
        (network::names::RNN_IH, vec![r, h], true),
        (network::names::RNN_HH, vec![r, r], true),
        (network::names::RNN_B, vec![r], false),
        (network::names::OUT_W, vec![f, r], true),
        (network::names::OUT_B, vec![f], false),
    ]
}

impl Weights {
    /// The tensors in [`layout`] order.
    pub fn parts(&self) -> [&[f32]; 8] {
        [
            &self.lstm_ih,
            &self.lstm_hh,
            &self.lstm_b,
            &self.rnn_ih,
            &self.rnn_hh,
            &self.rnn_b,
            &self.out_w,
            &self.out_b,
        ]
    }

    /// Weights from tensors in [`layout`] order; refuses non-finite values.
    pub fn from_parts(parts: Vec<Vec<f32>>) -> Result<Weights, String> {
        if parts.iter().flatten().any(|v| !v.is_finite()) {
            return Err("weights are not finite numbers".into());
        }
        let [lstm_ih, lstm_hh, lstm_b, rnn_ih, rnn_hh, rnn_b, out_w, out_b]: [Vec<f32>; 8] = parts
            .try_into()
            .map_err(|_| "a model has eight tensors".to_string())?;
        Ok(Weights {
            lstm_ih,
            lstm_hh,
            lstm_b,
            rnn_ih,
            rnn_hh,
            rnn_b,
            out_w,
            out_b,
        })
    }
}

/// A loaded model.
#[derive(Clone, Debug)]
pub struct Model {
    pub meta: Meta,
    /// The f32 weights (dequantized, for a GGUF file).
    pub weights: Weights,
    /// How the step multiplies: Q8_0 blocks for a Q8_0 file, f32 otherwise.
    pub kernel: Kernel,
}

impl Model {
    pub fn sizes(&self) -> Sizes {
        self.meta.sizes
    }

    /// Working memory for [`Model::step`] and [`Model::forward`].
    pub fn scratch(&self) -> Scratch {
        Scratch::new(self.meta.sizes)
    }
}

/// Errors are divided by at least this much (standard units): a feature a device never
/// moved cannot turn noise into an alert.
pub const SCALE_FLOOR: f32 = 0.3;

/// Features whose errors make up a score.
pub const SCORED: usize = 3;

/// Each feature's error in an observed (standardized) window against its prediction, in
/// "typical errors": divided by `scale` (the device's own typical error, or the
/// population's) but never by less than `floor` (see [`Standardizer::floors`]).
pub fn errors(
    observed: &[f32; F],
    predicted: &[f32; F],
    scale: &[f32],
    floor: &[f32; F],
) -> [f32; F] {
    let mut e = [0f32; F];
    for j in 0..F {
        e[j] = (observed[j] - predicted[j]).abs() / scale[j].max(floor[j]);
    }
    e
}

/// The score of a window's [`errors`]: the length of the vector of the [`SCORED`] largest.
/// Attacks move several features together (a scan: SYNs, ports, resets, unanswered
/// attempts); a rare benign event mostly moves one.
pub fn score(errors: &[f32; F]) -> f32 {
    let mut top = [0f32; SCORED];
    for &e in errors {
        if e > top[SCORED - 1] {
            top[SCORED - 1] = e;
            top.sort_by(|a, b| b.total_cmp(a));
        }
    }
    top.iter().map(|e| e * e).sum::<f32>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardizer_floors_and_inverts() {
        let mut a = Features::ZERO;
        a.0[0] = 10.0;
        let b = a;
        let s = Standardizer::fit([a, b].iter());
        assert_eq!(s.std[0], 0.0, "never moved");
        let mut z = [0f32; F];
        let mut c = a;
        c.0[0] = 1000.0;
        s.apply(&c, &mut z);
        let expect = (1001f32.ln() - 11f32.ln()) / STD_FLOOR;
        assert!((z[0] - expect).abs() < 1e-4, "{} vs {expect}", z[0]);
        assert!((s.invert(0, z[0]) - 1000.0).abs() < 0.1);
        c.0[0] = 1e30;
        s.apply(&c, &mut z);
        assert_eq!(z[0], CLIP);
    }

    /// A device that never sent ICMP while learning answers a ping, or sends two
    /// port-unreachables for late DNS replies: one or two small packets, which must not
    /// cross the floor of the threshold (they did when bytes took their plain logarithm:
    /// 56 bytes scored 8.5 on a real lock). A tunnel's volume still does.
    #[test]
    fn a_packet_or_two_is_no_alert_but_a_volume_is() {
        use crate::window::features::Feat;
        let model = file::built_in().unwrap();
        let st = &model.meta.standardizer;
        let floors = st.floors();
        let cfg = crate::detect::DetectConfig::default();
        // a device at rest, whose typical errors are the floors: each window against silence
        let score_of = |set: &[(Feat, f32)]| {
            let (quiet, mut w) = (Features::ZERO, Features::ZERO);
            for &(f, v) in set {
                w[f] = v;
            }
            let (mut zq, mut zw) = ([0f32; F], [0f32; F]);
            st.apply(&quiet, &mut zq);
            st.apply(&w, &mut zw);
            score(&errors(&zw, &zq, &floors, &floors))
        };
        let unreachables = [
            (Feat::PktsOut, 2.0),
            (Feat::BytesOut, 140.0),
            (Feat::IcmpOut, 2.0),
            (Feat::IcmpPayloadOut, 56.0),
        ];
        let one = score_of(&unreachables);
        assert!(one < cfg.floor, "two port-unreachables score {one}");
        let tunnel = [
            (Feat::PktsOut, 200.0),
            (Feat::BytesOut, 200.0 * 1100.0),
            (Feat::IcmpOut, 200.0),
            (Feat::IcmpEchoOut, 200.0),
            (Feat::IcmpPayloadOut, 200.0 * 1000.0),
        ];
        let tunnel = score_of(&tunnel);
        assert!(tunnel > 3.0 * cfg.floor, "an ICMP tunnel scores {tunnel}");
    }
}
