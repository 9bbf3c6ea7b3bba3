//! `GpuBackend`: the `Backend` ops as WGSL dispatches.
//!
//! Recording and submission: every op records one compute pass into a pending command encoder
//! and returns at once. Work is submitted only when something must come back to the host (a
//! readback: `download`, `scaled_rms_error`, `all_finite`) or when the pending work grows large
//! (`MAX_PENDING` dispatches, or the uniform arena is full) so the device can start early. A
//! fixed-step solve therefore records all its steps and reads back once, at the end.
//!
//! Uniform parameters: each dispatch's small parameter block goes into a host-side arena; at
//! submission the arena is written to one uniform buffer (`Queue::write_buffer` runs before the
//! submitted commands) and every dispatch binds its 256-byte slot with a dynamic offset. No
//! buffer is created per dispatch. Small host data that an op needs (the time-embedding row, the
//! class ids) rides in the same arena and is bound as a read-only storage range, so a forward
//! pass creates no buffers either.

use super::buffers::{BufferPool, Kind, PoolStats, PooledBuffer, ReturnWhenDone};
use super::context::{GpuContext, GpuOptions};
use super::kernels;
use super::pipelines::{Family, Kernel, LINCOMB_TERMS, PARAMS_BYTES, PipelineCache};
use crate::backend::Backend;
use crate::cpu::{Activation, embed};
use crate::error::{Error, Result};
use crate::tensor::{Tensor, checked_numel};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Dispatches recorded before a submission is forced.
const MAX_PENDING: usize = 256;
/// Bytes of the arena: parameter slots (256 bytes per dispatch) plus small host data.
const ARENA_BYTES: usize = 512 << 10;
/// A submission is forced once the arena fills beyond this (an op stages at most one data item
/// of `MAX_STAGED` bytes and a few parameter slots, which then still fit).
const ARENA_HIGH_WATER: usize = ARENA_BYTES - (64 << 10);
/// Largest host data staged in the arena; bigger data is uploaded into its own buffer.
const MAX_STAGED: usize = 16 << 10;

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
        Bind { buf: self.buf.buffer(), offset: 0, bytes: self.len as u64 * 4 }
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

/// A buffer range bound to a kernel: `bytes` of `buf` from `offset`.
#[derive(Clone, Copy)]
pub(crate) struct Bind<'a> {
    buf: &'a wgpu::Buffer,
    offset: u64,
    bytes: u64,
}

/// Counters of what the backend did (for the benchmark and tests).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuStats {
    pub dispatches: u64,
    pub submissions: u64,
    pub readbacks: u64,
    /// Host seconds spent waiting in readbacks (native only; includes the GPU work they wait for).
    pub readback_secs: f64,
    pub pipelines_compiled: usize,
    pub pool: PoolStats,
}

/// GPU seconds per kernel family, from timestamp queries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub secs: BTreeMap<Family, f64>,
    pub dispatches: BTreeMap<Family, u64>,
}

struct Profiler {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    families: Vec<Family>,
    period_ns: f64,
    profile: Profile,
}

/// The mutable recording state, behind one lock.
pub(crate) struct Recorder {
    device: wgpu::Device,
    encoder: Option<wgpu::CommandEncoder>,
    arena: wgpu::Buffer,
    arena_host: Vec<u8>,
    max_workgroups: u32,
    pending: usize,
    pipelines: PipelineCache,
    profiler: Option<Profiler>,
    stats: GpuStats,
    /// Set when the pending work must be submitted before the next dispatch.
    must_flush: bool,
    /// Benchmark comparison only: a fresh uniform buffer per dispatch instead of the arena.
    fresh_params: bool,
}

