//! Memory budgets: what one solve may hold on each backend, and so how many batch rows fit.
//!
//! Config bounds are per field; their product is what allocates. A model's [`Footprint`] counts
//! what a forward pass holds — every live activation of one sample, the largest single tensor
//! (a GPU storage binding must hold it), and what a backend needs whatever the batch size (the
//! CPU's im2col columns) — and the sampler adds the solver's states, guidance's doubled batch
//! and kept trajectory frames. A backend states its [`MemoryLimits`]; the sampler splits a
//! batch into row chunks that fit, and a model whose single sample cannot fit is refused when
//! the sampler is made, before anything large is allocated.

use crate::error::{Error, Result};
use crate::model::{ArchConfig, DataConfig, ModelConfig, UnetConfig};

/// A byte count for messages: "512 B", "3.2 MiB", "13.5 GiB".
fn bytes(b: u64) -> String {
    // One decimal, rounded half up, in integers (no float formatting in the browser build;
    // u64 only: a u128 division is another ~1 KB of wasm).
    let one_decimal = |unit: u64, name: &str| {
        let tenths = b / unit * 10 + ((b % unit) * 10 + unit / 2) / unit;
        format!("{}.{} {name}", tenths / 10, tenths % 10)
    };
    match b {
        0..1024 => format!("{b} B"),
        1024..0x10_0000 => one_decimal(1 << 10, "KiB"),
        0x10_0000..0x4000_0000 => one_decimal(1 << 20, "MiB"),
        _ => one_decimal(1 << 30, "GiB"),
    }
}

/// The working-set budget of the CPU backend natively.
pub const CPU_NATIVE_BUDGET_BYTES: u64 = 4 << 30;
/// The working-set budget of the CPU backend in wasm32: the whole address space is 4 GiB, and
/// the samples, the kept frames and the weights live beside the working set.
pub const CPU_WASM_BUDGET_BYTES: u64 = 1 << 30;
/// The working-set budget of a GPU backend (WebGPU does not say how much memory the device has;
/// 1 GiB is safe on every discrete and integrated GPU of the last decade).
pub const GPU_BUDGET_BYTES: u64 = 1 << 30;

/// Trajectory frames kept by one solve, in values (all chunks together): beyond it the kept
/// steps are thinned (every other one dropped, spanning the same times), never allocated.
pub const MAX_KEPT_FRAME_VALUES: usize = if cfg!(target_arch = "wasm32") { 1 << 24 } else { 1 << 26 };

/// What a backend may hold for one solve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Bytes of working set (activations, solver states, kept frames, scratch).
    pub budget_bytes: u64,
    /// The largest single tensor, in bytes (a GPU storage binding; the budget on the CPU).
    pub max_tensor_bytes: u64,
    /// Whether 3×3 convolutions need an im2col buffer (the CPU kernels) or not (the GPU's
    /// direct convolution).
    pub im2col: bool,
    /// Values of trajectory frames one solve may keep (all chunks together).
    pub max_kept_values: usize,
}

impl MemoryLimits {
    /// The CPU backend's limits on this target.
    pub const fn cpu() -> Self {
        let budget = if cfg!(target_arch = "wasm32") { CPU_WASM_BUDGET_BYTES } else { CPU_NATIVE_BUDGET_BYTES };
        Self { budget_bytes: budget, max_tensor_bytes: budget, im2col: true, max_kept_values: MAX_KEPT_FRAME_VALUES }
    }
}

/// A forward pass's memory, in f32 values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Held whatever the batch size: the im2col columns of the largest 3×3 convolution (one
    /// image at a time), counted only where the backend uses im2col.
    pub im2col_values: usize,
    /// Held per sample at the peak of a forward: the U-Net's skip connections plus the few
    /// tensors a block has alive at once.
    pub forward_values: usize,
    /// The largest single tensor per sample.
    pub largest_tensor: usize,
}

/// The memory a forward pass of `config` needs.
pub fn footprint(config: &ModelConfig) -> Footprint {
    let sample = config.sample_len();
    match (&config.arch, &config.data) {
        (ArchConfig::Mlp(c), _) => {
            let widest = sample.max(crate::model::mlp::input_width(c)).max(c.width);
            // Input, hidden in and out, the time embedding: four rows of the widest layer.
            Footprint { im2col_values: 0, forward_values: 4 * widest, largest_tensor: widest }
        }
        (ArchConfig::Unet(c), DataConfig::Image { height, width, .. }) => unet_footprint(c, *height, *width, sample),
        // Measured on the graph's plan for one sample: its peak of live values and its largest.
        (ArchConfig::Onnx(g), _) => {
            let (live, largest) = g.per_sample_values();
            Footprint { im2col_values: 0, forward_values: live.max(sample), largest_tensor: largest.max(sample) }
        }
        // A U-Net on non-image data is rejected by config validation; stay conservative anyway.
        (ArchConfig::Unet(c), _) => {
            let widest = sample.saturating_mul(4 * c.base_channels * c.channel_mult.iter().max().copied().unwrap_or(1));
            Footprint {
                im2col_values: widest.saturating_mul(9),
                forward_values: widest.saturating_mul(8),
                largest_tensor: widest,
            }
        }
    }
}

