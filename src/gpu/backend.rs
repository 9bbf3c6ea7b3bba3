//! `GpuBackend`: the `Backend` ops as WGSL dispatches, recorded through the `Recorder`
//! (`recorder.rs`: pending encoder, uniform arena, submission) and submitted only at a readback
//! or when the pending work grows large. A fixed-step solve therefore records all its steps and
//! reads back once, at the end. Op shapes are checked by `crate::shapes`, as on the CPU.

use super::buffers::{BufferPool, Kind, PooledBuffer, ReturnWhenDone};
use super::context::{GpuContext, GpuOptions};
use super::kernels;
use super::pipelines::{Kernel, LINCOMB_TERMS};
#[cfg(not(target_arch = "wasm32"))]
use super::recorder::Profile;
use super::recorder::{Bind, GpuStats, MAX_STAGED, Recorder, oneshot};
use super::tuning::{ConvChoice, ConvVariant, LapTimer, LinearChoice, LinearClass, LinearVariant, Tuning, fastest};
use crate::backend::Backend;
use crate::cpu::{Activation, embed};
use crate::error::{Error, Result};
use crate::shapes;
use crate::shapes::Conv2dShape;
use crate::tensor::{Tensor, checked_numel};
use std::sync::{Mutex, MutexGuard};

/// A tensor in a GPU storage buffer (row-major f32, NCHW for images). Dropping it returns the
/// buffer to the backend's pool.
pub struct GpuTensor {
    shape: Vec<usize>,
    len: usize,
    buf: PooledBuffer,
}

impl GpuTensor {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn numel(&self) -> usize {
        self.len
    }

    fn bind(&self) -> Bind<'_> {
        Bind::new(self.buf.buffer(), 0, self.len as u64 * 4)
    }

    /// The tensor's values as a binding (the pooled buffer may be larger than the tensor).
    pub(crate) fn binding(&self) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding {
            buffer: self.buf.buffer(),
            offset: 0,
            size: wgpu::BufferSize::new(self.len.max(1) as u64 * 4),
        }
    }
}

/// The GPU engine. Owns the device; all ops record into its pending encoder.
pub struct GpuBackend {
    ctx: GpuContext,
    pool: BufferPool,
    rec: Mutex<Recorder>,
    /// The kernel variants this adapter runs (`tuning.rs`).
    tuning: Mutex<Tuning>,
}

impl GpuBackend {
    /// Opens a device (see [`GpuContext::new_async`]) and builds the backend on it.
    pub async fn new_async(opts: &GpuOptions) -> Result<Self> {
        Ok(Self::from_context(GpuContext::new_async(opts).await?))
    }

