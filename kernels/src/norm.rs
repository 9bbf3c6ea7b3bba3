//! Group normalisation over NCHW (PyTorch `nn.GroupNorm`: biased variance, eps inside the sqrt),
//! with an optional fused activation after the affine transform.

use super::Activation;

/// x, out: [n, c, hw]; gamma, beta: [c]. `c` must be divisible by `groups`.
pub fn group_norm(
    x: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    act: Activation,
    out: &mut [f32],
) {
    assert!(groups > 0 && c.is_multiple_of(groups));
    assert!(x.len() == n * c * hw && out.len() == x.len() && gamma.len() == c && beta.len() == c);
    let cg = c / groups;
    let len = cg * hw;
    for b in 0..n {
        for g in 0..groups {
            let base = (b * c + g * cg) * hw;
            let xs = &x[base..base + len];
            // Two passes in f64: the mean first, then the centred variance (stable for large means).
            let mean = sum_f64(xs, |v| v) / len as f64;
            let var = sum_f64(xs, |v| (v - mean) * (v - mean)) / len as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            let (mean, inv) = (mean as f32, inv as f32);
            for ch in 0..cg {
                let cidx = g * cg + ch;
                let scale = gamma[cidx] * inv;
                let shift = beta[cidx] - mean * scale;
                let o = base + ch * hw;
                let (src, dst) = (&x[o..o + hw], &mut out[o..o + hw]);
                // The activation in a second pass over the row (in L1): the kernels' one SiLU.
                dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v * scale + shift);
                if act == Activation::Silu {
                    super::blocked::silu_slice(dst);
                }
            }
        }
    }
}

/// Σ f(x_i) in f64 over 8 independent partial sums: a single running sum is one serial chain
/// of f64 adds (an add's latency per element; GroupNorm was 11% of the U-Net's wasm time), the
/// lanes vectorise. The order differs from a left-to-right sum by f64 rounding only.
#[inline(always)]
fn sum_f64(xs: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(v as f64);
        }
    }
    let mut total = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for &v in tail {
        total += f(v as f64);
    }
    total
}

pub mod naive {
    use super::Activation;

    /// The definition, term by term, in f64.
    pub fn group_norm(
        x: &[f32],
        n: usize,
        c: usize,
        hw: usize,
        groups: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        act: Activation,
        out: &mut [f32],
    ) {
        let cg = c / groups;
        for b in 0..n {
            for g in 0..groups {
                let idx = |ch: usize, i: usize| (b * c + g * cg + ch) * hw + i;
                let cnt = (cg * hw) as f64;
                let mut mean = 0.0;
                for ch in 0..cg {
                    for i in 0..hw {
                        mean += x[idx(ch, i)] as f64;
                    }
                }
                mean /= cnt;
                let mut var = 0.0;
                for ch in 0..cg {
                    for i in 0..hw {
                        var += (x[idx(ch, i)] as f64 - mean).powi(2);
                    }
                }
                var /= cnt;
                for ch in 0..cg {
                    for i in 0..hw {
                        let v = (x[idx(ch, i)] as f64 - mean) / (var + eps as f64).sqrt();
                        let cidx = g * cg + ch;
                        out[idx(ch, i)] = act.apply((v * gamma[cidx] as f64 + beta[cidx] as f64) as f32);
                    }
                }
            }
        }
    }
}
