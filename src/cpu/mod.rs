//! Rust CPU kernels: the reference every GPU kernel is tested against, and the fallback
//! backend where WebGPU is missing (compiled to wasm32 with simd128).
//!
//! Each kernel family keeps a plain `naive` version beside the fast one; the naive one is the
//! test oracle and is never used on a hot path.

mod blocked;
pub mod conv2d;
pub mod elementwise;
pub mod embed;
pub mod graph;
pub mod matmul;
pub mod norm;

/// Activation fused into the end of a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    Silu,
}

impl Activation {
    #[inline(always)]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::None => v,
            Activation::Silu => silu(v),
        }
    }
}

/// SiLU (swish): x · sigmoid(x), written as x / (1 + e^-x) as PyTorch's `F.silu`, with the
/// polynomial exp (≈ 2 ulp): std's `exp` is a scalar libm call, and on wasm it was 20% of the
/// U-Net's time (GroupNorm + SiLU); the polynomial vectorises with the loop around it.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + blocked::exp_approx(-x))
}

mod backend;
pub use backend::CpuBackend;