    /// Blocking [`GpuBackend::new_async`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(opts: &GpuOptions) -> Result<Self> {
        pollster::block_on(Self::new_async(opts))
    }

    pub fn from_context(ctx: GpuContext) -> Self {
        let pool = BufferPool::default();
        let rec = Recorder::new(ctx.device.clone(), ctx.queue.clone(), pool.clone(), ctx.plan.max_workgroups_per_dim);
        let tuning = Mutex::new(Tuning::new(ctx.is_software()));
        Self { ctx, pool, rec: Mutex::new(rec), tuning }
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.rec.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tuning_lock(&self) -> MutexGuard<'_, Tuning> {
        self.tuning.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The variants chosen so far (and what they measured).
    pub fn tuning(&self) -> Tuning {
        self.tuning_lock().clone()
    }

    /// Takes the choices of a stored tuning (`tuning_cache::load`), keeping a forced variant.
    pub fn adopt_tuning(&self, mut tuning: Tuning) {
        let mut t = self.tuning_lock();
        tuning.forced_linear = t.forced_linear;
        tuning.forced_conv = t.forced_conv;
        *t = tuning;
    }

    /// The variant a linear layer of this shape runs (`Tuning::linear`).
    pub fn linear_variant(&self, n: usize, k: usize, m: usize) -> LinearVariant {
        self.tuning_lock().linear(n, k, m)
    }

    /// Runs every linear layer with `variant` (None: the tuned choice again): tests force each
    /// variant, so a broken one cannot hide behind the tuner.
    pub fn force_linear(&self, variant: Option<LinearVariant>) {
        self.tuning_lock().forced_linear = variant;
    }

    /// Runs every convolution with `variant` (None: the default again).
    pub fn force_conv(&self, variant: Option<ConvVariant>) {
        self.tuning_lock().forced_conv = variant;
    }

    /// Times every linear variant on each of `shapes` (n, k, m) whose class is not tuned yet
    /// (`tuning().untuned()`: the classes that have run) and keeps the fastest; starts no new
    /// class once `budget_ms` have passed (those keep the default). `timer` turns each
    /// candidate's wall time into the time compared. Returns how many classes were tuned.
    ///
    /// Each variant runs once untimed (its pipeline compiles), then `TUNE_CALLS` times between
    /// two waits for the device. On a software adapter at most `SOFTWARE_ROWS` rows (~35 ms a
    /// call there at 256 × 256); on a GPU the layer's own rows, up to 2²⁴ values per operand: a
    /// 128×128 tile that wins at 65,536 rows can lose at 1,024, where it leaves most of a large
    /// GPU's cores idle, and the class covers the large size.
    pub async fn tune_linear(
        &self,
        shapes: &[(usize, usize, usize)],
        budget_ms: f64,
        timer: &mut dyn LapTimer,
    ) -> Result<usize> {
        const SOFTWARE_ROWS: usize = 1024;
        const TUNE_CALLS: usize = 4;
        let start = crate::host::now_ms();
        let mut tuned = 0;
        for &(n, k, m) in shapes {
            let class = LinearClass::of(n, k, m);
            if n == 0 || k == 0 || m == 0 || self.tuning_lock().is_tuned(class) {
                continue;
            }
            if crate::host::now_ms() - start > budget_ms {
                break;
            }
            let rows = n.min(if self.ctx.is_software() { SOFTWARE_ROWS } else { ((1 << 24) / k.max(m)).max(1) });
            let x = self.upload(&Tensor::new(vec![rows, k], tuning_data(rows * k))?)?;
            let w = self.upload(&Tensor::new(vec![m, k], tuning_data(m * k))?)?;
            let out = self.alloc(vec![rows, m])?;
            let mut us = Vec::with_capacity(LinearVariant::ALL.len());
            for v in LinearVariant::ALL {
                self.time_linear(v, 1, [&out, &x, &w], [rows, k, m]).await?;
                let wall = self.time_linear(v, TUNE_CALLS, [&out, &x, &w], [rows, k, m]).await?;
                us.push((v, micros(timer.lap(class, v.name(), wall))));
            }
            let variant = fastest(&us).unwrap_or(LinearVariant::default_for(self.ctx.is_software()));
            self.tuning_lock().record(class, LinearChoice { variant, us });
            tuned += 1;
        }
        Ok(tuned)
    }

    /// Times every convolution variant on each of `shapes` whose class is not tuned yet
    /// (`tuning().untuned_conv()`), like [`GpuBackend::tune_linear`]: at most 2 images on a
    /// software adapter, else the shape's own batch up to 2²⁴ input values.
    pub async fn tune_conv(&self, shapes: &[Conv2dShape], budget_ms: f64, timer: &mut dyn LapTimer) -> Result<usize> {
        const TUNE_CALLS: usize = 4;
        let start = crate::host::now_ms();
        let mut tuned = 0;
        for s in shapes {
            let class = LinearClass::of_conv(s);
            if s.batch * s.out_h() * s.out_w() * s.c_in * s.c_out == 0 || self.tuning_lock().is_conv_tuned(class) {
                continue;
            }
            if crate::host::now_ms() - start > budget_ms {
                break;
            }
            let image = s.c_in * s.h * s.w;
            let batch = s.batch.min(if self.ctx.is_software() { 2 } else { ((1 << 24) / image.max(1)).max(1) });
            let s = Conv2dShape { batch, ..*s };
            let x = self.upload(&Tensor::new(vec![batch, s.c_in, s.h, s.w], tuning_data(batch * image))?)?;
            let w = self.upload(&Tensor::new(
                vec![s.c_out, s.c_in, s.kh, s.kw],
                tuning_data(s.c_out * s.c_in * s.kh * s.kw),
            )?)?;
            let out = self.alloc(s.out())?;
            let mut us = Vec::with_capacity(ConvVariant::ALL.len());
            for v in ConvVariant::ALL {
                let time = async |calls: usize| {
                    let t0 = crate::host::now_ms();
                    for _ in 0..calls {
                        self.record(|r| kernels::conv2d(r, v, out.bind(), x.bind(), w.bind(), None, [None, None], &s))?;
                    }
                    self.finish().await?;
                    Ok::<f64, crate::Error>((crate::host::now_ms() - t0) / calls as f64)
                };
                time(1).await?;
                let wall = time(TUNE_CALLS).await?;
                us.push((v, micros(timer.lap(class, v.name(), wall))));
            }
            let variant = fastest(&us).unwrap_or(ConvVariant::default_for(self.ctx.is_software()));
            self.tuning_lock().record_conv(class, ConvChoice { variant, us });
            tuned += 1;
        }
        Ok(tuned)
    }

    /// Milliseconds per call of `calls` linear layers by `v` (out, x, w; n = rows, k, m), from
    /// recording them to the device finishing them.
    async fn time_linear(
        &self,
        v: LinearVariant,
        calls: usize,
        t: [&GpuTensor; 3],
        [n, k, m]: [usize; 3],
    ) -> Result<f64> {
        let t0 = crate::host::now_ms();
        for _ in 0..calls {
            self.record(|r| {
                kernels::linear(r, v, t[0].bind(), t[1].bind(), t[2].bind(), None, Activation::Silu, n, k, m)
            })?;
        }
        self.finish().await?;
        Ok((crate::host::now_ms() - t0) / calls as f64)
    }

    /// Compiles every kernel now (otherwise each compiles on first use), so that timings and
    /// the first sample call do not include shader compilation.
    pub fn warm_up(&self) -> Result<()> {
        self.lock().compile_all();
        self.ctx.check()
    }

    /// For the benchmark's comparison: bind a freshly created uniform buffer per dispatch
    /// instead of a slot of the parameter arena.
    pub fn set_fresh_param_buffers(&self, on: bool) -> Result<()> {
        self.flush()?;
        self.lock().set_fresh_params(on);
        Ok(())
    }

    pub fn stats(&self) -> GpuStats {
        let mut s = self.lock().stats();
        s.pool = self.pool.stats();
        s
    }

    /// Turns per-kernel-family GPU timing on (needs `TIMESTAMP_QUERY`, requested through
    /// `GpuOptions::timestamps`) and clears what was collected. Returns false when the device
    /// has no timestamp queries. Native only: results are read back with a blocking poll at every
    /// submission, which costs a little time per submission.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn set_profiling(&self, on: bool) -> Result<bool> {
        self.flush()?;
        let mut r = self.lock();
        if !on || !self.ctx.timestamps {
            r.stop_profiling();
            return Ok(!on || self.ctx.timestamps);
        }
        r.start_profiling(self.ctx.queue.get_timestamp_period() as f64);
        Ok(true)
    }

    /// What the profiler collected so far (flushes pending work first).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn profile(&self) -> Result<Option<Profile>> {
        self.flush()?;
        Ok(self.lock().profile())
    }

    /// Submits the pending work (without waiting for it).
    pub fn flush(&self) -> Result<()> {
        self.lock().flush()
    }

    /// Submits everything pending and resolves when the device has finished it (timings that
    /// should include the GPU's work without reading anything back).
    pub async fn finish(&self) -> Result<()> {
        self.flush()?;
        let (send, recv) = oneshot();
        self.ctx.queue.on_submitted_work_done(move || send(()));
        self.ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| {
            self.ctx.check().err().unwrap_or_else(|| Error::Gpu(format!("waiting for the device: {e}")))
        })?;
        recv.await;
        self.ctx.check()
    }

    /// Submits work recorded outside the backend (drawing) after everything pending, so it sees
    /// the results of every op recorded so far. Reports a validation error or device loss.
    pub(crate) fn submit_after_pending(&self, commands: wgpu::CommandBuffer) -> Result<()> {
        self.lock().submit_after_pending(commands)?;
        self.ctx.check()
    }

    /// Runs `f` with the recorder, submitting first when the pending work is due.
    fn record<T>(&self, f: impl FnOnce(&mut Recorder) -> Result<T>) -> Result<T> {
        let mut r = self.lock();
        r.flush_if_due()?;
        f(&mut r)
    }

    /// Records `f` with `data` bound as a read-only storage range: staged in the arena when small
    /// (no buffer is created), uploaded into a buffer of its own otherwise.
    fn with_host_data(&self, data: &[u8], f: impl FnOnce(&mut Recorder, Bind) -> Result<()>) -> Result<()> {
        if data.len() <= MAX_STAGED {
            self.record(|r| {
                let (arena, offset) = r.stage(data);
                f(r, Bind::new(&arena, offset, data.len() as u64))
            })
        } else {
            let t = self.upload_bytes(vec![data.len() / 4], data.len() / 4, data)?;
            self.record(|r| f(r, t.bind()))
        }
    }

    /// A fresh output tensor (from the pool). Sizes beyond the device's binding limits are an
    /// error here; the sampler splits batches so that it never asks for one.
    fn alloc(&self, shape: Vec<usize>) -> Result<GpuTensor> {
        let len = checked_numel(&shape)?;
        let bytes = (len as u64).checked_mul(4).ok_or_else(|| Error::Gpu("tensor size overflows".into()))?;
        let lim = &self.ctx.device_limits;
        let max = lim.max_storage_buffer_binding_size.min(lim.max_buffer_size);
        if bytes.max(16).next_multiple_of(16) > max {
            return Err(Error::Gpu(format!(
                "a tensor of shape {shape:?} ({bytes} bytes) exceeds this device's largest storage binding ({max} bytes); use a smaller batch"
            )));
        }
        let buf = self.pool.get(&self.ctx.device, Kind::Storage, bytes.max(16));
        Ok(GpuTensor { shape, len, buf })
    }

    fn upload_bytes(&self, shape: Vec<usize>, len: usize, data: &[u8]) -> Result<GpuTensor> {
        let lim = &self.ctx.device_limits;
        if data.len() as u64 > lim.max_storage_buffer_binding_size.min(lim.max_buffer_size) {
            return Err(Error::Gpu(format!(
                "an upload of {} bytes exceeds this device's largest storage binding",
                data.len()
            )));
        }
        // At least 16 bytes so that every binding is non-empty.
        let buf = if data.len() < 16 {
            let mut padded = data.to_vec();
            padded.resize(16, 0);
            self.pool.upload(&self.ctx.device, &padded)?
        } else {
            self.pool.upload(&self.ctx.device, data)?
        };
        Ok(GpuTensor { shape, len, buf })
    }

    /// Copies the first `bytes` of `src` back to the host. Submits everything pending.
    pub(crate) async fn read_bytes(&self, src: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        #[cfg(not(target_arch = "wasm32"))]
        let start = std::time::Instant::now();
        let bytes = bytes.max(4).next_multiple_of(4);
        // Back to the pool only once unmapped: a readback abandoned mid-map (its call cancelled
        // or disposed) or failed would hand the next readback a buffer that cannot be mapped.
        let mut held = ReturnWhenDone(Some(self.pool.get(&self.ctx.device, Kind::Staging, bytes)));
        let staging = held.buffer();
        {
            let mut r = self.lock();
            r.encoder().copy_buffer_to_buffer(src, 0, staging, 0, bytes);
            r.flush()?;
            r.stats.readbacks += 1;
        }
        let slice = staging.slice(..bytes);
        let (send, recv) = oneshot();
        slice.map_async(wgpu::MapMode::Read, send);
        // Natively this runs the map callback; in the browser it is a no-op and the callback
        // comes from the event loop while we await.
        self.ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| {
            self.ctx.check().err().unwrap_or_else(|| Error::Gpu(format!("waiting for the device: {e}")))
        })?;
        let mapped = recv.await;
        self.ctx.check()?;
        mapped.map_err(|e| Error::Gpu(format!("mapping a readback buffer: {e}")))?;
        let out = slice.get_mapped_range().map_err(|e| Error::Gpu(format!("readback view: {e}")))?.to_vec();
        staging.unmap();
        held.done();
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.lock().stats.readback_secs += start.elapsed().as_secs_f64();
        }
        Ok(out)
    }

    async fn read_scalar(&self, t: &GpuTensor) -> Result<f32> {
        let b = self.read_bytes(t.buf.buffer(), 4).await?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `len` values, each the sum of 8 vec4 multiply-add chains of `iters` steps
    /// (`shaders/peak.wgsl`): 64·len·iters flops with no memory traffic, the benchmark's measure
    /// of the adapter's fp32 peak. Tested against the chains' closed form.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn fma_peak(&self, len: usize, iters: u32) -> Result<GpuTensor> {
        let out = self.alloc(vec![len])?;
        self.record(|r| kernels::fma_peak(r, out.bind(), len, iters))?;
        Ok(out)
    }

    /// The raw Philox4x32-10 words of blocks `first_block .. first_block + blocks` of (seed,
    /// stream), computed by rng.wgsl: the hook for the bit-exactness test against `rng.rs`.
    pub async fn philox_words(&self, seed: u64, stream: u32, first_block: u64, blocks: usize) -> Result<Vec<u32>> {
        let out = self.alloc(vec![4 * blocks])?;
        self.record(|r| kernels::rng(r, out.bind(), seed, stream, first_block * 4, 4 * blocks, true))?;
        let bytes = self.read_bytes(out.buf.buffer(), 16 * blocks as u64).await?;
        Ok(bytemuck::cast_slice::<u8, u32>(&bytes[..16 * blocks]).to_vec())
    }
}

