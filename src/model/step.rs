//! Streaming inference: each device's recurrent state (LSTM h and c, RNN h) advances by
//! exactly one step per closed window, and the devices whose windows closed together step as
//! one batch ([`Model::forward`] over up to [`MAX_BATCH`] rows of a [`Scratch`]).
//! Allocation-free; the multiplications run on Q8_0 weights ([`Kernel::Q8`], the default of
//! the shipped model) or f32 ([`Kernel::F32`], for a safetensors model), and for comparison in
//! `iotad bench` on candle's own Q8_0 kernel ([`Kernel::CandleQ8`]).

use candle_core::quantized::k_quants::{self, BlockQ8_0, GgmlType};

use super::kernel::{self, Q8, QK};
use super::{Model, Sizes, Weights};
use crate::math;
use crate::window::features::F;

/// Devices stepped together at most; more are stepped in batches of this size.
pub const MAX_BATCH: usize = 64;

/// The weight matrices in step order: LSTM input, LSTM recurrent, RNN input, RNN recurrent,
/// output.
const MATRICES: usize = 5;

/// The weight matrices in step order, with their rows and columns.
fn matrices(w: &Weights, s: Sizes) -> [(&[f32], usize, usize); MATRICES] {
    let Sizes {
        features: f,
        lstm: h,
        rnn: r,
    } = s;
    [
        (&w.lstm_ih, 4 * h, f),
        (&w.lstm_hh, 4 * h, h),
        (&w.rnn_ih, r, h),
        (&w.rnn_hh, r, r),
        (&w.out_w, f, r),
    ]
}

/// How the step multiplies.
#[derive(Clone, Debug)]
pub enum Kernel {
    /// f32 weights (transposed), plain loops.
    F32(Box<[Vec<f32>; MATRICES]>),
    /// Q8_0 weights and activations, exact integer dot products per block.
    Q8(Box<[Q8; MATRICES]>),
    /// Q8_0 weights through candle's `k_quants::matmul` (its SIMD dot products; the sums'
    /// order depends on the CPU, so scores are not bit-identical across platforms).
    CandleQ8(Box<[Vec<BlockQ8_0>; MATRICES]>),
}

impl Kernel {
    /// The f32 kernel of these weights.
    pub fn f32(w: &Weights, s: Sizes) -> Kernel {
        let t: Vec<Vec<f32>> = matrices(w, s)
            .iter()
            .map(|&(m, rows, cols)| kernel::transpose(m, rows, cols))
            .collect();
        Kernel::F32(Box::new(t.try_into().expect("five matrices")))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Kernel::F32(_) => "f32",
            Kernel::Q8(_) => "q8_0",
            Kernel::CandleQ8(_) => "q8_0 candle",
        }
    }
}

/// One device's recurrent state.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub h1: Vec<f32>,
    pub c1: Vec<f32>,
    pub h2: Vec<f32>,
}

/// Working memory of a batched step: inputs and states in, predictions out, one row per
/// device.
#[derive(Clone, Debug)]
pub struct Scratch {
    sizes: Sizes,
    x: Vec<f32>,
    h1: Vec<f32>,
    c1: Vec<f32>,
    h2: Vec<f32>,
    gates: Vec<f32>,
    pre: Vec<f32>,
    pred: Vec<f32>,
    xq: Vec<i8>,
    xs: Vec<f32>,
    tmp: Vec<f32>,
    /// An input seen again and again (a silent window) and the LSTM gates' input half for it
    /// (bias plus input weights times it), computed once by [`Model::memoize_input`].
    memo: Option<([f32; F], Vec<f32>)>,
    /// Whether each row's input is the memoized one.
    memo_row: Vec<bool>,
}

impl Scratch {
    pub fn new(sizes: Sizes) -> Scratch {
        let Sizes {
            features: f,
            lstm: h,
            rnn: r,
        } = sizes;
        let widest_in = f.max(h).max(r);
        let widest_out = (4 * h).max(f).max(r);
        Scratch {
            sizes,
            x: vec![0.0; MAX_BATCH * f],
            h1: vec![0.0; MAX_BATCH * h],
            c1: vec![0.0; MAX_BATCH * h],
            h2: vec![0.0; MAX_BATCH * r],
            gates: vec![0.0; MAX_BATCH * 4 * h],
            pre: vec![0.0; MAX_BATCH * r],
            pred: vec![0.0; MAX_BATCH * f],
            xq: vec![0; MAX_BATCH * widest_in],
            xs: vec![0.0; MAX_BATCH * widest_in / QK + 1],
            tmp: vec![0.0; MAX_BATCH * widest_out],
            memo: None,
            memo_row: vec![false; MAX_BATCH],
        }
    }

    /// Puts a device's state and input in row `i`.
    #[inline]
    pub fn load(&mut self, i: usize, state: &State, x: &[f32; F]) {
        let Sizes {
            features: f,
            lstm: h,
            rnn: r,
        } = self.sizes;
        self.x[i * f..(i + 1) * f].copy_from_slice(x);
        self.memo_row[i] = matches!(&self.memo, Some((m, _)) if m == x);
        self.h1[i * h..(i + 1) * h].copy_from_slice(&state.h1);
        self.c1[i * h..(i + 1) * h].copy_from_slice(&state.c1);
        self.h2[i * r..(i + 1) * r].copy_from_slice(&state.h2);
    }

