//! The network in candle, for training: LSTM -> Elman RNN (tanh) -> dense, over sequences.
//! Weights start from a seeded generator (candle's CPU generator cannot be seeded), so
//! training is deterministic.

use candle_core::{DType, Device, IndexOp, Result, Tensor, Var};
use candle_nn::rnn::{LSTMConfig, LSTM, RNN};
use candle_nn::{Linear, Module, VarBuilder, VarMap};

use super::{Sizes, Weights};
use crate::math::Rng;

/// Tensor names, shared by the var map and the model file.
pub mod names {
    pub const LSTM_IH: &str = "lstm.weight_ih_l0";
    pub const LSTM_HH: &str = "lstm.weight_hh_l0";
    pub const LSTM_BIH: &str = "lstm.bias_ih_l0";
    pub const LSTM_BHH: &str = "lstm.bias_hh_l0";
    pub const RNN_IH: &str = "rnn_ih.weight";
    pub const RNN_B: &str = "rnn_ih.bias";
    pub const RNN_HH: &str = "rnn_hh.weight";
    pub const OUT_W: &str = "out.weight";
    pub const OUT_B: &str = "out.bias";
}

/// The trainable network.
pub struct Network {
    lstm: LSTM,
    rnn_ih: Linear,
    rnn_hh: Linear,
    out: Linear,
    sizes: Sizes,
}

fn uniform(rng: &mut Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n)
        .map(|_| ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound)
        .collect()
}

/// The initial values of every tensor: uniform in +-1/sqrt(fan-in), as PyTorch does.
fn initial(sizes: Sizes, seed: u64) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    let Sizes {
        features: f,
        lstm: h,
        rnn: r,
    } = sizes;
    let mut rng = Rng::new(seed);
    let (bh, br) = (1.0 / (h as f32).sqrt(), 1.0 / (r as f32).sqrt());
    vec![
        (
            names::LSTM_IH,
            vec![4 * h, f],
            uniform(&mut rng, 4 * h * f, bh),
        ),
        (
            names::LSTM_HH,
            vec![4 * h, h],
            uniform(&mut rng, 4 * h * h, bh),
        ),
        (names::LSTM_BIH, vec![4 * h], uniform(&mut rng, 4 * h, bh)),
        (names::LSTM_BHH, vec![4 * h], uniform(&mut rng, 4 * h, bh)),
        (names::RNN_IH, vec![r, h], uniform(&mut rng, r * h, bh)),
        (names::RNN_B, vec![r], uniform(&mut rng, r, bh)),
        (names::RNN_HH, vec![r, r], uniform(&mut rng, r * r, br)),
        (names::OUT_W, vec![f, r], uniform(&mut rng, f * r, br)),
        (names::OUT_B, vec![f], vec![0.0; f]),
    ]
}

impl Network {
    /// A network whose variables live in `varmap`: from `weights` when given (fine-tuning),
    /// else from the seeded initializer.
    pub fn new(
        varmap: &VarMap,
        sizes: Sizes,
        seed: u64,
        weights: Option<&Weights>,
    ) -> Result<Network> {
        let dev = Device::Cpu;
        {
            let mut data = varmap.data().lock().expect("var map lock");
            let tensors = match weights {
                None => initial(sizes, seed),
                Some(w) => from_weights(sizes, w),
            };
            for (name, shape, values) in tensors {
                data.insert(
                    name.to_string(),
                    Var::from_tensor(&Tensor::from_vec(values, shape, &dev)?)?,
                );
            }
        }
        let vb = VarBuilder::from_varmap(varmap, DType::F32, &dev);
        let lstm = candle_nn::rnn::lstm(
            sizes.features,
            sizes.lstm,
            LSTMConfig::default(),
            vb.pp("lstm"),
        )?;
        let rnn_ih = candle_nn::linear(sizes.lstm, sizes.rnn, vb.pp("rnn_ih"))?;
        let rnn_hh = candle_nn::linear_no_bias(sizes.rnn, sizes.rnn, vb.pp("rnn_hh"))?;
        let out = candle_nn::linear(sizes.rnn, sizes.features, vb.pp("out"))?;
        Ok(Network {
            lstm,
            rnn_ih,
            rnn_hh,
            out,
            sizes,
        })
    }

    /// Predictions for every step of `xs` [batch, time, features]: output `t` predicts
    /// input `t + 1`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        let mut state = self.lstm.zero_state(b)?;
        let mut h2 = Tensor::zeros((b, self.sizes.rnn), DType::F32, xs.device())?;
        let mut outs = Vec::with_capacity(t);
        for i in 0..t {
            let x = xs.i((.., i, ..))?.contiguous()?;
            state = self.lstm.step(&x, &state)?;
            h2 = (self.rnn_ih.forward(&state.h)? + self.rnn_hh.forward(&h2)?)?.tanh()?;
            outs.push(self.out.forward(&h2)?);
        }
        Tensor::stack(&outs, 1)
    }
}

/// The plain weights of the variables in `varmap`.
pub fn weights(varmap: &VarMap) -> Result<Weights> {
    let data = varmap.data().lock().expect("var map lock");
    let get = |n: &str| -> Result<Vec<f32>> {
        data.get(n)
            .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {n}")))?
            .as_tensor()
            .flatten_all()?
            .to_vec1::<f32>()
    };
    let (bih, bhh) = (get(names::LSTM_BIH)?, get(names::LSTM_BHH)?);
    Ok(Weights {
        lstm_ih: get(names::LSTM_IH)?,
        lstm_hh: get(names::LSTM_HH)?,
        lstm_b: bih.iter().zip(&bhh).map(|(a, b)| a + b).collect(),
        rnn_ih: get(names::RNN_IH)?,
        rnn_hh: get(names::RNN_HH)?,
        rnn_b: get(names::RNN_B)?,
        out_w: get(names::OUT_W)?,
        out_b: get(names::OUT_B)?,
    })
}

/// Tensors for a var map from plain weights (the LSTM's two biases come back as one).
fn from_weights(sizes: Sizes, w: &Weights) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    let Sizes {
        features: f,
        lstm: h,
        rnn: r,
    } = sizes;
    vec![
        (names::LSTM_IH, vec![4 * h, f], w.lstm_ih.clone()),
        (names::LSTM_HH, vec![4 * h, h], w.lstm_hh.clone()),
        (names::LSTM_BIH, vec![4 * h], w.lstm_b.clone()),
        (names::LSTM_BHH, vec![4 * h], vec![0.0; 4 * h]),
        (names::RNN_IH, vec![r, h], w.rnn_ih.clone()),
        (names::RNN_B, vec![r], w.rnn_b.clone()),
        (names::RNN_HH, vec![r, r], w.rnn_hh.clone()),
        (names::OUT_W, vec![f, r], w.out_w.clone()),
        (names::OUT_B, vec![f], w.out_b.clone()),
    ]
}
