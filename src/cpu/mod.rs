//! The CPU backend: [`CpuBackend`] implements [`crate::Backend`] over host memory with the
//! kernels of the `pushforward-kernels` crate (`kernels/`), re-exported here under their
//! historical paths (`cpu::matmul`, `cpu::conv2d`, …).

pub use pushforward_kernels::{Activation, conv2d, elementwise, embed, graph, matmul, norm, silu};

mod backend;
pub use backend::CpuBackend;
pub(crate) use backend::row_blocks_on_host;