    /// Whether row `i`'s new state and prediction are within `tol` of `state` and `pred`
    /// (largest absolute change): the step moved nothing that matters. The LSTM's cell state
    /// is left out: once the hidden state it drives no longer moves, a saturated cell that
    /// keeps drifting does not reach the prediction.
    pub fn settled(&self, i: usize, state: &State, pred: &[f32; F], tol: f32) -> bool {
        let Sizes {
            features: f,
            lstm: h,
            rnn: r,
        } = self.sizes;
        let near = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol);
        near(&self.pred[i * f..(i + 1) * f], pred)
            && near(&self.h1[i * h..(i + 1) * h], &state.h1)
            && near(&self.h2[i * r..(i + 1) * r], &state.h2)
    }

    /// Takes row `i`'s new state and prediction back.
    #[inline]
    pub fn store(&self, i: usize, state: &mut State, pred: &mut [f32; F]) {
        let Sizes {
            features: f,
            lstm: h,
            rnn: r,
        } = self.sizes;
        pred.copy_from_slice(&self.pred[i * f..(i + 1) * f]);
        state.h1.copy_from_slice(&self.h1[i * h..(i + 1) * h]);
        state.c1.copy_from_slice(&self.c1[i * h..(i + 1) * h]);
        state.h2.copy_from_slice(&self.h2[i * r..(i + 1) * r]);
    }
}

