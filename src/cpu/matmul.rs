//! Dense matrix products.
//!
//! `linear`: out[n,m] = act(x[n,k] · w[m,k]ᵀ + bias[m]) — PyTorch's `nn.Linear` layout, so
//! weights are used as stored.
//! `matmul`: out[n,m] = a[n,k] · b[k,m] (used by the convolution's implicit GEMM).

use super::Activation;

/// Fused linear layer. `out` must hold n·m values.
pub fn linear(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    n: usize,
    k: usize,
    m: usize,
    out: &mut [f32],
) {
    naive::linear(x, w, bias, act, n, k, m, out)
}

/// Plain product a·b. `out` must hold n·m values.
pub fn matmul(a: &[f32], b: &[f32], n: usize, k: usize, m: usize, out: &mut [f32]) {
    naive::matmul(a, b, n, k, m, out)
}

/// Test oracles: the textbook triple loops, accumulating in f64 to be an independent reference.
pub mod naive {
    use super::Activation;

    pub fn linear(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        act: Activation,
        n: usize,
        k: usize,
        m: usize,
        out: &mut [f32],
    ) {
        assert!(x.len() == n * k && w.len() == m * k && out.len() == n * m);
        for i in 0..n {
            for j in 0..m {
                let mut acc = bias.map_or(0.0, |b| b[j] as f64);
                for p in 0..k {
                    acc += x[i * k + p] as f64 * w[j * k + p] as f64;
                }
                out[i * m + j] = act.apply(acc as f32);
            }
        }
    }

    pub fn matmul(a: &[f32], b: &[f32], n: usize, k: usize, m: usize, out: &mut [f32]) {
        assert!(a.len() == n * k && b.len() == k * m && out.len() == n * m);
        for i in 0..n {
            for j in 0..m {
                let mut acc = 0.0f64;
                for p in 0..k {
                    acc += a[i * k + p] as f64 * b[p * m + j] as f64;
                }
                out[i * m + j] = acc as f32;
            }
        }
    }
}
