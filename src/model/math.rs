//! exp, ln(1+x), tanh and the logistic function from plain IEEE arithmetic, so that scores
//! are bit-identical on every platform: the C library's `expf`, `tanhf` and `log1pf` differ
//! in the last bit between glibc (x86_64) and musl (the Pi build), and a replay must print
//! the same events everywhere. Computed in f64 and rounded once to f32, they are also at
//! least as accurate as the C library's f32 versions.

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

/// e^x.
pub fn exp(x: f32) -> f32 {
    exp64(f64::from(x)) as f32
}

/// e^x - 1 for the inverse of the log1p transform (x >= 0 in practice).
pub fn exp_m1(x: f32) -> f32 {
    (exp64(f64::from(x)) - 1.0) as f32
}

/// ln(1 + x) for x >= 0.
pub fn ln_1p(x: f32) -> f32 {
    ln64(1.0 + f64::from(x)) as f32
}

/// The logistic function 1 / (1 + e^-x).
pub fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + exp64(-f64::from(x)))) as f32
}

/// tanh x.
pub fn tanh(x: f32) -> f32 {
    let a = f64::from(x).abs();
    let t = if a > 20.0 {
        1.0
    } else {
        1.0 - 2.0 / (exp64(2.0 * a) + 1.0)
    };
    (t.copysign(f64::from(x))) as f32
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
            assert!(close(exp(x), x.exp()), "exp({x}) {} vs {}", exp(x), x.exp());
            assert!(
                close(tanh(x), x.tanh()),
                "tanh({x}) {} vs {}",
                tanh(x),
                x.tanh()
            );
            assert!(close(sigmoid(x), 1.0 / (1.0 + (-x).exp())), "sigmoid({x})");
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
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(ln_1p(f32::INFINITY), f32::INFINITY);
    }
}