fn unet_footprint(c: &UnetConfig, h: usize, w: usize, sample: usize) -> Footprint {
    let ch: Vec<usize> = c.channel_mult.iter().map(|m| c.base_channels.saturating_mul(*m)).collect();
    let last = ch.len() - 1;
    let side = |i: usize| (h >> i).saturating_mul(w >> i);
    let largest = sample.max(crate::model::unet::peak_values_per_sample(c, h, w));
    // 3×3 convolutions: im2col holds c_in·9 rows of the output plane, for one image.
    let mut cols = c.in_channels.saturating_mul(9).saturating_mul(side(0));
    let mut skips = 0usize;
    for (i, &ci) in ch.iter().enumerate() {
        let up_in = if i == last { ch[last] } else { ch[i + 1] } + ci;
        let down_in = if i == 0 { c.base_channels } else { ch[i - 1] };
        cols = cols.max(up_in.max(down_in).saturating_mul(9).saturating_mul(side(i)));
        if i > 0 {
            // up.{i}.upsample runs at the finer level's size.
            cols = cols.max(ci.saturating_mul(9).saturating_mul(side(i - 1)));
        }
        skips = skips.saturating_add(ci.saturating_mul(side(i)));
    }
    // Besides the skips: the block input, its norm output, the conv output, the concatenation.
    Footprint {
        im2col_values: cols,
        forward_values: skips.saturating_add(largest.saturating_mul(4)),
        largest_tensor: largest,
    }
}

/// One solve's memory per batch row and in total, for a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SolvePlan {
    /// Bytes held whatever the batch size.
    pub fixed_bytes: u64,
    /// Bytes per batch row.
    pub row_bytes: u64,
    /// Bytes of the largest single tensor per row.
    pub largest_tensor_row_bytes: u64,
}

impl SolvePlan {
    /// `footprint` of a network run `batch_factor` times per row (2 with guidance: cond and
    /// uncond in one batch), by a solver keeping `states` states of `sample_len` values per row,
    /// plus `kept_values_per_row` of trajectory frames.
    pub fn new(
        footprint: &Footprint,
        limits: &MemoryLimits,
        sample_len: usize,
        batch_factor: usize,
        states: usize,
        kept_values_per_row: usize,
    ) -> Self {
        let values = footprint
            .forward_values
            .saturating_mul(batch_factor)
            .saturating_add(states.saturating_mul(sample_len))
            .saturating_add(kept_values_per_row);
        let fixed = if limits.im2col { footprint.im2col_values } else { 0 };
        Self {
            fixed_bytes: (fixed as u64).saturating_mul(4),
            row_bytes: (values as u64).saturating_mul(4),
            largest_tensor_row_bytes: (footprint.largest_tensor.saturating_mul(batch_factor) as u64).saturating_mul(4),
        }
    }

    /// How many rows fit `limits`, or an error saying what one row needs.
    pub fn max_rows(&self, limits: &MemoryLimits) -> Result<usize> {
        let one = self.fixed_bytes.saturating_add(self.row_bytes);
        if one > limits.budget_bytes || self.largest_tensor_row_bytes > limits.max_tensor_bytes {
            return Err(Error::OutOfMemory(format!(
                "one sample needs {} ({} in its largest tensor) but this backend's budget is {} ({} per tensor): \
                 the model is too large for this backend",
                bytes(one),
                bytes(self.largest_tensor_row_bytes),
                bytes(limits.budget_bytes),
                bytes(limits.max_tensor_bytes),
            )));
        }
        let by_budget = (limits.budget_bytes - self.fixed_bytes) / self.row_bytes.max(1);
        let by_tensor = limits.max_tensor_bytes / self.largest_tensor_row_bytes.max(1);
        Ok(usize::try_from(by_budget.min(by_tensor)).unwrap_or(usize::MAX).max(1))
    }
}

/// Refuses a model whose single sample cannot fit `limits` (the CPU's im2col of a 1024² U-Net
/// level, say): checked when a sampler is made, before any activation is allocated.
pub fn check_model_fits(config: &ModelConfig, limits: &MemoryLimits) -> Result<()> {
    let fp = footprint(config);
    // The cheapest solve there is: Euler, unguided, no frames.
    SolvePlan::new(&fp, limits, config.sample_len(), 1, 3, 0).max_rows(limits).map(|_| ())
}
