//! The recorder: the pending command encoder, the uniform-parameter arena, the count of pending
//! dispatches, submission, the timestamp profiler and the counters. `kernels.rs` records through
//! it; `backend.rs` (the ops) owns one behind a lock.
//!
//! Recording and submission: every op records its dispatches into a pending command encoder
//! and returns at once; consecutive dispatches share one compute pass (a copy or a submission
//! ends it). Work is submitted only when something must come back to the host (a
//! readback) or when the pending work grows large (`MAX_PENDING` dispatches, or the uniform arena
//! is full) so the device can start early.
//!
//! Uniform parameters: each dispatch's small parameter block goes into a host-side arena; at
//! submission the arena is written to one uniform buffer (`Queue::write_buffer` runs before the
//! submitted commands) and every dispatch binds its 256-byte slot with a dynamic offset. No
//! buffer is created per dispatch. Small host data that an op needs (the time-embedding row, the
//! class ids) rides in the same arena and is bound as a read-only storage range.

use super::buffers::{BufferPool, PoolStats};
use super::pipelines::{Family, Kernel, PARAMS_BYTES, PipelineCache};
use crate::error::{Error, Result};
use crate::sorted_map::SortedMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Dispatches recorded before a submission is forced.
const MAX_PENDING: usize = 256;
/// Bytes of the arena: parameter slots (256 bytes per dispatch) plus small host data.
const ARENA_BYTES: usize = 512 << 10;
/// A submission is forced once the arena fills beyond this (an op stages at most one data item
/// of `MAX_STAGED` bytes and a few parameter slots, which then still fit).
const ARENA_HIGH_WATER: usize = ARENA_BYTES - (64 << 10);
/// Largest host data staged in the arena; bigger data is uploaded into its own buffer.
pub(super) const MAX_STAGED: usize = 16 << 10;

/// A buffer range bound to a kernel: `bytes` of `buf` from `offset`.
#[derive(Clone, Copy)]
pub(crate) struct Bind<'a> {
    buf: &'a wgpu::Buffer,
    offset: u64,
    bytes: u64,
}

impl<'a> Bind<'a> {
    pub(super) fn new(buf: &'a wgpu::Buffer, offset: u64, bytes: u64) -> Self {
        Bind { buf, offset, bytes }
    }
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
    pub secs: SortedMap<Family, f64>,
    pub dispatches: SortedMap<Family, u64>,
}

struct Profiler {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    families: Vec<Family>,
    period_ns: f64,
    profile: Profile,
}

/// The mutable recording state (the backend keeps it behind one lock).
pub(crate) struct Recorder {
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// The backend's buffer pool: buffers it released beyond its caps are destroyed only once the
    /// work that may read them is submitted.
    pool: BufferPool,
    /// The compute pass that consecutive dispatches share (ended before anything else is
    /// recorded into the encoder, and at submission; declared before the encoder, so dropped
    /// before it).
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    arena: wgpu::Buffer,
    arena_host: Vec<u8>,
    max_workgroups: u32,
    pending: usize,
    pipelines: PipelineCache,
    profiler: Option<Profiler>,
    pub(super) stats: GpuStats,
    /// Set when the pending work must be submitted before the next dispatch.
    must_flush: bool,
    /// Benchmark comparison only: a fresh uniform buffer per dispatch instead of the arena.
    fresh_params: bool,
}

impl Recorder {
    /// A recorder on `device`; dispatch grids fold beyond `max_workgroups` per dimension.
    pub(super) fn new(device: wgpu::Device, queue: wgpu::Queue, pool: BufferPool, max_workgroups: u32) -> Self {
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pushforward params arena"),
            size: ARENA_BYTES as u64,
            // Uniform for the parameter slots, read-only storage for staged host data.
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Recorder {
            device,
            queue,
            pool,
            pass: None,
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
        }
    }