impl Recorder {
    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        let device = &self.device;
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("pushforward") })
        })
    }

    /// Folds a flat workgroup count into a 2-D grid (x ≤ the per-dimension limit).
    fn grid(&self, groups: u64) -> Result<(u32, u32)> {
        let max = self.max_workgroups as u64;
        if groups <= max {
            return Ok((groups as u32, 1));
        }
        let y = groups.div_ceil(max);
        if y > max {
            return Err(Error::Gpu(format!("{groups} workgroups exceed a {max}×{max} dispatch grid")));
        }
        Ok((max as u32, y as u32))
    }

    /// Appends host data to the arena (256-byte aligned, the storage offset alignment WebGPU
    /// guarantees) and returns its offset; it reaches the GPU with this submission's parameters.
    fn stage(&mut self, data: &[u8]) -> u64 {
        debug_assert!(data.len() <= MAX_STAGED);
        let offset = self.arena_host.len();
        self.arena_host.extend_from_slice(data);
        self.arena_host.resize((offset + data.len().max(16)).next_multiple_of(PARAMS_BYTES as usize), 0);
        offset as u64
    }

    /// Records `kernel` over a flat count of workgroups (folded into 2-D).
    pub(crate) fn dispatch(
        &mut self,
        kernel: Kernel,
        params: &[u8],
        out: Bind,
        inputs: &[Bind],
        groups: u64,
    ) -> Result<()> {
        if groups == 0 {
            return Ok(());
        }
        let (x, y) = self.grid(groups)?;
        self.record(kernel, params, out, inputs, x, y)
    }

    /// Records `kernel` over exactly `x` workgroups in one row (reductions index by wid.x).
    pub(crate) fn dispatch_exact(
        &mut self,
        kernel: Kernel,
        params: &[u8],
        out: Bind,
        inputs: &[Bind],
        x: u32,
    ) -> Result<()> {
        self.record(kernel, params, out, inputs, x, 1)
    }

    fn record(&mut self, kernel: Kernel, params: &[u8], out: Bind, inputs: &[Bind], x: u32, y: u32) -> Result<()> {
        debug_assert_eq!(inputs.len(), kernel.inputs(), "{kernel:?}");
        debug_assert!(params.len() as u64 <= PARAMS_BYTES);
        // An op may record a few dispatches after `must_flush` was set (its flush comes at the
        // next op); the arena keeps a margin above its high-water mark for exactly that.
        if self.arena_host.len() + PARAMS_BYTES as usize > ARENA_BYTES {
            return Err(Error::Gpu("internal: parameter arena overflow".into()));
        }
        let pipeline = self.pipelines.get(&self.device, kernel);
        let fresh = self.fresh_params.then(|| {
            use wgpu::util::DeviceExt;
            let mut padded = params.to_vec();
            padded.resize(PARAMS_BYTES as usize, 0);
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params (fresh)"),
                contents: &padded,
                usage: wgpu::BufferUsages::UNIFORM,
            })
        });
        let offset = self.arena_host.len();
        if fresh.is_none() {
            self.arena_host.extend_from_slice(params);
            self.arena_host.resize(offset + PARAMS_BYTES as usize, 0);
        }
        let (param_buf, dyn_offset) = match &fresh {
            Some(b) => (b, 0),
            None => (&self.arena, offset as u32),
        };

        // Bindings are rounded up to 16 bytes (vec4 arrays need it; pool buffers are ≥ 256 bytes
        // in 64-byte steps, so the rounded range stays inside the buffer).
        fn binding<'b>(b: &Bind<'b>) -> wgpu::BufferBinding<'b> {
            wgpu::BufferBinding {
                buffer: b.buf,
                offset: b.offset,
                size: wgpu::BufferSize::new(b.bytes.max(16).next_multiple_of(16)),
            }
        }
        let mut entries = vec![
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: param_buf,
                    offset: 0,
                    size: wgpu::BufferSize::new(PARAMS_BYTES),
                }),
            },
            wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::Buffer(binding(&out)) },
        ];
        for (i, b) in inputs.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: 2 + i as u32,
                resource: wgpu::BindingResource::Buffer(binding(b)),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.layout,
            entries: &entries,
        });
        let ts_index = self.profiler.as_mut().map(|p| {
            p.families.push(kernel.family());
            2 * (p.families.len() as u32 - 1)
        });
        // Two borrows of self: take what the pass needs first.
        let query_set = self.profiler.as_ref().map(|p| p.queries.clone());
        let enc = self.encoder();
        {
            let timestamp_writes = match (&query_set, ts_index) {
                (Some(q), Some(i)) => Some(wgpu::ComputePassTimestampWrites {
                    query_set: q,
                    beginning_of_pass_write_index: Some(i),
                    end_of_pass_write_index: Some(i + 1),
                }),
                _ => None,
            };
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes });
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &bind_group, &[dyn_offset]);
            pass.dispatch_workgroups(x, y, 1);
        }
        self.pending += 1;
        self.stats.dispatches += 1;
        if self.pending >= MAX_PENDING || self.arena_host.len() >= ARENA_HIGH_WATER {
            self.must_flush = true;
        }
        Ok(())
    }
}