impl Backend for GpuBackend {
    type Tensor = GpuTensor;

    fn name(&self) -> String {
        format!("gpu ({})", self.ctx.info.name)
    }

    fn upload(&self, host: &Tensor) -> Result<GpuTensor> {
        self.upload_bytes(host.shape().to_vec(), host.numel(), bytemuck::cast_slice(host.data()))
    }

    async fn download(&self, t: &GpuTensor) -> Result<Tensor> {
        let bytes = self.read_bytes(t.buf.buffer(), t.len as u64 * 4).await?;
        let data: Vec<f32> =
            bytes[..t.len * 4].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Tensor::new(t.shape.clone(), data)
    }

    fn shape<'a>(&self, t: &'a GpuTensor) -> &'a [usize] {
        &t.shape
    }

    fn linear(&self, x: &GpuTensor, w: &GpuTensor, b: Option<&GpuTensor>, act: Activation) -> Result<GpuTensor> {
        let s = shapes::linear(&x.shape, &w.shape, b.map(GpuTensor::shape))?;
        let (n, k, m) = (s.n, s.k, s.m);
        let out = self.alloc(s.out())?;
        if n > 0 && m > 0 {
            let variant = {
                let mut t = self.tuning_lock();
                // The browser build runs no tuner (tuning.rs): nothing there reads the notes.
                if !cfg!(target_arch = "wasm32") {
                    t.note(n, k, m);
                }
                t.linear(n, k, m)
            };
            self.record(|r| {
                kernels::linear(r, variant, out.bind(), x.bind(), w.bind(), b.map(GpuTensor::bind), act, n, k, m)
            })?;
        }
        Ok(out)
    }

    fn conv2d(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        b: Option<&GpuTensor>,
        stride: usize,
        pad: usize,
    ) -> Result<GpuTensor> {
        self.conv2d_add(x, w, b, stride, pad, None, None)
    }

    /// The direct kernel adds `channel_add` and `residual` in its store; the implicit GEMMs
    /// (native, when tuned in) run the trait's separate ops after them.
    fn conv2d_add(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        b: Option<&GpuTensor>,
        stride: usize,
        pad: usize,
        channel_add: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
    ) -> Result<GpuTensor> {
        let s = shapes::conv2d(&x.shape, &w.shape, b.map(GpuTensor::shape), stride, pad)?;
        if let Some(c) = channel_add {
            shapes::add_channel_bias(&s.out(), &c.shape)?;
        }
        if let Some(r) = residual {
            shapes::add(&r.shape, &s.out())?;
        }
        // The browser build runs no tuner and carries only the direct kernels.
        let variant = if cfg!(target_arch = "wasm32") {
            ConvVariant::Direct
        } else {
            let mut t = self.tuning_lock();
            t.note_conv(&s);
            t.conv(&s)
        };
        let fused = variant == ConvVariant::Direct;
        let out = self.alloc(s.out())?;
        if out.len > 0 {
            let adds =
                if fused { [channel_add.map(GpuTensor::bind), residual.map(GpuTensor::bind)] } else { [None, None] };
            self.record(|r| {
                kernels::conv2d(r, variant, out.bind(), x.bind(), w.bind(), b.map(GpuTensor::bind), adds, &s)
            })?;
        }
        if fused { Ok(out) } else { crate::backend::adds_after_conv2d(self, out, channel_add, residual) }
    }

    fn group_norm(
        &self,
        x: &GpuTensor,
        groups: usize,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        eps: f32,
        act: Activation,
    ) -> Result<GpuTensor> {
        let d = shapes::group_norm(&x.shape, groups, &gamma.shape, &beta.shape)?;
        let out = self.alloc(d.shape())?;
        if out.len > 0 {
            self.record(|r| {
                kernels::group_norm(r, out.bind(), x.bind(), gamma.bind(), beta.bind(), &d, groups, eps, act)
            })?;
        }
        Ok(out)
    }

    fn silu(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let out = self.alloc(x.shape.clone())?;
        self.record(|r| kernels::elementwise(r, Kernel::Silu, out.bind(), &[x.bind()], x.len, 0, 0, 0.0))?;
        Ok(out)
    }

    fn silu_tangent(&self, z: &GpuTensor, dz: &GpuTensor) -> Result<GpuTensor> {
        let out = self.alloc(shapes::silu_tangent(&z.shape, &dz.shape)?)?;
        self.record(|r| {
            kernels::elementwise(r, Kernel::SiluTangent, out.bind(), &[z.bind(), dz.bind()], z.len, 0, 0, 0.0)
        })?;
        Ok(out)
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        let out = self.alloc(shapes::add(&a.shape, &b.shape)?)?;
        self.record(|r| kernels::elementwise(r, Kernel::Add, out.bind(), &[a.bind(), b.bind()], a.len, 0, 0, 0.0))?;
        Ok(out)
    }

    fn add_channel_bias(&self, x: &GpuTensor, bias: &GpuTensor) -> Result<GpuTensor> {
        let d = shapes::add_channel_bias(&x.shape, &bias.shape)?;
        let out = self.alloc(d.shape())?;
        if d.hw() > 0 {
            self.record(|r| {
                kernels::elementwise(
                    r,
                    Kernel::AddChannelBias,
                    out.bind(),
                    &[x.bind(), bias.bind()],
                    x.len,
                    d.hw(),
                    0,
                    0.0,
                )
            })?;
        }
        Ok(out)
    }

    fn upsample_nearest2x(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let d = shapes::upsample_nearest2x(&x.shape)?;
        let out = self.alloc(d.upsampled())?;
        self.record(|r| kernels::elementwise(r, Kernel::Upsample2x, out.bind(), &[x.bind()], out.len, d.h, d.w, 0.0))?;
        Ok(out)
    }

    fn concat_axis1(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        let s = shapes::concat_axis1(&a.shape, &b.shape)?;
        let (la, lb) = (s.ca * s.inner, s.cb * s.inner);
        let out = self.alloc(s.out)?;
        self.record(|r| {
            kernels::elementwise(r, Kernel::ConcatAxis1, out.bind(), &[a.bind(), b.bind()], out.len, la, lb, 0.0)
        })?;
        Ok(out)
    }

    /// The embedding row depends only on the scalar t: it is computed on the host with the CPU
    /// kernel (so it is bit-identical to the CPU backend) and broadcast to n rows on the GPU.
    fn time_embedding(&self, t: f32, n: usize, dim: usize, time_scale: f32) -> Result<GpuTensor> {
        let shape = shapes::time_embedding(n, dim)?;
        let mut row = vec![0.0f32; dim];
        embed::sinusoidal(t, time_scale, &mut row);
        let out = self.alloc(shape)?;
        if out.len > 0 {
            self.with_host_data(bytemuck::cast_slice(&row), |r, row| {
                kernels::broadcast_rows(r, out.bind(), row, out.len, dim)
            })?;
        }
        Ok(out)
    }

    fn embedding(&self, table: &GpuTensor, ids: &[u32]) -> Result<GpuTensor> {
        let shape = shapes::embedding(&table.shape, ids)?;
        let d = shape[1];
        let out = self.alloc(shape)?;
        if out.len > 0 {
            self.with_host_data(bytemuck::cast_slice(ids), |r, ids| {
                kernels::gather_rows(r, out.bind(), table.bind(), ids, out.len, d)
            })?;
        }
        Ok(out)
    }

    fn lincomb(&self, x: &GpuTensor, terms: &[(f32, &GpuTensor)]) -> Result<GpuTensor> {
        let shape = shapes::lincomb(&x.shape, terms.iter().map(|(_, k)| k.shape()))?;
        // One dispatch per LINCOMB_TERMS terms (every solver stage fits in one: Dopri5's widest
        // has 6 nonzero weights); longer sums continue from the partial result.
        let mut acc = self.alloc(shape)?;
        let first: Vec<(f32, Bind)> = terms.iter().take(LINCOMB_TERMS).map(|(c, k)| (*c, k.bind())).collect();
        self.record(|r| kernels::lincomb(r, acc.bind(), x.bind(), &first, x.len))?;
        for chunk in terms.chunks(LINCOMB_TERMS).skip(1) {
            let next = self.alloc(x.shape.clone())?;
            let t: Vec<(f32, Bind)> = chunk.iter().map(|(c, k)| (*c, k.bind())).collect();
            self.record(|r| kernels::lincomb(r, next.bind(), acc.bind(), &t, x.len))?;
            acc = next;
        }
        Ok(acc)
    }

    fn unary(&self, x: &GpuTensor, op: crate::pointwise::UnaryOp) -> Result<GpuTensor> {
        let out = self.alloc(shapes::unary(&x.shape)?)?;
        if x.len > 0 {
            self.record(|r| kernels::unary(r, out.bind(), x.bind(), x.len, op))?;
        }
        Ok(out)
    }

    fn binary(&self, a: &GpuTensor, b: &GpuTensor, op: crate::pointwise::BinaryOp) -> Result<GpuTensor> {
        let shape = shapes::binary(&a.shape, &b.shape)?;
        let out = self.alloc(shape.clone())?;
        if out.len > 0 {
            self.record(|r| kernels::binary(r, out.bind(), (a.bind(), &a.shape), (b.bind(), &b.shape), &shape, op))?;
        }
        Ok(out)
    }

    fn reshape(&self, x: &GpuTensor, shape: &[usize]) -> Result<GpuTensor> {
        let out = self.alloc(shapes::reshape(&x.shape, shape)?)?;
        if x.len > 0 {
            // A buffer copy in the command stream: ordered with the dispatches around it.
            self.record(|r| {
                r.encoder().copy_buffer_to_buffer(x.buf.buffer(), 0, out.buf.buffer(), 0, x.len as u64 * 4);
                Ok(())
            })?;
        }
        Ok(out)
    }

    fn reshape_owned(&self, x: GpuTensor, shape: &[usize]) -> Result<GpuTensor> {
        let shape = shapes::reshape(&x.shape, shape)?;
        Ok(GpuTensor { shape, ..x })
    }

    fn strided_copy(&self, x: &GpuTensor, shape: &[usize], offset: usize, strides: &[usize]) -> Result<GpuTensor> {
        let out = self.alloc(shapes::strided_copy(&x.shape, shape, offset, strides)?)?;
        if out.len > 0 {
            self.record(|r| kernels::strided_copy(r, out.bind(), x.bind(), shape, offset, strides))?;
        }
        Ok(out)
    }

    fn matmul(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        let s = shapes::matmul(&a.shape, &b.shape)?;
        let out = self.alloc(s.out.clone())?;
        if out.len > 0 {
            self.record(|r| {
                kernels::batched_matmul(
                    r,
                    out.bind(),
                    (a.bind(), &s.a_strides),
                    (b.bind(), &s.b_strides),
                    &s.batch,
                    (s.m, s.k, s.n),
                )
            })?;
        }
        Ok(out)
    }

    fn softmax(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let (rows, inner) = shapes::softmax(&x.shape)?;
        let out = self.alloc(x.shape.clone())?;
        if rows > 0 {
            self.record(|r| kernels::rows(r, Kernel::SoftmaxRows, out.bind(), &[x.bind()], rows, inner, 0.0))?;
        }
        Ok(out)
    }

    fn layer_norm(&self, x: &GpuTensor, gamma: &GpuTensor, beta: &GpuTensor, eps: f32) -> Result<GpuTensor> {
        let (rows, inner) = shapes::layer_norm(&x.shape, &gamma.shape, &beta.shape)?;
        let out = self.alloc(x.shape.clone())?;
        if rows > 0 {
            self.record(|r| {
                kernels::rows(
                    r,
                    Kernel::LayerNormRows,
                    out.bind(),
                    &[x.bind(), gamma.bind(), beta.bind()],
                    rows,
                    inner,
                    eps,
                )
            })?;
        }
        Ok(out)
    }

    fn slice_rows(&self, x: &GpuTensor, rows: std::ops::Range<usize>) -> Result<GpuTensor> {
        let (shape, span) = shapes::slice_rows(&x.shape, &rows)?;
        let out = self.alloc(shape)?;
        if !span.is_empty() {
            // A buffer copy in the command stream: ordered with the dispatches around it.
            self.record(|r| {
                r.encoder().copy_buffer_to_buffer(
                    x.buf.buffer(),
                    span.start as u64 * 4,
                    out.buf.buffer(),
                    0,
                    span.len() as u64 * 4,
                );
                Ok(())
            })?;
        }
        Ok(out)
    }

    fn repeat2(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let out = self.alloc(shapes::repeat2(&x.shape)?)?;
        if x.len > 0 {
            self.record(|r| kernels::elementwise(r, Kernel::Tile, out.bind(), &[x.bind()], out.len, x.len, 0, 0.0))?;
        }
        Ok(out)
    }

    fn guidance_mix(&self, v: &GpuTensor, w: f32) -> Result<GpuTensor> {
        let out = self.alloc(shapes::guidance_mix(&v.shape)?)?;
        self.record(|r| kernels::elementwise(r, Kernel::GuidanceMix, out.bind(), &[v.bind()], out.len, 0, 0, w))?;
        Ok(out)
    }

    async fn scaled_rms_error(
        &self,
        err: &GpuTensor,
        x_old: &GpuTensor,
        x_new: &GpuTensor,
        rtol: f32,
        atol: f32,
    ) -> Result<f32> {
        shapes::scaled_rms_error(&err.shape, &x_old.shape, &x_new.shape)?;
        if err.len == 0 {
            return Ok(0.0);
        }
        let np = kernels::partials(err.len, self.ctx.plan.max_workgroups_per_dim);
        let part = self.alloc(vec![np])?;
        let out = self.alloc(vec![1])?;
        self.record(|r| {
            kernels::rms_partial(r, part.bind(), err.bind(), x_old.bind(), x_new.bind(), err.len, np, rtol, atol)?;
            kernels::finish(r, out.bind(), part.bind(), np, err.len, true)
        })?;
        self.read_scalar(&out).await
    }

    async fn all_finite(&self, x: &GpuTensor) -> Result<bool> {
        if x.len == 0 {
            return Ok(true);
        }
        let np = kernels::partials(x.len, self.ctx.plan.max_workgroups_per_dim);
        let part = self.alloc(vec![np])?;
        let out = self.alloc(vec![1])?;
        self.record(|r| {
            kernels::nonfinite_partial(r, part.bind(), x.bind(), x.len, np)?;
            kernels::finish(r, out.bind(), part.bind(), np, x.len, false)
        })?;
        Ok(self.read_scalar(&out).await? == 0.0)
    }

    /// Generated on the GPU by rng.wgsl (no upload): Philox words are bit-identical to
    /// `rng.rs`; the normals differ from the CPU's by the last bits of the device's log/cos/sin.
    fn normal_noise(&self, seed: u64, stream: u32, start_index: u64, shape: &[usize]) -> Result<GpuTensor> {
        let out = self.alloc(shape.to_vec())?;
        if out.len > 0 {
            self.record(|r| kernels::rng(r, out.bind(), seed, stream, start_index, out.len, false))?;
        }
        Ok(out)
    }

    /// Rows whose largest intermediate tensor fits one storage binding of the planning limits.
    fn memory_limits(&self) -> crate::memory::MemoryLimits {
        let tensor = self.ctx.plan.max_binding_bytes.min(self.ctx.plan.max_buffer_bytes);
        crate::memory::MemoryLimits {
            budget_bytes: self.ctx.budget_bytes,
            max_tensor_bytes: tensor.min(self.ctx.budget_bytes),
            im2col: false,
            max_kept_values: crate::memory::MAX_KEPT_FRAME_VALUES,
        }
    }
}

/// The tuner's operands: any finite values do, so a fixed pattern in [-0.5, 0.5).
fn tuning_data(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5).collect()
}

/// A lap in milliseconds as whole microseconds (the stored tuning's unit).
fn micros(ms: f64) -> u32 {
    (ms * 1e3).round().clamp(0.0, u32::MAX as f64) as u32
}
