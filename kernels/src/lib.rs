//! Rust CPU kernels: the reference every GPU kernel is tested against, and the fallback
//! backend's hot loops where WebGPU is missing (compiled to wasm32 with simd128).
//!
//! They live in a crate of their own so that the browser build can optimise the rest of the
//! crate for size and these for speed (opt-level is per crate; the root `Cargo.toml`'s `web`
//! profile). Everything here is therefore compiled *here*: the entry points are plain
//! (non-generic, non-`#[inline]`) functions, since a generic or `#[inline]` function would be
//! compiled in the caller's crate, at its opt-level.
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
pub mod pointwise;
pub mod rng;
pub mod trig;

pub use blocked::{Isa, Workspace};

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
/// polynomial exp (≤ 1 ulp; SiLU ≤ 3 ulp): std's `exp` is a scalar libm call, and on wasm it was 20% of the
/// U-Net's time (GroupNorm + SiLU); the polynomial vectorises with the loop around it.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + blocked::exp_neg(x))
}
