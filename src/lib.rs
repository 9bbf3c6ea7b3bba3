//! pushforward: sample pretrained flow-matching models (`dx/dt = v(x, t)`, noise at t=0, data at
//! t=1) with Rust CPU kernels or WGSL compute shaders, natively or in the browser.
//!
//! See `ARCHITECTURE.md` for the map of concerns to files.

pub mod backend;
#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod cpu;
pub mod density;
pub mod dual;
pub mod error;
pub mod gpu;
pub mod host;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod ode;
pub mod onnx;
pub mod options;
pub mod pointwise;
pub mod profile;
pub mod render;
/// Seeded Gaussian noise (Philox4x32-10 + Box–Muller), from the kernels crate.
pub use pushforward_kernels::rng;
pub mod sampler;
pub mod shapes;
pub mod sorted_map;
pub mod tensor;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use backend::Backend;
pub use error::{Error, Result};
pub use tensor::Tensor;
