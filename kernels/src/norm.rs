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
            let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
            let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            let (mean, inv) = (mean as f32, inv as f32);
            for ch in 0..cg {
                let cidx = g * cg + ch;
                let scale = gamma[cidx] * inv;
                let shift = beta[cidx] - mean * scale;
                let o = base + ch * hw;
                for i in 0..hw {
                    out[o + i] = act.apply(x[o + i] * scale + shift);
                }
            }
        }
    }
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
