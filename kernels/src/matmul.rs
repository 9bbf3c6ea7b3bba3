//! Dense matrix products.
//!
//! `linear`: out[n,m] = act(x[n,k] · w[m,k]ᵀ + bias[m]) — PyTorch's `nn.Linear` layout, so
//! weights are used as stored.
//! `matmul`: out[n,m] = a[n,k] · b[k,m] (used by the convolution's implicit GEMM).

use super::Activation;
use super::blocked::{BLayout, Bias, Gemm, with_workspace};
pub use super::blocked::{Isa, Workspace};

/// Fused linear layer. `out` must hold n·m values.
#[allow(clippy::too_many_arguments)]
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
    with_workspace(|ws| linear_with(Isa::detect(), ws, x, w, bias, act, n, k, m, out))
}

/// Plain product a·b. `out` must hold n·m values.
pub fn matmul(a: &[f32], b: &[f32], n: usize, k: usize, m: usize, out: &mut [f32]) {
    with_workspace(|ws| matmul_with(Isa::detect(), ws, a, b, n, k, m, out))
}

/// `linear` with an explicit kernel variant and caller-held scratch (no allocation once `ws`
/// has grown to the largest layer).
#[allow(clippy::too_many_arguments)]
pub fn linear_with(
    isa: Isa,
    ws: &mut Workspace,
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
    assert!(bias.is_none_or(|b| b.len() == m));
    let g = Gemm {
        rows: n,
        cols: m,
        depth: k,
        a: x,
        lda: k,
        b: w,
        ldb: k,
        b_layout: BLayout::Transposed,
        bias: bias.map_or(Bias::None, Bias::PerCol),
        act,
    };
    g.run(isa, out, m, ws);
}

/// `matmul` with an explicit kernel variant and caller-held scratch.
#[allow(clippy::too_many_arguments)]
pub fn matmul_with(isa: Isa, ws: &mut Workspace, a: &[f32], b: &[f32], n: usize, k: usize, m: usize, out: &mut [f32]) {
    assert!(a.len() == n * k && b.len() == k * m && out.len() == n * m);
    let g = Gemm {
        rows: n,
        cols: m,
        depth: k,
        a,
        lda: k,
        b,
        ldb: m,
        b_layout: BLayout::RowMajor,
        bias: Bias::None,
        act: Activation::None,
    };
    g.run(isa, out, m, ws);
}

/// Test oracles: the textbook triple loops, accumulating in f64 to be an independent reference.
pub mod naive {
    use super::Activation;

    #[allow(clippy::too_many_arguments)]
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
