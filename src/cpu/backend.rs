//! `Backend` over host memory with the Rust kernels. Shapes are checked by `crate::shapes`, as
//! on the GPU.

use super::conv2d;
use super::{Activation, elementwise, embed, matmul, norm};
use crate::backend::Backend;
use crate::error::Result;
use crate::profile;
use crate::rng;
use crate::shapes;
use crate::tensor::Tensor;

#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    type Tensor = Tensor;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn upload(&self, host: &Tensor) -> Result<Tensor> {
        Ok(host.clone())
    }

    async fn download(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }

    fn shape<'a>(&self, t: &'a Tensor) -> &'a [usize] {
        t.shape()
    }

    fn linear(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Activation) -> Result<Tensor> {
        let _span = profile::Span::new("linear");
        let s = shapes::linear(x.shape(), w.shape(), b.map(Tensor::shape))?;
        let (n, k, m) = (s.n, s.k, s.m);
        // Every output is written (`linear` overwrites C, bias or not, at any depth).
        let mut out = Tensor::for_overwrite(s.out())?;
        matmul::linear(x.data(), w.data(), b.map(|b| b.data()), act, n, k, m, out.data_mut());
        Ok(out)
    }

    fn conv2d(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, pad: usize) -> Result<Tensor> {
        let _span = profile::Span::new("conv2d");
        let s = shapes::conv2d(x.shape(), w.shape(), b.map(Tensor::shape), stride, pad)?;
        let mut out = Tensor::zeros(s.out())?;
        conv2d::conv2d(x.data(), w.data(), b.map(|b| b.data()), &s, out.data_mut());
        Ok(out)
    }

    fn group_norm(
        &self,
        x: &Tensor,
        groups: usize,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
        act: Activation,
    ) -> Result<Tensor> {
        let _span = profile::Span::new("group_norm");
        let d = shapes::group_norm(x.shape(), groups, gamma.shape(), beta.shape())?;
        let mut out = Tensor::zeros(d.shape())?;
        norm::group_norm(x.data(), d.n, d.c, d.hw(), groups, gamma.data(), beta.data(), eps, act, out.data_mut());
        Ok(out)
    }

    fn silu(&self, x: &Tensor) -> Result<Tensor> {
        let _span = profile::Span::new("silu");
        let mut out = x.clone();
        elementwise::silu_in_place(out.data_mut());
        Ok(out)
    }

    fn silu_tangent(&self, z: &Tensor, dz: &Tensor) -> Result<Tensor> {
        let _span = profile::Span::new("silu_tangent");
        let mut out = Tensor::zeros(shapes::silu_tangent(z.shape(), dz.shape())?)?;
        elementwise::silu_tangent(z.data(), dz.data(), out.data_mut());
        Ok(out)
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let _span = profile::Span::new("add");
        let mut out = Tensor::zeros(shapes::add(a.shape(), b.shape())?)?;
        elementwise::add(a.data(), b.data(), out.data_mut());
        Ok(out)
    }

    fn add_channel_bias(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let _span = profile::Span::new("add_channel_bias");
        let d = shapes::add_channel_bias(x.shape(), bias.shape())?;
        let mut out = x.clone();
        elementwise::add_channel_bias_in_place(out.data_mut(), bias.data(), d.n, d.c, d.hw());
        Ok(out)
    }

    fn upsample_nearest2x(&self, x: &Tensor) -> Result<Tensor> {
        let _span = profile::Span::new("upsample_nearest2x");
        let d = shapes::upsample_nearest2x(x.shape())?;
        let mut out = Tensor::zeros(d.upsampled())?;
        elementwise::upsample_nearest2x(x.data(), d.n * d.c, d.h, d.w, out.data_mut());
        Ok(out)
    }

    fn concat_axis1(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let _span = profile::Span::new("concat_axis1");
        let s = shapes::concat_axis1(a.shape(), b.shape())?;
        let mut out = Tensor::zeros(s.out)?;
        elementwise::concat_axis1(a.data(), b.data(), s.n, s.ca, s.cb, s.inner, out.data_mut());
        Ok(out)
    }

    fn time_embedding(&self, t: f32, n: usize, dim: usize, time_scale: f32) -> Result<Tensor> {
        let _span = profile::Span::new("time_embedding");
        // Outputs come from `Tensor::zeros` (recycled buffers), never a fresh Vec.
        let mut out = Tensor::zeros(shapes::time_embedding(n, dim)?)?;
        if n > 0 && dim > 0 {
            let (first, rest) = out.data_mut().split_at_mut(dim);
            embed::sinusoidal(t, time_scale, first);
            for row in rest.chunks_exact_mut(dim) {
                row.copy_from_slice(first);
            }
        }
        Ok(out)
    }

    fn embedding(&self, table: &Tensor, ids: &[u32]) -> Result<Tensor> {
        let _span = profile::Span::new("embedding");
        let shape = shapes::embedding(table.shape(), ids)?;
        let d = shape[1];
        let mut out = Tensor::zeros(shape)?;
        for (row, &id) in out.data_mut().chunks_exact_mut(d.max(1)).zip(ids) {
            let id = id as usize;
            row.copy_from_slice(&table.data()[id * d..(id + 1) * d]);
        }
        Ok(out)
    }

    fn lincomb(&self, x: &Tensor, terms: &[(f32, &Tensor)]) -> Result<Tensor> {
        let _span = profile::Span::new("lincomb");
        let shape = shapes::lincomb(x.shape(), terms.iter().map(|(_, k)| k.shape()))?;
        let slices: Vec<(f32, &[f32])> = terms.iter().map(|&(c, k)| (c, k.data())).collect();
        let mut out = Tensor::zeros(shape)?;
        elementwise::lincomb(x.data(), &slices, out.data_mut());
        Ok(out)
    }

    fn unary(&self, x: &Tensor, op: crate::pointwise::UnaryOp) -> Result<Tensor> {
        let _span = profile::Span::new("unary");
        let mut out = Tensor::zeros(shapes::unary(x.shape())?)?;
        crate::pointwise::unary(op, x.data(), out.data_mut());
        Ok(out)
    }

    fn binary(&self, a: &Tensor, b: &Tensor, op: crate::pointwise::BinaryOp) -> Result<Tensor> {
        let _span = profile::Span::new("binary");
        let shape = shapes::binary(a.shape(), b.shape())?;
        let mut out = Tensor::zeros(shape.clone())?;
        crate::pointwise::binary(op, a.data(), a.shape(), b.data(), b.shape(), &shape, out.data_mut());
        Ok(out)
    }

    fn reshape(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        let mut out = Tensor::zeros(shapes::reshape(x.shape(), shape)?)?;
        out.data_mut().copy_from_slice(x.data());
        Ok(out)
    }

    fn reshape_owned(&self, x: Tensor, shape: &[usize]) -> Result<Tensor> {
        let shape = shapes::reshape(x.shape(), shape)?;
        x.reshape(shape)
    }

    fn strided_copy(&self, x: &Tensor, shape: &[usize], offset: usize, strides: &[usize]) -> Result<Tensor> {
        let _span = profile::Span::new("strided_copy");
        let mut out = Tensor::zeros(shapes::strided_copy(x.shape(), shape, offset, strides)?)?;
        if out.numel() > 0 {
            super::graph::strided_copy(x.data(), shape, offset, strides, out.data_mut());
        }
        Ok(out)
    }

    fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let _span = profile::Span::new("matmul");
        let s = shapes::matmul(a.shape(), b.shape())?;
        let mut out = Tensor::zeros(s.out.clone())?;
        super::graph::batched_matmul(
            a.data(),
            b.data(),
            &s.batch,
            &s.a_strides,
            &s.b_strides,
            (s.m, s.k, s.n),
            out.data_mut(),
        );
        Ok(out)
    }

    fn softmax(&self, x: &Tensor) -> Result<Tensor> {
        let _span = profile::Span::new("softmax");
        let (_, inner) = shapes::softmax(x.shape())?;
        let mut out = Tensor::zeros(x.shape().to_vec())?;
        super::graph::softmax_rows(x.data(), inner, out.data_mut());
        Ok(out)
    }

    fn layer_norm(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<Tensor> {
        let _span = profile::Span::new("layer_norm");
        shapes::layer_norm(x.shape(), gamma.shape(), beta.shape())?;
        let mut out = Tensor::zeros(x.shape().to_vec())?;
        super::graph::layer_norm_rows(x.data(), gamma.data(), beta.data(), eps, out.data_mut());
        Ok(out)
    }

    fn slice_rows(&self, x: &Tensor, rows: std::ops::Range<usize>) -> Result<Tensor> {
        let _span = profile::Span::new("slice_rows");
        let (shape, span) = shapes::slice_rows(x.shape(), &rows)?;
        let mut out = Tensor::zeros(shape)?;
        out.data_mut().copy_from_slice(&x.data()[span]);
        Ok(out)
    }

    fn repeat2(&self, x: &Tensor) -> Result<Tensor> {
        let _span = profile::Span::new("repeat2");
        let mut out = Tensor::zeros(shapes::repeat2(x.shape())?)?;
        let (a, b) = out.data_mut().split_at_mut(x.numel());
        a.copy_from_slice(x.data());
        b.copy_from_slice(x.data());
        Ok(out)
    }

    fn guidance_mix(&self, v: &Tensor, w: f32) -> Result<Tensor> {
        let _span = profile::Span::new("guidance_mix");
        let mut out = Tensor::zeros(shapes::guidance_mix(v.shape())?)?;
        elementwise::guidance_mix(v.data(), w, out.data_mut());
        Ok(out)
    }

    async fn scaled_rms_error(
        &self,
        err: &Tensor,
        x_old: &Tensor,
        x_new: &Tensor,
        rtol: f32,
        atol: f32,
    ) -> Result<f32> {
        shapes::scaled_rms_error(err.shape(), x_old.shape(), x_new.shape())?;
        Ok(elementwise::scaled_rms_error(err.data(), x_old.data(), x_new.data(), rtol, atol))
    }

    async fn all_finite(&self, x: &Tensor) -> Result<bool> {
        Ok(elementwise::all_finite(x.data()))
    }

    fn normal_noise(&self, seed: u64, stream: u32, start_index: u64, shape: &[usize]) -> Result<Tensor> {
        let _span = profile::Span::new("normal_noise");
        let mut t = Tensor::zeros(shape.to_vec())?;
        rng::fill_normal(seed, stream, start_index, t.data_mut());
        Ok(t)
    }

    /// Host memory is not split into bindings: any batch the sampler accepts fits.
    fn memory_limits(&self) -> crate::memory::MemoryLimits {
        crate::memory::MemoryLimits::cpu()
    }

    /// Blocks of rows whose widest activation is `ROW_BLOCK_BYTES`: layer by layer over a whole
    /// batch, every activation goes out to memory and back (65,536 points × 128 floats is
    /// 32 MiB a layer). Natively and in wasm alike (the browser's one worker solved 65,536 moons
    /// points 10% faster once its kernel outran the memory).
    fn map_row_blocks(
        &self,
        x: &Tensor,
        labels: Option<&[u32]>,
        row_values: usize,
        f: &crate::backend::RowsForward<Tensor>,
    ) -> Result<Tensor> {
        row_blocks_on_host(self, x, labels, row_values, f, |t| Ok(t))
    }
}

