//! One backend type over both engines, picked at run time: `Backend for Dual` forwards each op
//! to the CPU or the GPU backend.
//!
//! Why: the browser bundle holds both engines, and code generic over `Backend` (the model
//! forwards, the solvers, the sampler, the log-density) would otherwise be compiled twice, once
//! per engine — ~30 KB of wasm. Through `Dual` it is compiled once; the price is one `match` per
//! op, nothing next to a kernel. Mixing tensors of the two engines is an error, never a panic.

use crate::backend::Backend;
use crate::cpu::{Activation, CpuBackend};
use crate::error::{Error, Result};
use crate::gpu::{GpuBackend, GpuTensor};
use crate::tensor::Tensor;

#[derive(Clone, Copy)]
pub enum Dual<'g> {
    Cpu(CpuBackend),
    Gpu(&'g GpuBackend),
}

pub enum DualTensor {
    Cpu(Tensor),
    Gpu(GpuTensor),
}

impl<'g> Dual<'g> {
    /// The GPU backend, when this is one.
    pub fn gpu(&self) -> Option<&'g GpuBackend> {
        match self {
            Dual::Gpu(g) => Some(g),
            Dual::Cpu(_) => None,
        }
    }
}

impl DualTensor {
    /// The GPU tensor, when this is one.
    pub fn as_gpu(&self) -> Option<&GpuTensor> {
        match self {
            DualTensor::Gpu(t) => Some(t),
            DualTensor::Cpu(_) => None,
        }
    }
}

fn mixed() -> Error {
    Error::Gpu("a tensor of one backend was passed to the other".into())
}

fn cpu(t: &DualTensor) -> Result<&Tensor> {
    match t {
        DualTensor::Cpu(t) => Ok(t),
        DualTensor::Gpu(_) => Err(mixed()),
    }
}

fn gpu(t: &DualTensor) -> Result<&GpuTensor> {
    match t {
        DualTensor::Gpu(t) => Ok(t),
        DualTensor::Cpu(_) => Err(mixed()),
    }
}

/// `$body` once per engine, with `$b` the engine and `$t` that engine's tensor accessor; the
/// result is wrapped back into a `DualTensor`.
macro_rules! each {
    ($self:expr, $b:ident, $t:ident => $body:expr) => {
        match $self {
            Dual::Cpu($b) => {
                let $t = cpu;
                Ok(DualTensor::Cpu($body))
            }
            Dual::Gpu($b) => {
                let $t = gpu;
                Ok(DualTensor::Gpu($body))
            }
        }
    };
}

