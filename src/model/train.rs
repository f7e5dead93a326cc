//! Training: device sequences in, a [`Model`] out.
//!
//! Each device's windows are standardized and cut into overlapping chunks; the first 80 % of
//! every device's time is for training, the rest for validation (a split by time). AdamW on
//! the mean squared error of next-window predictions, early stopping on the validation loss,
//! one progress line per epoch. Deterministic for a seed: initial weights, chunk order and
//! candle's single-threaded CPU kernels all are.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use candle_nn::VarMap;

use super::network::{self, Network};
use super::{Kernel, Meta, Model, Sizes, Standardizer, TrainingSummary, FORMAT_VERSION};
use crate::window::features::{F, FEATURES};
use crate::window::Features;

/// Each device's windows, in time order.
#[derive(Clone, Debug, Default)]
pub struct Sequences {
    pub devices: Vec<Vec<Features>>,
    pub sources: Vec<String>,
    /// The window length the rows were cut with, when a CSV shows it (two consecutive
    /// windows of one device).
    pub window_secs: Option<u32>,
}

impl Sequences {
    pub fn windows(&self) -> usize {
        self.devices.iter().map(Vec::len).sum()
    }

    /// Adds one capture's windows, one sequence per device.
    pub fn push_capture(&mut self, name: String, devices: Vec<Vec<Features>>) {
        self.devices.extend(devices);
        self.sources.push(name);
    }

    /// Reads `iotad features` CSV output; one sequence per capture and device.
    pub fn from_csv(path: &Path) -> Result<Sequences, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut lines = text.lines();
        let header = lines
            .next()
            .ok_or_else(|| format!("{}: empty", path.display()))?;
        let names: Vec<&str> = header.split(',').collect();
        let want: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
        if names.len() != 4 + F || names[4..] != want[..] {
            return Err(format!(
                "{}: not an `iotad features` CSV with this iotad's {F} features",
                path.display()
            ));
        }
        let mut by_key: BTreeMap<(String, String), Vec<Features>> = BTreeMap::new();
        // the window length: the smallest step between two windows of one device (silent
        // windows are rows too, so consecutive windows are one length apart)
        let mut last: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut step: Option<u64> = None;
        for (n, line) in lines.enumerate() {
            // the capture name may be quoted and hold commas: read the fields from the right
            let fields: Vec<&str> = line.rsplitn(F + 4, ',').collect();
            if fields.len() != F + 4 {
                return Err(format!(
                    "{}: line {}: expected {} fields",
                    path.display(),
                    n + 2,
                    F + 4
                ));
            }
            let mut f = Features::ZERO;
            for (j, v) in fields[..F].iter().rev().enumerate() {
                f.0[j] = v.parse().map_err(|_| {
                    format!("{}: line {}: {v:?} is not a number", path.display(), n + 2)
                })?;
            }
            let key = (fields[F + 3].to_string(), fields[F + 2].to_string());
            let epoch: u64 = fields[F].parse().map_err(|_| {
                format!(
                    "{}: line {}: {:?} is not a window start",
                    path.display(),
                    n + 2,
                    fields[F]
                )
            })?;
            if let Some(prev) = last.insert(key.clone(), epoch) {
                if epoch > prev {
                    step = Some(step.map_or(epoch - prev, |s| s.min(epoch - prev)));
                }
            }
            by_key.entry(key).or_default().push(f);
        }
        Ok(Sequences {
            devices: by_key.into_values().collect(),
            sources: vec![path.display().to_string()],
            window_secs: step.and_then(|s| u32::try_from(s).ok()),
        })
    }
}

/// Training settings.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub sizes: Sizes,
    pub window_secs: u32,
    pub max_epochs: u32,
    pub patience: u32,
    pub batch: usize,
    pub seq_len: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> TrainConfig {
        TrainConfig {
            sizes: Sizes::default(),
            window_secs: crate::window::DEFAULT_WINDOW_SECS,
            max_epochs: 30,
            patience: 3,
            batch: 32,
            seq_len: 32,
            lr: 3e-3,
            seed: 1,
        }
    }
}

/// The fewest windows a device needs for training on sequences of `seq_len`: the last fifth
/// of its windows (validation) must hold one chunk of `seq_len + 1`.
pub fn min_windows(seq_len: usize) -> usize {
    (seq_len + 1..)
        .find(|&n| n - n * 4 / 5 > seq_len)
        .expect("some length is enough")
}

/// Steps at the start of a chunk that warm the state up and are not scored.
const WARMUP: usize = 4;

type Chunk = Vec<[f32; F]>;

