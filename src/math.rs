//! exp, ln(1+x), tanh and the logistic function from plain IEEE arithmetic, so that scores
//! are bit-identical on every platform: the C library's `expf`, `tanhf` and `log1pf` differ
//! in the last bit between glibc (x86_64) and musl (the Pi build), and a replay must print
//! the same events everywhere.
//!
//! Two kinds: [`ln_1p`] and [`exp_m1`] (the features' transform, 64 a window) are
//! computed in f64 and rounded once, as accurate as the C library's; [`sigmoid_f32`] and
//! [`tanh_f32`] (the step's ~350 a device-step) are f32 and branch-free, so that loops over
//! them vectorize, within a few units in the last place.

const LN2: f64 = std::f64::consts::LN_2;

/// e^x in f64 for |x| < 700: x = k ln 2 + r with |r| <= ln 2 / 2, e^r by its Taylor series.
fn exp64(x: f64) -> f64 {
    if x > 700.0 {
        return f64::INFINITY;
    }
    if x < -700.0 {
        return 0.0;
    }
    let k = (x / LN2).round();
    let r = x - k * LN2;
    // Taylor series to r^9 in Horner form: relative error below 3e-11 for |r| <= 0.347,
    // far below f32's 6e-8
    const C: [f64; 10] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40320.0,
        1.0 / 362880.0,
    ];
    let mut p = C[9];
    for c in C[..9].iter().rev() {
        p = p * r + c;
    }
    p * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// ln(y) in f64 for y > 0: y = m 2^e with m in [1/sqrt 2, sqrt 2), ln m = 2 atanh((m-1)/(m+1)).
fn ln64(y: f64) -> f64 {
    if y <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if !y.is_finite() {
        return y;
    }
    let bits = y.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // atanh series to s^23: |s| <= 0.172, error below 1e-18
    let mut term = s;
    let mut sum = s;
    for n in 1..=11 {
        term *= s2;
        sum += term / f64::from(2 * n + 1);
    }
    e as f64 * LN2 + 2.0 * sum
}

/// e^x, for constants computed at start (decay rates).
pub fn exp(x: f64) -> f64 {
    exp64(x)
}

/// e^x - 1 for the inverse of the log1p transform (x >= 0 in practice).
pub fn exp_m1(x: f32) -> f32 {
    (exp64(f64::from(x)) - 1.0) as f32
}

/// ln(1 + x) for x >= 0.
pub fn ln_1p(x: f32) -> f32 {
    ln64(1.0 + f64::from(x)) as f32
}

/// e^x in f32 arithmetic: x = k ln 2 + r (Cody and Waite's split of ln 2, so k ln 2 is
/// exact), e^r by its Taylor series to r^6 (relative error below 1.3e-7 for |r| <= ln 2 / 2),
/// times 2^k built from its bits. x is clamped to [-87, 88], where e^x is a normal float.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // adding and subtracting 1.5 * 2^23 rounds to the nearest integer
    const SHIFT: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4; // 355 / 512: k * LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2E + SHIFT) - SHIFT;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// The logistic function 1 / (1 + e^-x).
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// tanh x = 1 - 2 / (e^2x + 1): exact at the tails, within 1.2e-7 of tanh near 0.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    1.0 - 2.0 / (exp_f32(2.0 * x) + 1.0)
}

/// Mixes a 64-bit key into a well-spread hash (the splitmix64 finalizer).
#[inline]
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A seeded generator (splitmix64): the same seed gives the same stream on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5eed_1075_d00d_cafe)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    /// Uniform in `lo..hi` (hi exclusive; `lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo)
        }
    }
    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den < num
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 2.0 * f32::EPSILON * b.abs().max(1e-30) || (a - b).abs() < 1e-37
    }

    #[test]
    fn agrees_with_the_c_library_to_an_ulp_or_two() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            let e = f64::from(x).exp();
            assert!(
                ((f64::from(exp_f32(x)) - e) / e).abs() < 3e-7,
                "exp_f32({x}) {} vs {e}",
                exp_f32(x)
            );
            let t = f64::from(x).tanh();
            assert!((f64::from(tanh_f32(x)) - t).abs() < 2.5e-7, "tanh_f32({x})");
            let s = 1.0 / (1.0 + (-f64::from(x)).exp());
            assert!(
                (f64::from(sigmoid_f32(x)) - s).abs() < 3e-7 * s,
                "sigmoid_f32({x}) {} vs {s}",
                sigmoid_f32(x)
            );
        }
        for i in 0..=5000 {
            let x = i as f32 * i as f32 * 0.7;
            assert!(
                close(ln_1p(x), x.ln_1p()),
                "ln_1p({x}) {} vs {}",
                ln_1p(x),
                x.ln_1p()
            );
            let y = i as f32 * 0.003;
            assert!(close(exp_m1(y), y.exp_m1()), "exp_m1({y})");
        }
        assert_eq!(ln_1p(0.0), 0.0);
        assert_eq!(tanh_f32(100.0), 1.0);
        assert_eq!(tanh_f32(-100.0), -1.0);
        assert_eq!(tanh_f32(0.0), 0.0);
        assert!(sigmoid_f32(-200.0) < 1e-37);
        assert_eq!(sigmoid_f32(200.0), 1.0);
        assert_eq!(exp_f32(-1000.0), exp_f32(-87.0));
        assert_eq!(ln_1p(f32::INFINITY), f32::INFINITY);
    }
}
