//! sin and cos of f32 values (the time embedding, ONNX `Sin`/`Cos`), computed in f64 as musl's
//! `sinf`/`cosf` do: the argument reduced to r ∈ [−π/4, π/4] and a quadrant, then minimax
//! polynomials whose f64 error is far below an f32 ulp. Ours because libm's carry, for
//! |x| ≥ 2²⁸·π/2, a reduction written for f64 arguments (a 1,200-bit table of 2/π and a
//! multiprecision loop: ~5 KB of wasm); an f32 has at most 24 significant bits and an exponent
//! ≤ 127, so 192 bits of 2/π and one 64×64-bit product reduce any of them (Payne–Hanek).

// musl's constants as it writes them (each rounds to the f64 it means).
#![allow(clippy::excessive_precision)]

/// The quadrant n (mod 4) and r = x − n·π/2 ∈ [−π/4, π/4] (f64; x finite).
fn reduce(x: f32) -> (i32, f64) {
    let ax = x.abs();
    let (n, r) = if ax < 4.0e8 {
        // Cody–Waite: π/2 in two parts, the first of 25 bits so that n·PIO2_HI is exact for
        // n < 2²⁸. TO_INT rounds to the nearest integer (ties to even) in plain arithmetic.
        const TO_INT: f64 = 1.5 / f64::EPSILON;
        const PIO2_HI: f64 = 1.570_796_310_901_641_845_7; // 0x3FF921FB50000000
        const PIO2_LO: f64 = 1.589_325_477_352_819_669_16e-8; // π/2 − PIO2_HI
        let n = ax as f64 * std::f64::consts::FRAC_2_PI + TO_INT - TO_INT;
        (n as i32, ax as f64 - n * PIO2_HI - n * PIO2_LO)
    } else {
        reduce_large(ax)
    };
    if x.is_sign_negative() { (-n, -r) } else { (n, r) }
}

/// The first 256 bits of 2/π after the binary point.
const TWO_OVER_PI: [u64; 4] =
    [0xa2f9_836e_4e44_1529, 0xfc27_57d1_f534_ddc0, 0xdb62_9599_3c43_9041, 0xfe51_63ab_debb_c561];

/// Payne–Hanek for |x| ≥ 4·10⁸ (finite): x = m·2^e with m < 2²⁴ and 5 ≤ e ≤ 104, so
/// x·2/π mod 4 = m·(the 128 bits of 2/π from bit e − 1)·2⁻¹²⁶ mod 4: the bits before add
/// multiples of 4, the ones after less than m·2⁻¹²⁶ ≤ 2⁻¹⁰² of a quadrant.
fn reduce_large(ax: f32) -> (i32, f64) {
    let bits = ax.to_bits();
    let m = u128::from((bits & 0x7f_ffff) | 0x80_0000);
    let e = (bits >> 23) as usize - 150;
    // The window starts at bit e − 1 after the point: index e − 2 of the table's bits.
    let at = e - 2;
    let (word, shift) = (at / 64, (at % 64) as u32);
    let word_at = |i: usize| u128::from(TWO_OVER_PI[i]);
    let hi = (word_at(word) << 64 | word_at(word + 1)) << shift;
    let window = if shift == 0 { hi } else { hi | word_at(word + 2) >> (64 - shift) };
    // Only the product's low 128 bits matter (the higher ones are whole turns): bits 126–127
    // are the quadrant, the 126 below the fraction of one (its top 62 are plenty for an f64).
    let p = m.wrapping_mul(window);
    let mut n = (p >> 126) as i32;
    let mut frac = ((p >> 64) as u64 & ((1 << 62) - 1)) as f64 / (1u64 << 62) as f64;
    if frac >= 0.5 {
        n += 1;
        frac -= 1.0;
    }
    (n, frac * std::f64::consts::FRAC_PI_2)
}