/// Standardized chunks of `len` windows, every `len / 2`; of chunks with no traffic at all
/// only one in ten is kept.
fn chunks(seqs: &[Vec<[f32; F]>], len: usize, silent: &[f32; F]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut quiet = 0;
    for s in seqs {
        let mut start = 0;
        while start + len <= s.len() {
            let c = &s[start..start + len];
            if c.iter().all(|w| w == silent) {
                quiet += 1;
                if quiet % 10 == 0 {
                    out.push(c.to_vec());
                }
            } else {
                out.push(c.to_vec());
            }
            start += len / 2;
        }
    }
    out
}

fn batch_loss(net: &Network, batch: &[&Chunk]) -> candle_core::Result<Tensor> {
    let (b, t) = (batch.len(), batch[0].len());
    let flat: Vec<f32> = batch
        .iter()
        .flat_map(|c| c.iter().flat_map(|w| w.iter().copied()))
        .collect();
    let all = Tensor::from_vec(flat, (b, t, F), &Device::Cpu)?;
    let xs = all.narrow(1, 0, t - 1)?;
    let ys = all.narrow(1, 1, t - 1)?;
    let preds = net.forward(&xs)?;
    let n = t - 1 - WARMUP;
    candle_nn::loss::mse(&preds.narrow(1, WARMUP, n)?, &ys.narrow(1, WARMUP, n)?)
}

/// Trains a model (from scratch, or from `base` when fine-tuning).
pub fn train(seqs: &Sequences, cfg: &TrainConfig, base: Option<&Model>) -> Result<Model, String> {
    let err = |e: candle_core::Error| e.to_string();
    if cfg.seq_len <= WARMUP + 1 {
        return Err(format!("sequence length must be above {}", WARMUP + 1));
    }
    let split: Vec<(&[Features], &[Features])> = seqs
        .devices
        .iter()
        .map(|s| s.split_at(s.len() * 4 / 5))
        .collect();
    let standardizer = match base {
        Some(m) => m.meta.standardizer.clone(),
        None => Standardizer::fit(split.iter().flat_map(|(t, _)| t.iter())),
    };
    let z = |ws: &[Features]| -> Vec<[f32; F]> {
        ws.iter()
            .map(|w| {
                let mut o = [0f32; F];
                standardizer.apply(w, &mut o);
                o
            })
            .collect()
    };
    let mut silent = [0f32; F];
    standardizer.apply(&Features::ZERO, &mut silent);
    let train_z: Vec<_> = split.iter().map(|(t, _)| z(t)).collect();
    let val_z: Vec<_> = split.iter().map(|(_, v)| z(v)).collect();
    let train_chunks = chunks(&train_z, cfg.seq_len + 1, &silent);
    let val_chunks = chunks(&val_z, cfg.seq_len + 1, &silent);
    if train_chunks.is_empty() || val_chunks.is_empty() {
        return Err(format!(
            "not enough data: {} windows; at least one device needs {} windows of its own ({} s), not all of them silent",
            seqs.windows(),
            min_windows(cfg.seq_len),
            min_windows(cfg.seq_len) as u64 * u64::from(cfg.window_secs)
        ));
    }
    let sizes = base.map(|m| m.meta.sizes).unwrap_or(cfg.sizes);
    let varmap = VarMap::new();
    let net = Network::new(&varmap, sizes, cfg.seed, base.map(|m| &m.weights)).map_err(err)?;
    let params = ParamsAdamW {
        lr: cfg.lr,
        weight_decay: 1e-4,
        ..ParamsAdamW::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params).map_err(err)?;
    let mut rng = crate::math::Rng::new(cfg.seed);
    let mut order: Vec<usize> = (0..train_chunks.len()).collect();
    let val_loss = |net: &Network| -> Result<f32, String> {
        let mut total = 0f32;
        let mut n = 0f32;
        for b in val_chunks.chunks(cfg.batch.max(1) * 4) {
            let refs: Vec<&Chunk> = b.iter().collect();
            total += batch_loss(net, &refs)
                .and_then(|l| l.to_scalar::<f32>())
                .map_err(err)?
                * b.len() as f32;
            n += b.len() as f32;
        }
        Ok(total / n)
    };
    let mut best = (
        f32::INFINITY,
        network::weights(&varmap).map_err(err)?,
        0u32,
        0f32,
    );
    let mut since_best = 0;
    log::info!(
        "training on {} windows of {} devices: {} chunks for training, {} for validation",
        seqs.windows(),
        seqs.devices.len(),
        train_chunks.len(),
        val_chunks.len()
    );
    for epoch in 1..=cfg.max_epochs {
        let started = Instant::now();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.range(0, i as u64 + 1) as usize);
        }
        let mut total = 0f32;
        for b in order.chunks(cfg.batch.max(1)) {
            let refs: Vec<&Chunk> = b.iter().map(|&i| &train_chunks[i]).collect();
            let loss = batch_loss(&net, &refs).map_err(err)?;
            opt.backward_step(&loss).map_err(err)?;
            total += loss.to_scalar::<f32>().map_err(err)? * b.len() as f32;
        }
        let train_loss = total / order.len() as f32;
        let v = val_loss(&net)?;
        log::info!(
            "epoch {epoch:>2}: loss {train_loss:.4}, validation loss {v:.4}, {:.1} s",
            started.elapsed().as_secs_f32()
        );
        if v < best.0 {
            best = (
                v,
                network::weights(&varmap).map_err(err)?,
                epoch,
                train_loss,
            );
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= cfg.patience {
                log::info!(
                    "validation loss has not improved for {} epochs: stopping, keeping epoch {}",
                    cfg.patience,
                    best.2
                );
                break;
            }
        }
    }
    let (validation_loss, weights, epochs, train_loss) = best;
    let mut model = Model {
        meta: Meta {
            format_version: FORMAT_VERSION,
            sizes,
            window_secs: cfg.window_secs,
            features: FEATURES.iter().map(|f| f.name.to_string()).collect(),
            standardizer,
            residual_scale: vec![1.0; F],
            population_threshold: 0.0,
            training: TrainingSummary {
                windows: seqs.windows() as u64,
                devices: seqs.devices.len() as u64,
                sources: seqs.sources.clone(),
                epochs,
                train_loss,
                validation_loss,
                seed: cfg.seed,
            },
        },
        kernel: Kernel::f32(&weights, sizes),
        weights,
    };
    // what a device nobody has seen yet is held to: a fine-tuning on one network's few
    // devices cannot say it better than the base model's many
    let (scale, threshold) = match base {
        Some(b) => (b.meta.residual_scale.clone(), b.meta.population_threshold),
        None => population(&model, &train_z, &val_z),
    };
    model.meta.residual_scale = scale;
    model.meta.population_threshold = threshold;
    Ok(model)
}