impl Backend for Dual<'_> {
    type Tensor = DualTensor;

    fn name(&self) -> String {
        match self {
            Dual::Cpu(b) => b.name(),
            Dual::Gpu(b) => b.name(),
        }
    }

    fn upload(&self, host: &Tensor) -> Result<DualTensor> {
        each!(self, b, _t => b.upload(host)?)
    }

    async fn download(&self, t: &DualTensor) -> Result<Tensor> {
        match self {
            Dual::Cpu(b) => b.download(cpu(t)?).await,
            Dual::Gpu(b) => b.download(gpu(t)?).await,
        }
    }

    fn shape<'a>(&self, t: &'a DualTensor) -> &'a [usize] {
        match t {
            DualTensor::Cpu(t) => t.shape(),
            DualTensor::Gpu(t) => t.shape(),
        }
    }

    fn linear(&self, x: &DualTensor, w: &DualTensor, bias: Option<&DualTensor>, act: Activation) -> Result<DualTensor> {
        each!(self, b, t => b.linear(t(x)?, t(w)?, bias.map(t).transpose()?, act)?)
    }

    fn conv2d(
        &self,
        x: &DualTensor,
        w: &DualTensor,
        bias: Option<&DualTensor>,
        stride: usize,
        pad: usize,
    ) -> Result<DualTensor> {
        each!(self, b, t => b.conv2d(t(x)?, t(w)?, bias.map(t).transpose()?, stride, pad)?)
    }

    fn conv2d_add(
        &self,
        x: &DualTensor,
        w: &DualTensor,
        bias: Option<&DualTensor>,
        stride: usize,
        pad: usize,
        channel_add: Option<&DualTensor>,
        residual: Option<&DualTensor>,
    ) -> Result<DualTensor> {
        each!(self, b, t => b.conv2d_add(
            t(x)?,
            t(w)?,
            bias.map(t).transpose()?,
            stride,
            pad,
            channel_add.map(t).transpose()?,
            residual.map(t).transpose()?
        )?)
    }

    fn group_norm(
        &self,
        x: &DualTensor,
        groups: usize,
        gamma: &DualTensor,
        beta: &DualTensor,
        eps: f32,
        act: Activation,
    ) -> Result<DualTensor> {
        each!(self, b, t => b.group_norm(t(x)?, groups, t(gamma)?, t(beta)?, eps, act)?)
    }

    fn silu(&self, x: &DualTensor) -> Result<DualTensor> {
        each!(self, b, t => b.silu(t(x)?)?)
    }

    fn silu_tangent(&self, z: &DualTensor, dz: &DualTensor) -> Result<DualTensor> {
        each!(self, b, t => b.silu_tangent(t(z)?, t(dz)?)?)
    }

    fn add(&self, x: &DualTensor, y: &DualTensor) -> Result<DualTensor> {
        each!(self, b, t => b.add(t(x)?, t(y)?)?)
    }

    fn add_channel_bias(&self, x: &DualTensor, bias: &DualTensor) -> Result<DualTensor> {
        each!(self, b, t => b.add_channel_bias(t(x)?, t(bias)?)?)
    }

    fn upsample_nearest2x(&self, x: &DualTensor) -> Result<DualTensor> {
        each!(self, b, t => b.upsample_nearest2x(t(x)?)?)
    }

    fn concat_axis1(&self, x: &DualTensor, y: &DualTensor) -> Result<DualTensor> {
        each!(self, b, t => b.concat_axis1(t(x)?, t(y)?)?)
    }

    fn time_embedding(&self, time: f32, n: usize, dim: usize, time_scale: f32) -> Result<DualTensor> {
        each!(self, b, _t => b.time_embedding(time, n, dim, time_scale)?)
    }

    fn embedding(&self, table: &DualTensor, ids: &[u32]) -> Result<DualTensor> {
        each!(self, b, t => b.embedding(t(table)?, ids)?)
    }

    fn lincomb(&self, x: &DualTensor, terms: &[(f32, &DualTensor)]) -> Result<DualTensor> {
        each!(self, b, t => {
            let terms = terms.iter().map(|(c, k)| Ok((*c, t(k)?))).collect::<Result<Vec<_>>>()?;
            b.lincomb(t(x)?, &terms)?
        })
    }

    fn unary(&self, x: &DualTensor, op: crate::pointwise::UnaryOp) -> Result<DualTensor> {
        each!(self, b, t => b.unary(t(x)?, op)?)
    }

    fn binary(&self, a: &DualTensor, b: &DualTensor, op: crate::pointwise::BinaryOp) -> Result<DualTensor> {
        each!(self, e, t => e.binary(t(a)?, t(b)?, op)?)
    }

    fn reshape(&self, x: &DualTensor, shape: &[usize]) -> Result<DualTensor> {
        each!(self, b, t => b.reshape(t(x)?, shape)?)
    }

    fn reshape_owned(&self, x: DualTensor, shape: &[usize]) -> Result<DualTensor> {
        match (self, x) {
            (Dual::Cpu(b), DualTensor::Cpu(t)) => Ok(DualTensor::Cpu(b.reshape_owned(t, shape)?)),
            (Dual::Gpu(b), DualTensor::Gpu(t)) => Ok(DualTensor::Gpu(b.reshape_owned(t, shape)?)),
            _ => Err(mixed()),
        }
    }

    fn strided_copy(&self, x: &DualTensor, shape: &[usize], offset: usize, strides: &[usize]) -> Result<DualTensor> {
        each!(self, b, t => b.strided_copy(t(x)?, shape, offset, strides)?)
    }

    fn matmul(&self, a: &DualTensor, b: &DualTensor) -> Result<DualTensor> {
        each!(self, e, t => e.matmul(t(a)?, t(b)?)?)
    }

    fn softmax(&self, x: &DualTensor) -> Result<DualTensor> {
        each!(self, b, t => b.softmax(t(x)?)?)
    }

    fn layer_norm(&self, x: &DualTensor, gamma: &DualTensor, beta: &DualTensor, eps: f32) -> Result<DualTensor> {
        each!(self, b, t => b.layer_norm(t(x)?, t(gamma)?, t(beta)?, eps)?)
    }

    fn slice_rows(&self, x: &DualTensor, rows: std::ops::Range<usize>) -> Result<DualTensor> {
        each!(self, b, t => b.slice_rows(t(x)?, rows)?)
    }

    fn repeat2(&self, x: &DualTensor) -> Result<DualTensor> {
        each!(self, b, t => b.repeat2(t(x)?)?)
    }

    fn guidance_mix(&self, v: &DualTensor, w: f32) -> Result<DualTensor> {
        each!(self, b, t => b.guidance_mix(t(v)?, w)?)
    }

    async fn scaled_rms_error(
        &self,
        err: &DualTensor,
        x_old: &DualTensor,
        x_new: &DualTensor,
        rtol: f32,
        atol: f32,
    ) -> Result<f32> {
        match self {
            Dual::Cpu(b) => b.scaled_rms_error(cpu(err)?, cpu(x_old)?, cpu(x_new)?, rtol, atol).await,
            Dual::Gpu(b) => b.scaled_rms_error(gpu(err)?, gpu(x_old)?, gpu(x_new)?, rtol, atol).await,
        }
    }

    async fn all_finite(&self, x: &DualTensor) -> Result<bool> {
        match self {
            Dual::Cpu(b) => b.all_finite(cpu(x)?).await,
            Dual::Gpu(b) => b.all_finite(gpu(x)?).await,
        }
    }

    fn normal_noise(&self, seed: u64, stream: u32, start_index: u64, shape: &[usize]) -> Result<DualTensor> {
        each!(self, b, _t => b.normal_noise(seed, stream, start_index, shape)?)
    }

    fn memory_limits(&self) -> crate::memory::MemoryLimits {
        match self {
            Dual::Cpu(b) => b.memory_limits(),
            Dual::Gpu(b) => b.memory_limits(),
        }
    }
    async fn yield_now(&self) {
        // Only the CPU blocks the thread it runs on; a GPU solve only records work.
        if let Dual::Cpu(_) = self {
            crate::host::yield_to_event_loop().await;
        }
    }
    /// The engine's own row blocks: on the CPU a block's activations stay in cache between
    /// layers (the browser's CPU engine is this one: 65,536 moons points solved 10% faster).
    fn map_row_blocks(
        &self,
        x: &DualTensor,
        labels: Option<&[u32]>,
        row_values: usize,
        f: &crate::backend::RowsForward<DualTensor>,
    ) -> Result<DualTensor> {
        match self {
            Dual::Cpu(_) => Ok(DualTensor::Cpu(crate::cpu::row_blocks_on_host(self, x, labels, row_values, f, cpu)?)),
            // The GPU runs a whole batch at once (its buffers are split by the solve plan).
            Dual::Gpu(_) => f(x, labels),
        }
    }
}
