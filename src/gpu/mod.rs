//! The GPU engine: the `Backend` ops as WGSL compute shaders through wgpu (Vulkan natively,
//! WebGPU in the browser).
//!
//! - `context.rs`: instance, adapter, device, limits, device-lost and validation errors;
//! - `pipelines.rs`: the typed kernel enum and the pipeline cache (each kernel compiled once);
//! - `buffers.rs`: the buffer pool (tensors return their buffers on drop);
//! - `recorder.rs`: the pending encoder, the uniform arena, submission, profiler and counters;
//! - `kernels.rs`: one function per kernel: its typed uniform, bindings and dispatch;
//! - `tuning.rs`: kernel variants chosen per adapter and shape class by timing them;
//! - `tuning_cache.rs`: those choices on disk, per adapter (native);
//! - `backend.rs`: `GpuBackend`, the ops (shapes from `crate::shapes`), readbacks.
//!
//! Shaders live in `shaders/*.wgsl`, one file per kernel family.

mod backend;
mod buffers;
mod context;
mod kernels;
mod pipelines;
mod recorder;
pub mod tuning;
#[cfg(not(target_arch = "wasm32"))]
pub mod tuning_cache;

pub use backend::{GpuBackend, GpuTensor};
pub use buffers::PoolStats;
pub use context::{GpuContext, GpuOptions, PlanLimits};
pub(crate) use pipelines::wgsl;
pub use pipelines::{Family, Kernel};
pub use recorder::{GpuStats, Profile};