/// The population's residual scale per feature and threshold, from the validation windows,
/// each device's state warmed on its training windows: the scale is the root mean square
/// error per feature; the threshold a high quantile (99.9 %) of the scaled scores, times
/// [`POPULATION_MARGIN`], at least [`MIN_THRESHOLD`].
fn population(model: &Model, train: &[Vec<[f32; F]>], val: &[Vec<[f32; F]>]) -> (Vec<f32>, f32) {
    let mut errors: Vec<[f32; F]> = Vec::new();
    let mut scratch = model.scratch();
    let mut pred = [0f32; F];
    let mut pairs: Vec<([f32; F], [f32; F])> = Vec::new();
    for (t, v) in train.iter().zip(val) {
        let mut state = model.state();
        for x in t {
            model.step(&mut state, x, &mut pred, &mut scratch);
        }
        for x in v {
            if !t.is_empty() {
                pairs.push((*x, pred));
                let mut e = [0f32; F];
                for j in 0..F {
                    e[j] = x[j] - pred[j];
                }
                errors.push(e);
            }
            model.step(&mut state, x, &mut pred, &mut scratch);
        }
    }
    if errors.is_empty() {
        return (vec![1.0; F], MIN_THRESHOLD);
    }
    let n = errors.len() as f32;
    let floors = model.meta.standardizer.floors();
    let scale: Vec<f32> = (0..F)
        .map(|j| {
            (errors.iter().map(|e| e[j] * e[j]).sum::<f32>() / n)
                .sqrt()
                .max(floors[j])
        })
        .collect();
    let mut scores: Vec<f32> = pairs
        .iter()
        .map(|(x, p)| super::score(&super::errors(x, p, &scale, &floors)))
        .collect();
    scores.sort_by(f32::total_cmp);
    let q = scores[((scores.len() - 1) as f64 * 0.999) as usize];
    (scale, (q * POPULATION_MARGIN).max(MIN_THRESHOLD))
}

/// No threshold is below this many typical errors.
pub const MIN_THRESHOLD: f32 = 4.0;

pub use super::POPULATION_MARGIN;

#[cfg(test)]
mod tests {
    use super::*;

    /// The minimum the error message states is the real one: one window fewer leaves no
    /// validation chunk (the message said 42 while 60 to 120 were refused).
    #[test]
    fn the_stated_minimum_is_the_real_one() {
        let cfg = TrainConfig::default();
        let n = min_windows(cfg.seq_len);
        assert_eq!(n, 161);
        let busy = |n: usize| vec![(0..n).map(|i| [i as f32; F]).collect::<Vec<_>>()];
        let split = |n: usize| {
            let s = &busy(n)[0];
            let (t, v) = s.split_at(n * 4 / 5);
            let silent = [-1.0; F];
            (
                chunks(&[t.to_vec()], cfg.seq_len + 1, &silent).len(),
                chunks(&[v.to_vec()], cfg.seq_len + 1, &silent).len(),
            )
        };
        let (t, v) = split(n);
        assert!(t > 0 && v > 0, "{t} {v}");
        assert_eq!(split(n - 1).1, 0);
    }
}
