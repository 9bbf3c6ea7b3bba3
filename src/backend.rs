//! The small set of operations that the model forwards and the ODE solvers are written against.
//! `cpu::CpuBackend` implements it with the Rust kernels; the GPU backend implements it with WGSL
//! dispatches, so architectures and solvers exist once.
//!
//! Layout conventions: matrices are row-major [rows, cols]; images are NCHW; `linear` weights
//! are [out, in] as PyTorch stores them; conv weights are [c_out, c_in, kh, kw].

use crate::cpu::Activation;
use crate::error::Result;
use crate::memory::MemoryLimits;
use crate::pointwise::{BinaryOp, UnaryOp};
use crate::tensor::Tensor;

/// A network's velocity over a block of rows (with their labels), of the block's shape: what
/// `map_row_blocks` maps.
pub type RowsForward<'a, T> = dyn Fn(&T, Option<&[u32]>) -> Result<T> + 'a;

// Readbacks are `async`: in the browser a GPU buffer can only be mapped by awaiting the event
// loop. Natively (and on the CPU) the futures are ready at once. The futures need not be `Send`
// (wasm is single-threaded), hence the allow.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// A tensor living on this backend (host memory for the CPU, a buffer for the GPU).
    type Tensor;

    /// Short human-readable name, e.g. "cpu" or "webgpu (SwiftShader)".
    fn name(&self) -> String;

    fn upload(&self, host: &Tensor) -> Result<Self::Tensor>;
    async fn download(&self, t: &Self::Tensor) -> Result<Tensor>;
    fn shape<'a>(&self, t: &'a Self::Tensor) -> &'a [usize];

    /// act(x[n,k] · w[m,k]ᵀ + b[m]) → [n,m].
    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
        act: Activation,
    ) -> Result<Self::Tensor>;

    /// NCHW convolution with square stride and zero padding.
    fn conv2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
        stride: usize,
        pad: usize,
    ) -> Result<Self::Tensor>;

    /// `conv2d`, then + `channel_add`[n, c] over each image's channel (the U-Net's time
    /// embedding), then `residual` + that (a tensor of the output's shape): a residual block's
    /// epilogues, which the GPU fuses into the convolution's store (a dispatch and a pass over
    /// the activation each). The same sums in the same order as the three ops.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_add(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
        stride: usize,
        pad: usize,
        channel_add: Option<&Self::Tensor>,
        residual: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor> {
        let y = self.conv2d(x, w, b, stride, pad)?;
        adds_after_conv2d(self, y, channel_add, residual)
    }

    /// GroupNorm over NCHW followed by an optional fused activation.
    fn group_norm(
        &self,
        x: &Self::Tensor,
        groups: usize,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        eps: f32,
        act: Activation,
    ) -> Result<Self::Tensor>;

    fn silu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// silu′(z) ⊙ dz: a tangent pushed through SiLU (forward-mode derivatives, for the exact
    /// divergence of the velocity). Same shapes.
    fn silu_tangent(&self, z: &Self::Tensor, dz: &Self::Tensor) -> Result<Self::Tensor>;
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// x[n,c,h,w] + bias[n,c] broadcast over the pixels.
    fn add_channel_bias(&self, x: &Self::Tensor, bias: &Self::Tensor) -> Result<Self::Tensor>;
    fn upsample_nearest2x(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Concatenate along axis 1 (channels of NCHW, columns of a matrix).
    fn concat_axis1(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;

    /// Sinusoidal embedding of one time `t` repeated for `n` rows → [n, dim].
    fn time_embedding(&self, t: f32, n: usize, dim: usize, time_scale: f32) -> Result<Self::Tensor>;
    /// Rows of `table` [vocab, d] picked by `ids` → [ids.len(), d]. Ids are checked by the caller.
    fn embedding(&self, table: &Self::Tensor, ids: &[u32]) -> Result<Self::Tensor>;

    /// x + Σ cᵢ·kᵢ, the Runge–Kutta stage/update.
    fn lincomb(&self, x: &Self::Tensor, terms: &[(f32, &Self::Tensor)]) -> Result<Self::Tensor>;
    /// op(x) elementwise (graph networks' activations and math: `pointwise::UnaryOp`).
    fn unary(&self, x: &Self::Tensor, op: UnaryOp) -> Result<Self::Tensor>;
    /// a ∘ b with NumPy broadcasting (`pointwise::BinaryOp`).
    fn binary(&self, a: &Self::Tensor, b: &Self::Tensor, op: BinaryOp) -> Result<Self::Tensor>;
    /// The same values with another shape of the same size (a copy).
    fn reshape(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;
    /// [`Backend::reshape`] of a tensor the caller gives up: the same storage, relabelled (no
    /// copy).
    fn reshape_owned(&self, x: Self::Tensor, shape: &[usize]) -> Result<Self::Tensor> {
        self.reshape(&x, shape)
    }
    /// out[i] = x[offset + Σ_d k_d·strides[d]] over the output `shape` (transposes, slices and
    /// picks of graph networks; ≤ 8 dimensions).
    fn strided_copy(&self, x: &Self::Tensor, shape: &[usize], offset: usize, strides: &[usize])
    -> Result<Self::Tensor>;
    /// [..., m, k] × [..., k, n] → [..., m, n], batch dimensions broadcast.
    fn matmul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// Softmax over the last axis.
    fn softmax(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Layer norm over the trailing values `gamma` covers: (x − mean)/√(var + eps)·γ + β.
    fn layer_norm(&self, x: &Self::Tensor, gamma: &Self::Tensor, beta: &Self::Tensor, eps: f32)
    -> Result<Self::Tensor>;
    /// Rows `rows` of `x` along axis 0 (a copy): the kept rows of a trajectory frame.
    fn slice_rows(&self, x: &Self::Tensor, rows: std::ops::Range<usize>) -> Result<Self::Tensor>;
    /// Stack `x` on itself along axis 0 ([n,…] → [2n,…]) to run cond and uncond in one batch.
    fn repeat2(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// v[2n,…] = [cond; uncond] → v_u + w·(v_c − v_u) [n,…].
    fn guidance_mix(&self, v: &Self::Tensor, w: f32) -> Result<Self::Tensor>;
    /// Adaptive step control's error norm (one scalar read back per step on the GPU).
    async fn scaled_rms_error(
        &self,
        err: &Self::Tensor,
        x_old: &Self::Tensor,
        x_new: &Self::Tensor,
        rtol: f32,
        atol: f32,
    ) -> Result<f32>;
    /// True when every value is finite (checked once per solve, at the end, on the GPU).
    async fn all_finite(&self, x: &Self::Tensor) -> Result<bool>;

    /// Standard normals `rng::normal(seed, stream, start_index + i)` for i in 0..numel(shape),
    /// generated where the tensor lives (the GPU runs rng.wgsl instead of uploading noise).
    /// Indexing by the flat element index means a batch split into row chunks draws exactly the
    /// numbers of the whole batch.
    fn normal_noise(&self, seed: u64, stream: u32, start_index: u64, shape: &[usize]) -> Result<Self::Tensor>;

    /// What one solve may hold on this backend (working-set budget, largest tensor, whether
    /// convolutions need im2col): the sampler splits batches into row chunks that fit
    /// (`crate::memory`).
    fn memory_limits(&self) -> MemoryLimits;

    /// A point between solver steps where a single-threaded host may run other work: in the
    /// browser's page thread the CPU backend yields to the event loop here, so an abort signal
    /// is seen within one step and the page keeps drawing. Nothing to do elsewhere.
    async fn yield_now(&self) {}

    /// `f(x, labels)` (of x's shape) for a network whose rows are independent, `row_values`
    /// values wide at its widest layer. A backend may run it block by block of rows and stack
    /// the results (the same values, row for row): the CPU backend does, natively and in wasm,
    /// so that a block's activations stay in the core's cache between layers. On the GPU it is
    /// one call.
    fn map_row_blocks(
        &self,
        x: &Self::Tensor,
        labels: Option<&[u32]>,
        row_values: usize,
        f: &RowsForward<Self::Tensor>,
    ) -> Result<Self::Tensor> {
        let _ = row_values;
        f(x, labels)
    }
}

/// `conv2d_add`'s adds as separate ops on the convolution's output `y`: the trait's default,
/// and the GPU's where its convolution kernel has no such epilogue.
pub(crate) fn adds_after_conv2d<B: Backend + ?Sized>(
    b: &B,
    y: B::Tensor,
    channel_add: Option<&B::Tensor>,
    residual: Option<&B::Tensor>,
) -> Result<B::Tensor> {
    let y = match channel_add {
        Some(c) => b.add_channel_bias(&y, c)?,
        None => y,
    };
    match residual {
        Some(r) => b.add(r, &y),
        None => Ok(y),
    }
}

/// A borrowed backend is a backend: several samplers (or tests) can share one device.
impl<B: Backend + ?Sized> Backend for &B {
    type Tensor = B::Tensor;

    fn name(&self) -> String {
        (**self).name()
    }
    fn upload(&self, host: &Tensor) -> Result<Self::Tensor> {
        (**self).upload(host)
    }
    async fn download(&self, t: &Self::Tensor) -> Result<Tensor> {
        (**self).download(t).await
    }
    fn shape<'a>(&self, t: &'a Self::Tensor) -> &'a [usize] {
        (**self).shape(t)
    }
    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
        act: Activation,
    ) -> Result<Self::Tensor> {
        (**self).linear(x, w, b, act)
    }
    fn conv2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
        stride: usize,
        pad: usize,
    ) -> Result<Self::Tensor> {
        (**self).conv2d(x, w, b, stride, pad)
    }
    fn conv2d_add(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
        stride: usize,
        pad: usize,
        channel_add: Option<&Self::Tensor>,
        residual: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor> {
        (**self).conv2d_add(x, w, b, stride, pad, channel_add, residual)
    }
    fn group_norm(
        &self,
        x: &Self::Tensor,
        groups: usize,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        eps: f32,
        act: Activation,
    ) -> Result<Self::Tensor> {
        (**self).group_norm(x, groups, gamma, beta, eps, act)
    }
    fn silu(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        (**self).silu(x)
    }
    fn silu_tangent(&self, z: &Self::Tensor, dz: &Self::Tensor) -> Result<Self::Tensor> {
        (**self).silu_tangent(z, dz)
    }
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        (**self).add(a, b)
    }
    fn add_channel_bias(&self, x: &Self::Tensor, bias: &Self::Tensor) -> Result<Self::Tensor> {
        (**self).add_channel_bias(x, bias)
    }
    fn upsample_nearest2x(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        (**self).upsample_nearest2x(x)
    }
    fn concat_axis1(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        (**self).concat_axis1(a, b)
    }
    fn time_embedding(&self, t: f32, n: usize, dim: usize, time_scale: f32) -> Result<Self::Tensor> {
        (**self).time_embedding(t, n, dim, time_scale)
    }
    fn embedding(&self, table: &Self::Tensor, ids: &[u32]) -> Result<Self::Tensor> {
        (**self).embedding(table, ids)
    }
    fn lincomb(&self, x: &Self::Tensor, terms: &[(f32, &Self::Tensor)]) -> Result<Self::Tensor> {
        (**self).lincomb(x, terms)
    }
    fn slice_rows(&self, x: &Self::Tensor, rows: std::ops::Range<usize>) -> Result<Self::Tensor> {
        (**self).slice_rows(x, rows)
    }
    fn unary(&self, x: &Self::Tensor, op: UnaryOp) -> Result<Self::Tensor> {
        (**self).unary(x, op)
    }
    fn binary(&self, a: &Self::Tensor, b: &Self::Tensor, op: BinaryOp) -> Result<Self::Tensor> {
        (**self).binary(a, b, op)
    }
    fn reshape(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor> {
        (**self).reshape(x, shape)
    }
    fn reshape_owned(&self, x: Self::Tensor, shape: &[usize]) -> Result<Self::Tensor> {
        (**self).reshape_owned(x, shape)
    }
    fn strided_copy(
        &self,
        x: &Self::Tensor,
        shape: &[usize],
        offset: usize,
        strides: &[usize],
    ) -> Result<Self::Tensor> {
        (**self).strided_copy(x, shape, offset, strides)
    }
    fn matmul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        (**self).matmul(a, b)
    }
    fn softmax(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        (**self).softmax(x)
    }
    fn layer_norm(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        eps: f32,
    ) -> Result<Self::Tensor> {
        (**self).layer_norm(x, gamma, beta, eps)
    }
    fn repeat2(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        (**self).repeat2(x)
    }
    fn guidance_mix(&self, v: &Self::Tensor, w: f32) -> Result<Self::Tensor> {
        (**self).guidance_mix(v, w)
    }
    async fn scaled_rms_error(
        &self,
        err: &Self::Tensor,
        x_old: &Self::Tensor,
        x_new: &Self::Tensor,
        rtol: f32,
        atol: f32,
    ) -> Result<f32> {
        (**self).scaled_rms_error(err, x_old, x_new, rtol, atol).await
    }
    async fn all_finite(&self, x: &Self::Tensor) -> Result<bool> {
        (**self).all_finite(x).await
    }
    fn normal_noise(&self, seed: u64, stream: u32, start_index: u64, shape: &[usize]) -> Result<Self::Tensor> {
        (**self).normal_noise(seed, stream, start_index, shape)
    }
    fn memory_limits(&self) -> MemoryLimits {
        (**self).memory_limits()
    }
    fn map_row_blocks(
        &self,
        x: &Self::Tensor,
        labels: Option<&[u32]>,
        row_values: usize,
        f: &RowsForward<Self::Tensor>,
    ) -> Result<Self::Tensor> {
        (**self).map_row_blocks(x, labels, row_values, f)
    }
    async fn yield_now(&self) {
        (**self).yield_now().await
    }
}