    /// The pending command encoder (created on first use after a submission), with no compute
    /// pass open on it: copies and query resolves are recorded between passes.
    pub(super) fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        let device = &self.device;
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("pushforward") })
        })
    }

    /// Compiles every kernel now (otherwise each compiles on first use).
    pub(super) fn compile_all(&mut self) {
        for k in Kernel::ALL {
            self.pipelines.get(&self.device, k);
        }
    }

    /// The counters, with the number of pipelines compiled so far (the pool's are the caller's).
    pub(super) fn stats(&self) -> GpuStats {
        let mut s = self.stats.clone();
        s.pipelines_compiled = self.pipelines.compiled();
        s
    }

    /// Benchmark comparison: a fresh uniform buffer per dispatch instead of an arena slot.
    /// Flush first: slots already in the arena must reach the device.
    pub(super) fn set_fresh_params(&mut self, on: bool) {
        self.fresh_params = on;
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
    /// guarantees) and returns the arena and the data's offset; it reaches the GPU with this
    /// submission's parameters.
    pub(super) fn stage(&mut self, data: &[u8]) -> (wgpu::Buffer, u64) {
        debug_assert!(data.len() <= MAX_STAGED);
        let offset = self.arena_host.len();
        self.arena_host.extend_from_slice(data);
        self.arena_host.resize((offset + data.len().max(16)).next_multiple_of(PARAMS_BYTES as usize), 0);
        (self.arena.clone(), offset as u64)
    }

    /// Records `kernel` over a flat count of workgroups (folded into 2-D).
    pub(super) fn dispatch(
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
    pub(super) fn dispatch_exact(
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
        // Consecutive dispatches share one compute pass: WebGPU still orders them and makes each
        // one's writes visible to the next (every dispatch is its own usage scope), and a pass
        // per dispatch cost its begin and end on the host (native, lavapipe: 9 → 6 µs of
        // recording and submission a dispatch). Profiling times each dispatch with the
        // timestamps of a pass of its own.
        let timestamps = self.profiler_mut().map(|p| {
            p.families.push(kernel.family());
            (p.queries.clone(), 2 * (p.families.len() as u32 - 1))
        });
        let mut timed;
        let pass = match &timestamps {
            Some((q, i)) => {
                let timestamp_writes = Some(wgpu::ComputePassTimestampWrites {
                    query_set: q,
                    beginning_of_pass_write_index: Some(*i),
                    end_of_pass_write_index: Some(*i + 1),
                });
                let desc = wgpu::ComputePassDescriptor { label: None, timestamp_writes };
                timed = self.encoder().begin_compute_pass(&desc).forget_lifetime();
                &mut timed
            }
            None => {
                if self.pass.is_none() {
                    let pass = self.encoder().begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                    self.pass = Some(pass.forget_lifetime());
                }
                self.pass.as_mut().expect("opened above")
            }
        };
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[dyn_offset]);
        pass.dispatch_workgroups(x, y, 1);
        self.pending += 1;
        self.stats.dispatches += 1;
        if self.pending >= MAX_PENDING || self.arena_host.len() >= ARENA_HIGH_WATER {
            self.must_flush = true;
        }
        Ok(())
    }

    /// The profiler while profiling. Never in the browser, which does not profile: the
    /// constant `None` there lets the compiler leave the timestamp code out of the bundle.
    fn profiler_mut(&mut self) -> Option<&mut Profiler> {
        if cfg!(target_arch = "wasm32") { None } else { self.profiler.as_mut() }
    }

    /// Submits the pending work when it has grown past the thresholds (before the next op).
    pub(super) fn flush_if_due(&mut self) -> Result<()> {
        if self.must_flush {
            self.flush()?;
        }
        Ok(())
    }

    /// Submits the pending work (without waiting for it): the arena is written to its buffer
    /// first, then the encoder is submitted. Buffers the pool retired meanwhile are destroyed
    /// after the submission.
    pub(super) fn flush(&mut self) -> Result<()> {
        let submitted = self.submit_pending();
        self.pool.destroy_retired();
        submitted
    }

    fn submit_pending(&mut self) -> Result<()> {
        let profiled = self.profiler_mut().is_some_and(|p| !p.families.is_empty());
        if profiled {
            let p = self.profiler.as_ref().expect("checked");
            let (q, res, stg, n) = (p.queries.clone(), p.resolve.clone(), p.staging.clone(), p.families.len() as u32);
            let enc = self.encoder();
            enc.resolve_query_set(&q, 0..2 * n, &res, 0);
            enc.copy_buffer_to_buffer(&res, 0, &stg, 0, 16 * n as u64);
        }
        self.pass = None;
        if let Some(enc) = self.encoder.take() {
            if !self.arena_host.is_empty() {
                self.queue.write_buffer(&self.arena, 0, &self.arena_host);
            }
            self.queue.submit([enc.finish()]);
            self.stats.submissions += 1;
        }
        self.arena_host.clear();
        self.pending = 0;
        self.must_flush = false;
        if profiled {
            self.collect_timestamps()?;
        }
        Ok(())
    }

    /// Submits everything pending, then `commands` (recorded outside the recorder).
    pub(super) fn submit_after_pending(&mut self, commands: wgpu::CommandBuffer) -> Result<()> {
        self.submit_pending()?;
        self.queue.submit([commands]);
        self.stats.submissions += 1;
        self.pool.destroy_retired();
        Ok(())
    }

    /// Starts timing every dispatch by kernel family (two timestamps per pass), clearing what
    /// was collected.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn start_profiling(&mut self, period_ns: f64) {
        // An op may record a few passes beyond MAX_PENDING before the forced submission (see
        // `record`), hence the slack.
        let count = 2 * (MAX_PENDING as u32 + 64);
        let device = &self.device;
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
        self.profiler =
            Some(Profiler { queries, resolve, staging, families: Vec::new(), period_ns, profile: Profile::default() });
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn stop_profiling(&mut self) {
        self.profiler = None;
    }

    /// What the profiler collected up to the last submission.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn profile(&self) -> Option<Profile> {
        self.profiler.as_ref().map(|p| p.profile.clone())
    }

    fn collect_timestamps(&mut self) -> Result<()> {
        let p = self.profiler.as_mut().expect("profiled");
        let n = p.families.len();
        let slice = p.staging.slice(..16 * n as u64);
        let (send, recv) = oneshot();
        slice.map_async(wgpu::MapMode::Read, send);
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(format!("poll: {e}")))?;
        pollster_ready(recv)?.map_err(|e| Error::Gpu(format!("mapping timestamps: {e}")))?;
        {
            let view = slice.get_mapped_range().map_err(|e| Error::Gpu(format!("timestamps view: {e}")))?;
            let ticks: &[u64] = bytemuck::cast_slice(&view);
            for (i, fam) in p.families.iter().enumerate() {
                let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * p.period_ns * 1e-9;
                *p.profile.secs.value_mut(*fam) += dt;
                *p.profile.dispatches.value_mut(*fam) += 1;
            }
        }
        p.staging.unmap();
        p.families.clear();
        Ok(())
    }
}

/// A one-shot channel whose receiver is a future: `map_async` completes from a callback (from
/// `Device::poll` natively, from the event loop in the browser).
struct Shared<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

pub(super) struct Receiver<T>(Arc<Mutex<Shared<T>>>);

pub(super) fn oneshot<T>() -> (impl FnOnce(T), Receiver<T>) {
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