/// A one-shot channel whose receiver is a future: `map_async` completes from a callback (from
/// `Device::poll` natively, from the event loop in the browser).
struct Shared<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

struct Receiver<T>(Arc<Mutex<Shared<T>>>);

fn oneshot<T>() -> (impl FnOnce(T), Receiver<T>) {
    let s = Arc::new(Mutex::new(Shared { value: None, waker: None }));
    let s2 = s.clone();
    let send = move |v: T| {
        let mut g = s2.lock().unwrap_or_else(|p| p.into_inner());
        g.value = Some(v);
        if let Some(w) = g.waker.take() {
            w.wake();
        }
    };
    (send, Receiver(s))
}

impl<T> Future for Receiver<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match g.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                g.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The GPU engine. Owns the device; all ops record into its pending encoder.
pub struct GpuBackend {
    ctx: GpuContext,
    pool: BufferPool,
    rec: Mutex<Recorder>,
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
        let device = ctx.device.clone();
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pushforward params arena"),
            size: ARENA_BYTES as u64,
            // Uniform for the parameter slots, read-only storage for staged host data.
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let max_workgroups = ctx.plan.max_workgroups_per_dim;
        let rec = Recorder {
            device,
            encoder: None,
            arena,
            arena_host: Vec::with_capacity(ARENA_BYTES),
            max_workgroups,
            pending: 0,
            pipelines: PipelineCache::default(),
            profiler: None,
            stats: GpuStats::default(),
            must_flush: false,
            fresh_params: false,
        };
        Self { ctx, pool: BufferPool::default(), rec: Mutex::new(rec) }
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.rec.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compiles every kernel now (otherwise each compiles on first use), so that timings and
    /// the first sample call do not include shader compilation.
    pub fn warm_up(&self) -> Result<()> {
        let mut r = self.lock();
        let device = r.device.clone();
        for k in Kernel::ALL {
            r.pipelines.get(&device, k);
        }
        drop(r);
        self.ctx.check()
    }

    /// For the benchmark's comparison: bind a freshly created uniform buffer per dispatch
    /// instead of a slot of the parameter arena.
    pub fn set_fresh_param_buffers(&self, on: bool) -> Result<()> {
        self.flush()?;
        self.lock().fresh_params = on;
        Ok(())
    }

    pub fn stats(&self) -> GpuStats {
        let r = self.lock();
        let mut s = r.stats.clone();
        s.pipelines_compiled = r.pipelines.compiled();
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
            r.profiler = None;
            return Ok(!on || self.ctx.timestamps);
        }
        // Two timestamps per pass; an op may record a few passes beyond MAX_PENDING before the
        // forced submission (see `Recorder::record`), hence the slack.
        let count = 2 * (MAX_PENDING as u32 + 64);
        let device = &r.device;
        let queries = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("pushforward timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let bytes = count as u64 * 8;
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let period_ns = self.ctx.queue.get_timestamp_period() as f64;
        r.profiler =
            Some(Profiler { queries, resolve, staging, families: Vec::new(), period_ns, profile: Profile::default() });
        Ok(true)
    }