/// sin(r) for |r| ≤ π/4 (musl's `__sindf` coefficients: |error| < 2⁻³⁷ relative).
fn sin_poly(r: f64) -> f64 {
    const S: [f64; 4] = [
        -0.166_666_666_416_265_235_595,
        0.008_333_329_385_889_463_175_6,
        -1.983_933_483_609_663_173_47e-4,
        2.718_311_493_989_821_906_4e-6,
    ];
    let z = r * r;
    let (w, s) = (z * z, z * r);
    (r + s * (S[0] + z * S[1])) + s * w * (S[2] + z * S[3])
}

/// cos(r) for |r| ≤ π/4 (musl's `__cosdf` coefficients: |error| < 2⁻³⁴·⁹).
fn cos_poly(r: f64) -> f64 {
    const C: [f64; 4] = [
        -0.499_999_997_251_031_003_12,
        0.041_666_623_323_739_063_189_4,
        -0.001_388_676_377_460_992_946_92,
        2.439_044_879_627_740_906_54e-5,
    ];
    let z = r * r;
    let w = z * z;
    ((1.0 + z * C[0]) + w * C[1]) + (w * z) * (C[2] + z * C[3])
}

/// (sin x, cos x), each within an ulp of the true value; NaN for NaN and ±∞.
pub fn sin_cos(x: f32) -> (f32, f32) {
    if !x.is_finite() {
        return (f32::NAN, f32::NAN);
    }
    if x == 0.0 {
        return (x, 1.0); // sin keeps the zero's sign
    }
    let (n, r) = reduce(x);
    let (s, c) = (sin_poly(r), cos_poly(r));
    let (s, c) = match n & 3 {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    };
    (s as f32, c as f32)
}

pub fn sin(x: f32) -> f32 {
    sin_cos(x).0
}

pub fn cos(x: f32) -> f32 {
    sin_cos(x).1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in f32 ulps (at the true value's magnitude, at least the smallest normal's).
    fn ulps(got: f32, want: f64) -> f64 {
        let ulp = (want.abs().max(f32::MIN_POSITIVE as f64) as f32).to_bits();
        let ulp = f32::from_bits(ulp + 1) as f64 - f32::from_bits(ulp) as f64;
        (got as f64 - want).abs() / ulp
    }

    /// Against f64's sin and cos (libm's exact reduction) over every exponent of f32: random
    /// mantissas, both signs, and the values the time embedding meets.
    #[test]
    fn sin_and_cos_are_within_an_ulp_everywhere() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut worst, mut at) = (0.0f64, 0.0f32);
        let mut check = |x: f32| {
            let (s, c) = sin_cos(x);
            for (got, want) in [(s, (x as f64).sin()), (c, (x as f64).cos())] {
                let u = ulps(got, want);
                if u > worst {
                    (worst, at) = (u, x);
                }
            }
        };
        for exp in 1..255u32 {
            for _ in 0..400 {
                let r = next();
                let bits = (exp << 23) | (r as u32 & 0x7f_ffff) | ((r >> 40) as u32 & 1) << 31;
                check(f32::from_bits(bits));
            }
        }
        for i in 0..=2000 {
            let t = i as f32 / 2000.0;
            for j in 0..64 {
                check(1000.0 * t * (-(10_000f32.ln()) * j as f32 / 64.0).exp());
            }
        }
        for x in [0.0, -0.0, 1e-30, f32::MIN_POSITIVE, 4.0e8, -4.0e8, 4.0e8f32.next_up(), f32::MAX, f32::MIN] {
            check(x);
        }
        eprintln!("sin/cos: worst {worst:.3} ulp at {at:e}");
        assert!(worst <= 1.0, "{worst} ulp at {at:e}");
        assert!(sin_cos(f32::NAN).0.is_nan() && sin_cos(f32::INFINITY).1.is_nan());
        assert_eq!(sin_cos(-0.0).0.to_bits(), (-0.0f32).to_bits());
    }
}