/// Fills `n` rows of width `bias.len()` with the bias.
#[inline]
fn broadcast(bias: &[f32], out: &mut [f32]) {
    for row in out.chunks_exact_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

impl Model {
    /// A model stepping with `kernel`'s weights, made from the f32 ones.
    pub fn with_kernel(&self, kind: &str) -> Result<Model, String> {
        let mats = matrices(&self.weights, self.meta.sizes);
        let kernel = match kind {
            "f32" => Kernel::f32(&self.weights, self.meta.sizes),
            "q8_0" => {
                let q: Vec<Q8> = mats
                    .iter()
                    .map(|&(m, rows, cols)| Q8::quantize(m, rows, cols))
                    .collect::<Result<_, _>>()?;
                Kernel::Q8(Box::new(q.try_into().expect("five matrices")))
            }
            "candle" => {
                let b: Vec<Vec<BlockQ8_0>> = mats
                    .iter()
                    .map(|&(m, _, _)| {
                        let mut b = vec![BlockQ8_0::zeros(); m.len() / QK];
                        BlockQ8_0::from_float(m, &mut b);
                        b
                    })
                    .collect();
                Kernel::CandleQ8(Box::new(b.try_into().expect("five matrices")))
            }
            _ => return Err(format!("unknown kernel {kind:?}: f32, q8_0 or candle")),
        };
        Ok(Model {
            kernel,
            ..self.clone()
        })
    }

    /// A zero state for a new device.
    pub fn state(&self) -> State {
        let s = self.meta.sizes;
        State {
            h1: vec![0.0; s.lstm],
            c1: vec![0.0; s.lstm],
            h2: vec![0.0; s.rnn],
        }
    }

    /// Remembers the LSTM gates' input half for input `x` in `s`: rows loaded with exactly
    /// this input skip that multiplication (a device's silent windows, most of a quiet
    /// network's steps). The result is the same to the bit.
    pub fn memoize_input(&self, s: &mut Scratch, x: &[f32; F]) {
        let (f, h) = (self.meta.sizes.features, self.meta.sizes.lstm);
        s.memo = None;
        let mut gates = self.weights.lstm_b.clone();
        let Scratch { xq, xs, tmp, .. } = s;
        self.mul(0, f, &x[..f], &mut gates, xq, xs, tmp);
        debug_assert_eq!(gates.len(), 4 * h);
        s.memo = Some((*x, gates));
    }

    /// Advances one device by one window: `x` is the standardized window, `pred` receives the
    /// prediction of the next one.
    pub fn step(&self, state: &mut State, x: &[f32; F], pred: &mut [f32; F], s: &mut Scratch) {
        s.load(0, state, x);
        self.forward(1, s);
        s.store(0, state, pred);
    }

    /// `out[b, :] += input[b, :] . m^T` for the `n` rows of a batch, with matrix `which`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn mul(
        &self,
        which: usize,
        k: usize,
        input: &[f32],
        out: &mut [f32],
        xq: &mut [i8],
        xs: &mut [f32],
        tmp: &mut [f32],
    ) {
        let rows = input.len() / k;
        let n = out.len() / rows;
        match &self.kernel {
            Kernel::F32(t) => kernel::matmul_f32(&t[which], k, input, out, n),
            Kernel::Q8(q) => {
                let (xq, xs) = (&mut xq[..input.len()], &mut xs[..input.len() / QK]);
                kernel::quantize_acts(input, xq, xs);
                kernel::matmul_q8(&q[which], xq, xs, out);
            }
            Kernel::CandleQ8(b) => {
                let tmp = &mut tmp[..out.len()];
                // cannot fail: the shapes were checked when the model was made
                let _ = k_quants::matmul::<BlockQ8_0>((rows, k, n), input, &b[which], tmp);
                for (o, t) in out.iter_mut().zip(tmp.iter()) {
                    *o += t;
                }
            }
        }
    }

    /// Steps the first `n` rows (at most [`MAX_BATCH`]) of `s` as one batch.
    pub fn forward(&self, n: usize, s: &mut Scratch) {
        assert!(n <= MAX_BATCH, "a batch holds at most {MAX_BATCH} devices");
        let Sizes {
            features: f,
            lstm: h,
            rnn: r,
        } = self.meta.sizes;
        let w = &self.weights;
        let Scratch {
            x,
            h1,
            c1,
            h2,
            gates,
            pre,
            pred,
            xq,
            xs,
            tmp,
            memo,
            memo_row,
            ..
        } = s;
        let (x, h1, c1, h2) = (
            &x[..n * f],
            &mut h1[..n * h],
            &mut c1[..n * h],
            &mut h2[..n * r],
        );
        let (gates, pre, pred) = (
            &mut gates[..n * 4 * h],
            &mut pre[..n * r],
            &mut pred[..n * f],
        );
        // the input half of the gates: rows whose input is the memoized one copy it; runs of
        // other rows are multiplied (row by row, so the same sums either way)
        let mut row = 0;
        while row < n {
            let end = (row..n)
                .find(|&i| memo_row[i] != memo_row[row])
                .unwrap_or(n);
            let g = &mut gates[row * 4 * h..end * 4 * h];
            match memo {
                Some((_, m)) if memo_row[row] => broadcast(m, g),
                _ => {
                    broadcast(&w.lstm_b, g);
                    self.mul(0, f, &x[row * f..end * f], g, xq, xs, tmp);
                }
            }
            row = end;
        }
        self.mul(1, h, h1, gates, xq, xs, tmp);
        for ((g, c), hh) in gates
            .chunks_exact(4 * h)
            .zip(c1.chunks_exact_mut(h))
            .zip(h1.chunks_exact_mut(h))
        {
            let (gi, rest) = g.split_at(h);
            let (gf, rest) = rest.split_at(h);
            let (gg, go) = rest.split_at(h);
            for k in 0..h {
                let i = math::sigmoid_f32(gi[k]);
                let fg = math::sigmoid_f32(gf[k]);
                let g = math::tanh_f32(gg[k]);
                let o = math::sigmoid_f32(go[k]);
                let cn = fg * c[k] + i * g;
                c[k] = cn;
                hh[k] = o * math::tanh_f32(cn);
            }
        }
        broadcast(&w.rnn_b, pre);
        self.mul(2, h, h1, pre, xq, xs, tmp);
        self.mul(3, r, h2, pre, xq, xs, tmp);
        for (s, v) in h2.iter_mut().zip(pre.iter()) {
            *s = math::tanh_f32(*v);
        }
        broadcast(&w.out_b, pred);
        self.mul(4, r, h2, pred, xq, xs, tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch gives each device exactly what stepping it alone gives.
    #[test]
    fn a_batch_equals_its_devices_stepped_alone_memoized_or_not() {
        let base = super::super::file::built_in().unwrap();
        for kind in ["f32", "q8_0"] {
            let m = base.with_kernel(kind).unwrap();
            let mut s = Scratch::new(m.meta.sizes);
            let inputs: Vec<[f32; F]> = (0..5)
                .map(|d| {
                    let mut x = [0f32; F];
                    for (j, v) in x.iter_mut().enumerate() {
                        *v = ((d * 31 + j * 7) % 13) as f32 / 4.0 - 1.5;
                    }
                    x
                })
                .collect();
            let mut alone: Vec<(State, [f32; F])> = Vec::new();
            for x in &inputs {
                let mut st = m.state();
                let mut p = [0f32; F];
                for _ in 0..3 {
                    m.step(&mut st, x, &mut p, &mut s);
                }
                alone.push((st, p));
            }
            // and with one input memoized (as a silent window is): the same to the bit
            m.memoize_input(&mut s, &inputs[2]);
            let mut states: Vec<State> = inputs.iter().map(|_| m.state()).collect();
            let mut preds = vec![[0f32; F]; inputs.len()];
            for _ in 0..3 {
                for (i, (st, x)) in states.iter().zip(&inputs).enumerate() {
                    s.load(i, st, x);
                }
                m.forward(inputs.len(), &mut s);
                for (i, (st, p)) in states.iter_mut().zip(preds.iter_mut()).enumerate() {
                    s.store(i, st, p);
                }
            }
            for ((st, p), (a_st, a_p)) in states.iter().zip(&preds).zip(&alone) {
                assert_eq!(st, a_st, "{kind}");
                assert_eq!(p, a_p, "{kind}");
            }
        }
    }
}
