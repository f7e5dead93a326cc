//! The matrix products of the streaming step, for a batch of devices at once: f32, and Q8_0
//! (GGML's 8-bit blocks, as candle's quantized tensors store them).
//!
//! Every sum is taken in a fixed order from exact integer or IEEE operations, so a replay
//! prints the same scores on x86_64 and on the Pi. (candle's own Q8_0 kernels sum in an
//! order that depends on the CPU's SIMD unit; `iotad bench` measures them beside ours.)

use candle_core::quantized::{GgmlDType, QTensor};

/// Weights in a GGML Q8_0 block.
pub const QK: usize = 32;
/// Bytes of a GGML Q8_0 block: an f16 scale, then 32 signed bytes.
const BLOCK_BYTES: usize = 2 + QK;

/// The transpose of a row-major `rows` x `cols` matrix.
pub fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

/// `out[b, :] += sum_c x[b, c] * mt[c, :]` for every row `b` of `x` (`k` columns each), with
/// `mt` the transposed weights (`k` rows of `n`): per input, one scaled row added to the
/// outputs, which the compiler vectorizes across the outputs with no reduction. Each output
/// sums its terms in input order, the same on every platform.
#[inline]
pub fn matmul_f32(mt: &[f32], k: usize, x: &[f32], out: &mut [f32], n: usize) {
    debug_assert_eq!(mt.len(), n * k);
    for (xb, ob) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        for (&xv, row) in xb.iter().zip(mt.chunks_exact(n)) {
            for (o, &w) in ob.iter_mut().zip(row) {
                *o += w * xv;
            }
        }
    }
}

/// A matrix in Q8_0: per block of 32 weights of a row, a scale and 32 signed bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Q8 {
    pub rows: usize,
    pub cols: usize,
    /// `rows * cols / 32` scales.
    pub scale: Vec<f32>,
    /// `rows * cols` quantized weights.
    pub q: Vec<i8>,
}

impl Q8 {
    /// Quantizes a row-major f32 matrix with candle (`cols` must be a multiple of 32).
    pub fn quantize(w: &[f32], rows: usize, cols: usize) -> Result<Q8, String> {
        let t = candle_core::Tensor::from_slice(w, (rows, cols), &candle_core::Device::Cpu)
            .map_err(|e| e.to_string())?;
        let q = QTensor::quantize(&t, GgmlDType::Q8_0).map_err(|e| e.to_string())?;
        Q8::from_qtensor(&q)
    }

    /// The blocks of a candle Q8_0 tensor of two dimensions.
    pub fn from_qtensor(t: &QTensor) -> Result<Q8, String> {
        let (rows, cols) = match t.shape().dims() {
            &[r, c] => (r, c),
            d => return Err(format!("a Q8_0 matrix has two dimensions, not {d:?}")),
        };
        if t.dtype() != GgmlDType::Q8_0 {
            return Err(format!("{:?} is not Q8_0", t.dtype()));
        }
        let bytes = t.data().map_err(|e| e.to_string())?;
        Q8::from_ggml(&bytes, rows, cols)
    }

    /// Reads GGML Q8_0 blocks: per block a little-endian f16 scale and 32 `i8`.
    pub fn from_ggml(bytes: &[u8], rows: usize, cols: usize) -> Result<Q8, String> {
        if cols % QK != 0 {
            return Err(format!("{cols} columns are not whole Q8_0 blocks of {QK}"));
        }
        let blocks = rows * cols / QK;
        if bytes.len() != blocks * BLOCK_BYTES {
            return Err(format!(
                "{} bytes of Q8_0 blocks, expected {}",
                bytes.len(),
                blocks * BLOCK_BYTES
            ));
        }
        let mut scale = Vec::with_capacity(blocks);
        let mut q = Vec::with_capacity(rows * cols);
        for b in bytes.chunks_exact(BLOCK_BYTES) {
            let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            if !d.is_finite() {
                return Err("a Q8_0 scale is not a finite number".into());
            }
            scale.push(d);
            q.extend(b[2..].iter().map(|&v| v as i8));
        }
        Ok(Q8 {
            rows,
            cols,
            scale,
            q,
        })
    }
}

/// Quantizes activations to Q8_0-like blocks (one f32 scale per 32 values, `i8` values in
/// -127..=127), as GGML does before an 8-bit dot product. Rounds half to even by adding and
/// subtracting 1.5 * 2^23, which every IEEE platform does alike.
#[inline]
pub fn quantize_acts(x: &[f32], q: &mut [i8], scale: &mut [f32]) {
    const SHIFT: f32 = 12_582_912.0;
    for ((xs, qs), s) in x
        .chunks_exact(QK)
        .zip(q.chunks_exact_mut(QK))
        .zip(scale.iter_mut())
    {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        for (q, v) in qs.iter_mut().zip(xs) {
            *q = ((v * id + SHIFT) - SHIFT) as i32 as i8;
        }
        *s = d;
    }
}

