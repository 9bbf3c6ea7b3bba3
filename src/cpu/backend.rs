//! `Backend` over host memory with the Rust kernels.

use super::conv2d::{self, Conv2dShape};
use super::{Activation, elementwise, embed, matmul, norm};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::rng;
use crate::tensor::Tensor;

#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

fn shape_err(op: &'static str, detail: String) -> Error {
    Error::Shape { op, detail }
}

fn dims<const N: usize>(op: &'static str, t: &Tensor) -> Result<[usize; N]> {
    t.shape().try_into().map_err(|_| shape_err(op, format!("expected a {N}-d tensor, got shape {:?}", t.shape())))
}

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
        let [n, k] = dims::<2>("linear", x)?;
        let [m, k2] = dims::<2>("linear", w)?;
        if k != k2 || b.is_some_and(|b| b.shape() != [m]) {
            return Err(shape_err(
                "linear",
                format!("x {:?}, w {:?}, b {:?}", x.shape(), w.shape(), b.map(|b| b.shape().to_vec())),
            ));
        }
        let mut out = Tensor::zeros(vec![n, m])?;
        matmul::linear(x.data(), w.data(), b.map(|b| b.data()), act, n, k, m, out.data_mut());
        Ok(out)
    }

    fn conv2d(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, pad: usize) -> Result<Tensor> {
        let [batch, c_in, h, wd] = dims::<4>("conv2d", x)?;
        let [c_out, c_in2, kh, kw] = dims::<4>("conv2d", w)?;
        if c_in != c_in2
            || stride == 0
            || h + 2 * pad < kh
            || wd + 2 * pad < kw
            || b.is_some_and(|b| b.shape() != [c_out])
        {
            return Err(shape_err(
                "conv2d",
                format!("x {:?}, w {:?}, stride {stride}, pad {pad}", x.shape(), w.shape()),
            ));
        }
        let s = Conv2dShape { batch, c_in, h, w: wd, c_out, kh, kw, stride, pad };
        let mut out = Tensor::zeros(vec![batch, c_out, s.out_h(), s.out_w()])?;
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
        let [n, c, h, w] = dims::<4>("group_norm", x)?;
        if groups == 0 || c % groups != 0 || gamma.shape() != [c] || beta.shape() != [c] {
            return Err(shape_err("group_norm", format!("x {:?}, groups {groups}", x.shape())));
        }
        let mut out = Tensor::zeros(x.shape().to_vec())?;
        norm::group_norm(x.data(), n, c, h * w, groups, gamma.data(), beta.data(), eps, act, out.data_mut());
        Ok(out)
    }

    fn silu(&self, x: &Tensor) -> Result<Tensor> {
        let mut out = x.clone();
        elementwise::silu_in_place(out.data_mut());
        Ok(out)
    }

    fn silu_tangent(&self, z: &Tensor, dz: &Tensor) -> Result<Tensor> {
        if z.shape() != dz.shape() {
            return Err(shape_err("silu_tangent", format!("{:?} vs {:?}", z.shape(), dz.shape())));
        }
        let mut out = Tensor::zeros(z.shape().to_vec())?;
        elementwise::silu_tangent(z.data(), dz.data(), out.data_mut());
        Ok(out)
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if a.shape() != b.shape() {
            return Err(shape_err("add", format!("{:?} vs {:?}", a.shape(), b.shape())));
        }
        let mut out = Tensor::zeros(a.shape().to_vec())?;
        elementwise::add(a.data(), b.data(), out.data_mut());
        Ok(out)
    }

    fn add_channel_bias(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let [n, c, h, w] = dims::<4>("add_channel_bias", x)?;
        if bias.shape() != [n, c] {
            return Err(shape_err("add_channel_bias", format!("x {:?}, bias {:?}", x.shape(), bias.shape())));
        }
        let mut out = x.clone();
        elementwise::add_channel_bias_in_place(out.data_mut(), bias.data(), n, c, h * w);
        Ok(out)
    }

    fn upsample_nearest2x(&self, x: &Tensor) -> Result<Tensor> {
        let [n, c, h, w] = dims::<4>("upsample_nearest2x", x)?;
        let mut out = Tensor::zeros(vec![n, c, 2 * h, 2 * w])?;
        elementwise::upsample_nearest2x(x.data(), n * c, h, w, out.data_mut());
        Ok(out)
    }

    fn concat_axis1(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let (sa, sb) = (a.shape(), b.shape());
        if sa.len() < 2 || sa.len() != sb.len() || sa[0] != sb[0] || sa[2..] != sb[2..] {
            return Err(shape_err("concat_axis1", format!("{sa:?} vs {sb:?}")));
        }
        let inner: usize = sa[2..].iter().product();
        let mut shape = sa.to_vec();
        shape[1] = sa[1] + sb[1];
        let mut out = Tensor::zeros(shape)?;
        elementwise::concat_axis1(a.data(), b.data(), sa[0], sa[1], sb[1], inner, out.data_mut());
        Ok(out)
    }

    fn time_embedding(&self, t: f32, n: usize, dim: usize, time_scale: f32) -> Result<Tensor> {
        if !dim.is_multiple_of(2) {
            return Err(shape_err("time_embedding", format!("dim {dim} must be even")));
        }
        // Outputs come from `Tensor::zeros` (recycled buffers), never a fresh Vec.
        let mut out = Tensor::zeros(vec![n, dim])?;
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
        let [vocab, d] = dims::<2>("embedding", table)?;
        let mut out = Tensor::zeros(vec![ids.len(), d])?;
        for (row, &id) in out.data_mut().chunks_exact_mut(d.max(1)).zip(ids) {
            let id = id as usize;
            if id >= vocab {
                return Err(shape_err("embedding", format!("id {id} out of range for a table of {vocab} rows")));
            }
            row.copy_from_slice(&table.data()[id * d..(id + 1) * d]);
        }
        Ok(out)
    }

    fn lincomb(&self, x: &Tensor, terms: &[(f32, &Tensor)]) -> Result<Tensor> {
        if let Some((_, k)) = terms.iter().find(|(_, k)| k.shape() != x.shape()) {
            return Err(shape_err("lincomb", format!("{:?} vs {:?}", x.shape(), k.shape())));
        }
        let slices: Vec<(f32, &[f32])> = terms.iter().map(|&(c, k)| (c, k.data())).collect();
        let mut out = Tensor::zeros(x.shape().to_vec())?;
        elementwise::lincomb(x.data(), &slices, out.data_mut());
        Ok(out)
    }

    fn slice_rows(&self, x: &Tensor, rows: std::ops::Range<usize>) -> Result<Tensor> {
        let (shape, span) = crate::backend::row_slice(x.shape(), &rows)?;
        let mut out = Tensor::zeros(shape)?;
        out.data_mut().copy_from_slice(&x.data()[span]);
        Ok(out)
    }

    fn repeat2(&self, x: &Tensor) -> Result<Tensor> {
        let mut shape = x.shape().to_vec();
        if shape.is_empty() {
            return Err(shape_err("repeat2", "scalar tensor".into()));
        }
        shape[0] *= 2;
        let mut out = Tensor::zeros(shape)?;
        let (a, b) = out.data_mut().split_at_mut(x.numel());
        a.copy_from_slice(x.data());
        b.copy_from_slice(x.data());
        Ok(out)
    }

    fn guidance_mix(&self, v: &Tensor, w: f32) -> Result<Tensor> {
        let mut shape = v.shape().to_vec();
        if shape.is_empty() || !shape[0].is_multiple_of(2) {
            return Err(shape_err("guidance_mix", format!("leading dim of {shape:?} must be even")));
        }
        shape[0] /= 2;
        let mut out = Tensor::zeros(shape)?;
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
        if err.shape() != x_old.shape() || err.shape() != x_new.shape() {
            return Err(shape_err("scaled_rms_error", format!("{:?}", err.shape())));
        }
        Ok(elementwise::scaled_rms_error(err.data(), x_old.data(), x_new.data(), rtol, atol))
    }

    async fn all_finite(&self, x: &Tensor) -> Result<bool> {
        Ok(x.data().iter().all(|v| v.is_finite()))
    }

    fn normal_noise(&self, seed: u64, stream: u32, start_index: u64, shape: &[usize]) -> Result<Tensor> {
        let mut t = Tensor::zeros(shape.to_vec())?;
        rng::fill_normal(seed, stream, start_index, t.data_mut());
        Ok(t)
    }

    /// Host memory is not split into bindings: any batch the sampler accepts fits.
    fn memory_limits(&self) -> crate::memory::MemoryLimits {
        crate::memory::MemoryLimits::cpu()
    }
}