    /// What the profiler collected so far (flushes pending work first).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn profile(&self) -> Result<Option<Profile>> {
        self.flush()?;
        Ok(self.lock().profiler.as_ref().map(|p| p.profile.clone()))
    }

    /// Submits the pending work (without waiting for it).
    pub fn flush(&self) -> Result<()> {
        let mut r = self.lock();
        self.flush_locked(&mut r)
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
        let mut r = self.lock();
        self.flush_locked(&mut r)?;
        self.ctx.queue.submit([commands]);
        r.stats.submissions += 1;
        drop(r);
        self.ctx.check()
    }

    fn flush_locked(&self, r: &mut Recorder) -> Result<()> {
        let profiled = r.profiler.as_ref().is_some_and(|p| !p.families.is_empty());
        if profiled {
            let p = r.profiler.as_ref().expect("checked");
            let (q, res, stg, n) = (p.queries.clone(), p.resolve.clone(), p.staging.clone(), p.families.len() as u32);
            let enc = r.encoder();
            enc.resolve_query_set(&q, 0..2 * n, &res, 0);
            enc.copy_buffer_to_buffer(&res, 0, &stg, 0, 16 * n as u64);
        }
        if let Some(enc) = r.encoder.take() {
            if !r.arena_host.is_empty() {
                self.ctx.queue.write_buffer(&r.arena, 0, &r.arena_host);
            }
            self.ctx.queue.submit([enc.finish()]);
            r.stats.submissions += 1;
        }
        r.arena_host.clear();
        r.pending = 0;
        r.must_flush = false;
        if profiled {
            self.collect_timestamps(r)?;
        }
        Ok(())
    }

    fn collect_timestamps(&self, r: &mut Recorder) -> Result<()> {
        let p = r.profiler.as_mut().expect("profiled");
        let n = p.families.len();
        let slice = p.staging.slice(..16 * n as u64);
        let (send, recv) = oneshot();
        slice.map_async(wgpu::MapMode::Read, send);
        self.ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(format!("poll: {e}")))?;
        pollster_ready(recv)?.map_err(|e| Error::Gpu(format!("mapping timestamps: {e}")))?;
        {
            let view = slice.get_mapped_range().map_err(|e| Error::Gpu(format!("timestamps view: {e}")))?;
            let ticks: &[u64] = bytemuck::cast_slice(&view);
            for (i, fam) in p.families.iter().enumerate() {
                let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * p.period_ns * 1e-9;
                *p.profile.secs.entry(*fam).or_default() += dt;
                *p.profile.dispatches.entry(*fam).or_default() += 1;
            }
        }
        p.staging.unmap();
        p.families.clear();
        Ok(())
    }

    /// Runs `f` with the recorder, submitting first when the pending work is due.
    fn record<T>(&self, f: impl FnOnce(&mut Recorder) -> Result<T>) -> Result<T> {
        let mut r = self.lock();
        if r.must_flush {
            self.flush_locked(&mut r)?;
        }
        f(&mut r)
    }

    /// Records `f` with `data` bound as a read-only storage range: staged in the arena when small
    /// (no buffer is created), uploaded into a buffer of its own otherwise.
    fn with_host_data(&self, data: &[u8], f: impl FnOnce(&mut Recorder, Bind) -> Result<()>) -> Result<()> {
        if data.len() <= MAX_STAGED {
            self.record(|r| {
                let offset = r.stage(data);
                let arena = r.arena.clone();
                f(r, Bind { buf: &arena, offset, bytes: data.len() as u64 })
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
            self.flush_locked(&mut r)?;
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

    /// The raw Philox4x32-10 words of blocks `first_block .. first_block + blocks` of (seed,
    /// stream), computed by rng.wgsl: the hook for the bit-exactness test against `rng.rs`.
    pub async fn philox_words(&self, seed: u64, stream: u32, first_block: u64, blocks: usize) -> Result<Vec<u32>> {
        let out = self.alloc(vec![4 * blocks])?;
        self.record(|r| kernels::rng(r, out.bind(), seed, stream, first_block * 4, 4 * blocks, true))?;
        let bytes = self.read_bytes(out.buf.buffer(), 16 * blocks as u64).await?;
        Ok(bytemuck::cast_slice::<u8, u32>(&bytes[..16 * blocks]).to_vec())
    }

    fn same_shape(op: &'static str, a: &GpuTensor, b: &GpuTensor) -> Result<()> {
        if a.shape != b.shape {
            return Err(Error::Shape { op, detail: format!("{:?} vs {:?}", a.shape, b.shape) });
        }
        Ok(())
    }
}

/// Polls a future that must already be complete (native timestamp readback after a blocking
/// poll); an unfinished one is an error rather than a hang.
fn pollster_ready<T>(mut f: Receiver<T>) -> Result<T> {
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    match Pin::new(&mut f).poll(&mut cx) {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => Err(Error::Gpu("timestamp readback did not complete".into())),
    }
}

fn dims<const N: usize>(op: &'static str, t: &GpuTensor) -> Result<[usize; N]> {
    t.shape
        .as_slice()
        .try_into()
        .map_err(|_| Error::Shape { op, detail: format!("expected a {N}-d tensor, got shape {:?}", t.shape) })
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
        let [n, k] = dims::<2>("linear", x)?;
        let [m, k2] = dims::<2>("linear", w)?;
        if k != k2 || b.is_some_and(|b| b.shape != [m]) {
            return Err(Error::Shape {
                op: "linear",
                detail: format!("x {:?}, w {:?}, b {:?}", x.shape, w.shape, b.map(|b| b.shape.clone())),
            });
        }
        let out = self.alloc(vec![n, m])?;
        if n > 0 && m > 0 {
            self.record(|r| kernels::linear(r, out.bind(), x.bind(), w.bind(), b.map(GpuTensor::bind), act, n, k, m))?;
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
        let [n, cin, h, wd] = dims::<4>("conv2d", x)?;
        let [cout, cin2, kh, kw] = dims::<4>("conv2d", w)?;
        if cin != cin2 || stride == 0 || h + 2 * pad < kh || wd + 2 * pad < kw || b.is_some_and(|b| b.shape != [cout]) {
            return Err(Error::Shape {
                op: "conv2d",
                detail: format!("x {:?}, w {:?}, stride {stride}, pad {pad}", x.shape, w.shape),
            });
        }
        let (oh, ow) = ((h + 2 * pad - kh) / stride + 1, (wd + 2 * pad - kw) / stride + 1);
        let out = self.alloc(vec![n, cout, oh, ow])?;
        if out.len > 0 {
            let d = [n, cin, h, wd, cout, kh, kw, stride, pad, oh, ow];
            self.record(|r| kernels::conv2d(r, out.bind(), x.bind(), w.bind(), b.map(GpuTensor::bind), d))?;
        }
        Ok(out)
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
        let [n, c, h, w] = dims::<4>("group_norm", x)?;
        if groups == 0 || c % groups != 0 || gamma.shape != [c] || beta.shape != [c] {
            return Err(Error::Shape { op: "group_norm", detail: format!("x {:?}, groups {groups}", x.shape) });
        }
        let out = self.alloc(x.shape.clone())?;
        if out.len > 0 {
            self.record(|r| {
                kernels::group_norm(r, out.bind(), x.bind(), gamma.bind(), beta.bind(), n, c, h * w, groups, eps, act)
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
        Self::same_shape("silu_tangent", z, dz)?;
        let out = self.alloc(z.shape.clone())?;
        self.record(|r| {
            kernels::elementwise(r, Kernel::SiluTangent, out.bind(), &[z.bind(), dz.bind()], z.len, 0, 0, 0.0)
        })?;
        Ok(out)
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        Self::same_shape("add", a, b)?;
        let out = self.alloc(a.shape.clone())?;
        self.record(|r| kernels::elementwise(r, Kernel::Add, out.bind(), &[a.bind(), b.bind()], a.len, 0, 0, 0.0))?;
        Ok(out)
    }

    fn add_channel_bias(&self, x: &GpuTensor, bias: &GpuTensor) -> Result<GpuTensor> {
        let [n, c, h, w] = dims::<4>("add_channel_bias", x)?;
        if bias.shape != [n, c] {
            return Err(Error::Shape {
                op: "add_channel_bias",
                detail: format!("x {:?}, bias {:?}", x.shape, bias.shape),
            });
        }
        let out = self.alloc(x.shape.clone())?;
        if h * w > 0 {
            self.record(|r| {
                kernels::elementwise(
                    r,
                    Kernel::AddChannelBias,
                    out.bind(),
                    &[x.bind(), bias.bind()],
                    x.len,
                    h * w,
                    0,
                    0.0,
                )
            })?;
        }
        Ok(out)
    }

    fn upsample_nearest2x(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let [n, c, h, w] = dims::<4>("upsample_nearest2x", x)?;
        let out = self.alloc(vec![n, c, 2 * h, 2 * w])?;
        self.record(|r| kernels::elementwise(r, Kernel::Upsample2x, out.bind(), &[x.bind()], out.len, h, w, 0.0))?;
        Ok(out)
    }

    fn concat_axis1(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        let (sa, sb) = (&a.shape, &b.shape);
        if sa.len() < 2 || sa.len() != sb.len() || sa[0] != sb[0] || sa[2..] != sb[2..] {
            return Err(Error::Shape { op: "concat_axis1", detail: format!("{sa:?} vs {sb:?}") });
        }
        let inner: usize = sa[2..].iter().product();
        let mut shape = sa.clone();
        shape[1] = sa[1] + sb[1];
        let out = self.alloc(shape)?;
        let (la, lb) = (sa[1] * inner, sb[1] * inner);
        self.record(|r| {
            kernels::elementwise(r, Kernel::ConcatAxis1, out.bind(), &[a.bind(), b.bind()], out.len, la, lb, 0.0)
        })?;
        Ok(out)
    }

    /// The embedding row depends only on the scalar t: it is computed on the host with the CPU
    /// kernel (so it is bit-identical to the CPU backend) and broadcast to n rows on the GPU.
    fn time_embedding(&self, t: f32, n: usize, dim: usize, time_scale: f32) -> Result<GpuTensor> {
        if !dim.is_multiple_of(2) {
            return Err(Error::Shape { op: "time_embedding", detail: format!("dim {dim} must be even") });
        }
        let mut row = vec![0.0f32; dim];
        embed::sinusoidal(t, time_scale, &mut row);
        let out = self.alloc(vec![n, dim])?;
        if out.len > 0 {
            self.with_host_data(bytemuck::cast_slice(&row), |r, row| {
                kernels::broadcast_rows(r, out.bind(), row, out.len, dim)
            })?;
        }
        Ok(out)
    }

    fn embedding(&self, table: &GpuTensor, ids: &[u32]) -> Result<GpuTensor> {
        let [vocab, d] = dims::<2>("embedding", table)?;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::Shape {
                op: "embedding",
                detail: format!("id {id} out of range for a table of {vocab} rows"),
            });
        }
        let out = self.alloc(vec![ids.len(), d])?;
        if out.len > 0 {
            self.with_host_data(bytemuck::cast_slice(ids), |r, ids| {
                kernels::gather_rows(r, out.bind(), table.bind(), ids, out.len, d)
            })?;
        }
        Ok(out)
    }

    fn lincomb(&self, x: &GpuTensor, terms: &[(f32, &GpuTensor)]) -> Result<GpuTensor> {
        if let Some((_, k)) = terms.iter().find(|(_, k)| k.shape != x.shape) {
            return Err(Error::Shape { op: "lincomb", detail: format!("{:?} vs {:?}", x.shape, k.shape) });
        }
        // One dispatch per LINCOMB_TERMS terms (every solver stage fits in one: Dopri5's widest
        // has 6 nonzero weights); longer sums continue from the partial result.
        let mut acc = self.alloc(x.shape.clone())?;
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

    fn slice_rows(&self, x: &GpuTensor, rows: std::ops::Range<usize>) -> Result<GpuTensor> {
        let (shape, span) = crate::backend::row_slice(&x.shape, &rows)?;
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
        let mut shape = x.shape.clone();
        if shape.is_empty() {
            return Err(Error::Shape { op: "repeat2", detail: "scalar tensor".into() });
        }
        shape[0] *= 2;
        let out = self.alloc(shape)?;
        if x.len > 0 {
            self.record(|r| kernels::elementwise(r, Kernel::Tile, out.bind(), &[x.bind()], out.len, x.len, 0, 0.0))?;
        }
        Ok(out)
    }

    fn guidance_mix(&self, v: &GpuTensor, w: f32) -> Result<GpuTensor> {
        let mut shape = v.shape.clone();
        if shape.is_empty() || !shape[0].is_multiple_of(2) {
            return Err(Error::Shape { op: "guidance_mix", detail: format!("leading dim of {shape:?} must be even") });
        }
        shape[0] /= 2;
        let out = self.alloc(shape)?;
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
        Self::same_shape("scaled_rms_error", err, x_old)?;
        Self::same_shape("scaled_rms_error", err, x_new)?;
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