/// [`Backend::map_row_blocks`] on `b`, whose tensors are host tensors (`host` borrows one's):
/// this backend's, and `Dual`'s on the CPU. One copy of the code for both (the browser's bundle
/// holds only `Dual`'s).
pub(crate) fn row_blocks_on_host<B: Backend>(
    b: &B,
    x: &B::Tensor,
    labels: Option<&[u32]>,
    row_values: usize,
    f: &crate::backend::RowsForward<B::Tensor>,
    host: fn(&B::Tensor) -> Result<&Tensor>,
) -> Result<Tensor> {
    let n = b.shape(x).first().copied().unwrap_or(0);
    let rows = (ROW_BLOCK_BYTES / (4 * row_values.max(1))).max(1);
    // The blocks' velocities, row after row: as a whole, x's shape (`Tensor::new` refuses a
    // block that lost rows). Natively the buffer is taken whole from the tensor recycler (a
    // fresh large allocation is a fresh mmap whose pages fault in on every call, which a warm
    // solve must not pay: tests/cpu_allocations.rs). In wasm it grows as blocks come: freed
    // memory there is reused without faults, and the recycled form costs the bundle 0.1 KB gzip
    // it has not got. Labels are one per row, checked by the caller: a block without its own is
    // refused by the network. A batch of one block is copied in and out too: n·d floats beside
    // a network's n·d·width·depth multiply-adds, and one code path less in the bundle.
    let mut data =
        if cfg!(target_arch = "wasm32") { Vec::new() } else { Tensor::zeros(b.shape(x).to_vec())?.into_data() };
    data.clear();
    let mut start = 0;
    while start < n {
        let end = (start + rows).min(n);
        let y = f(&b.slice_rows(x, start..end)?, labels.and_then(|l| l.get(start..end)))?;
        data.extend_from_slice(host(&y)?.data());
        start = end;
    }
    Tensor::new(b.shape(x).to_vec(), data)
}

/// The CPU backend's row blocks (`map_row_blocks`): half the 1 MiB L2 of the cores this was
/// measured on (in wasm, 256 KiB and 1 MiB measured the same as 512).
const ROW_BLOCK_BYTES: usize = 512 << 10;