/// `out[b, r] += m[r, :] . x[b, :]` with `m` in Q8_0 and each row of `x` quantized by
/// [`quantize_acts`] (`xq`, `xs`): per block an exact integer dot product, scaled and summed
/// in block order.
#[inline]
pub fn matmul_q8(m: &Q8, xq: &[i8], xs: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { matmul_q8_avx2(m, xq, xs, out) };
        return;
    }
    matmul_q8_body(m, xq, xs, out);
}

/// [`matmul_q8_body`] compiled for AVX2: the integer dot products run 16 lanes wide. Integer
/// sums are exact and the f32 sums keep their order (no FMA), so scores are the same to the
/// bit as on any other CPU.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn matmul_q8_avx2(m: &Q8, xq: &[i8], xs: &[f32], out: &mut [f32]) {
    matmul_q8_body(m, xq, xs, out);
}

#[inline(always)]
fn matmul_q8_body(m: &Q8, xq: &[i8], xs: &[f32], out: &mut [f32]) {
    let (k, n) = (m.cols, m.rows);
    let kb = k / QK;
    for ((xqb, xsb), ob) in xq
        .chunks_exact(k)
        .zip(xs.chunks_exact(kb))
        .zip(out.chunks_exact_mut(n))
    {
        for ((wq, ws), o) in
            m.q.chunks_exact(k)
                .zip(m.scale.chunks_exact(kb))
                .zip(ob.iter_mut())
        {
            let mut sum = 0f32;
            for ((wblk, xblk), (&dw, &dx)) in wq
                .chunks_exact(QK)
                .zip(xqb.chunks_exact(QK))
                .zip(ws.iter().zip(xsb))
            {
                let mut isum = 0i32;
                for (&a, &b) in wblk.iter().zip(xblk) {
                    isum += i32::from(i16::from(a) * i16::from(b));
                }
                sum += (dw * dx) * isum as f32;
            }
            *o += sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Q8 {
        /// The weights as f32.
        fn dequantize(&self) -> Vec<f32> {
            self.q
                .chunks_exact(QK)
                .zip(&self.scale)
                .flat_map(|(q, &d)| q.iter().map(move |&v| f32::from(v) * d))
                .collect()
        }
    }

    #[test]
    fn q8_blocks_round_trip_and_multiply_close_to_f32() {
        let (rows, cols) = (8, 64);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
            .collect();
        let q = Q8::quantize(&w, rows, cols).unwrap();
        assert_eq!(q.scale.len(), rows * cols / QK);
        let back = q.dequantize();
        for (a, b) in w.iter().zip(&back) {
            assert!((a - b).abs() <= 1.25 / 127.0 * 0.51 + 1e-3, "{a} vs {b}");
        }
        let x: Vec<f32> = (0..2 * cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut exact = vec![0f32; 2 * rows];
        matmul_f32(&transpose(&w, rows, cols), cols, &x, &mut exact, rows);
        let mut xq = vec![0i8; x.len()];
        let mut xs = vec![0f32; x.len() / QK];
        quantize_acts(&x, &mut xq, &mut xs);
        let mut approx = vec![0f32; 2 * rows];
        matmul_q8(&q, &xq, &xs, &mut approx);
        for (a, b) in exact.iter().zip(&approx) {
            assert!((a - b).abs() < 0.05, "{a} vs {b}");
        }
        // by hand: row 0 of batch row 1
        let e: f32 = (0..cols).map(|c| w[c] * x[cols + c]).sum();
        assert!((exact[rows] - e).abs() < 1e-4);
    }

    #[test]
    fn the_avx2_path_sums_to_the_same_bits_as_the_portable_one() {
        let (rows, cols) = (96, 128);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 300.0)
            .collect();
        let q = Q8::quantize(&w, rows, cols).unwrap();
        let x: Vec<f32> = (0..3 * cols)
            .map(|i| (i as f32 * 0.731).sin() * 3.0)
            .collect();
        let mut xq = vec![0i8; x.len()];
        let mut xs = vec![0f32; x.len() / QK];
        quantize_acts(&x, &mut xq, &mut xs);
        let (mut fast, mut plain) = (vec![0.5f32; 3 * rows], vec![0.5f32; 3 * rows]);
        matmul_q8(&q, &xq, &xs, &mut fast);
        matmul_q8_body(&q, &xq, &xs, &mut plain);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fast), bits(&plain));
    }

    #[test]
    fn damaged_blocks_are_refused() {
        assert!(Q8::from_ggml(&[0u8; 33], 1, 32).is_err());
        assert!(Q8::from_ggml(&[0u8; 34], 1, 30).is_err());
        let mut inf = [0u8; 34];
        inf[..2].copy_from_slice(&half::f16::INFINITY.to_le_bytes());
        assert!(Q8::from_ggml(&inf, 1, 32).is_err());
        assert!(Q8::from_ggml(&[0u8; 34], 1, 32).is_ok());
    }
}
