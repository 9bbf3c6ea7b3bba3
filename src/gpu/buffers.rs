//! A pool of GPU buffers reused across ops and sample calls. A solve allocates the same few
//! tensor sizes over and over (every stage of every step); creating a wgpu buffer each time costs
//! a driver allocation, so dropped tensors hand their buffer back here and the next request of
//! the same size class takes it.
//!
//! Reuse is safe while commands that still read a dropped tensor are pending: WebGPU orders all
//! work on a queue, so a later dispatch that overwrites the recycled buffer runs after them.
//! (The one hazard, `Queue::write_buffer` running *before* the pending encoder, is avoided by
//! never writing host data into pooled buffers that way: uploads create a fresh buffer.)

use crate::error::{Error, Result};
use crate::sorted_map::SortedMap;
use std::sync::{Arc, Mutex};

/// Storage buffers hold tensors; staging buffers are mapped for readbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Storage,
    Staging,
}

impl Kind {
    fn usage(self) -> wgpu::BufferUsages {
        match self {
            Kind::Storage => wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            Kind::Staging => wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        }
    }
}

/// Keep at most this many idle bytes, and this many idle buffers per size class; beyond that
/// released buffers are destroyed. (Uploads add buffers that no later request may want, e.g.
/// Dopri5's zero tensor once per solve: without a cap the idle lists would only grow.)
const MAX_IDLE_BYTES: u64 = 1 << 30;
const MAX_IDLE_PER_CLASS: usize = 32;

#[derive(Default)]
struct Inner {
    free: SortedMap<(Kind, u64), Vec<wgpu::Buffer>>,
    idle_bytes: u64,
    /// Buffers released beyond the caps, destroyed after the next submission (`destroy_retired`):
    /// commands still pending may read them, and a buffer destroyed before the submission that
    /// uses it fails validation.
    retired: Vec<wgpu::Buffer>,
    created: u64,
    reused: u64,
    destroyed: u64,
}

/// Allocation counters (for the benchmark and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    pub created: u64,
    pub reused: u64,
    /// Buffers alive now (in use or idle in the pool): `created` minus those destroyed.
    pub live: u64,
}

#[derive(Clone, Default)]
pub(crate) struct BufferPool {
    inner: Arc<Mutex<Inner>>,
}

/// Size classes 2^k·{1, 1.25, 1.5, 1.75} (≥ 256 bytes): at most 25% waste, few distinct sizes.
pub(crate) fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(256);
    let top = 63 - b.leading_zeros(); // 2^top ≤ b
    let step = 1u64 << top.saturating_sub(2);
    b.div_ceil(step) * step
}

impl BufferPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer of at least `bytes` (rounded up to its size class).
    pub fn get(&self, device: &wgpu::Device, kind: Kind, bytes: u64) -> PooledBuffer {
        let class = size_class(bytes);
        let reused = {
            let mut g = self.lock();
            let b = g.free.get_mut(&(kind, class)).and_then(Vec::pop);
            if b.is_some() {
                g.idle_bytes -= class;
                g.reused += 1;
            } else {
                g.created += 1;
            }
            b
        };
        let buf = reused.unwrap_or_else(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pushforward pooled"),
                size: class,
                usage: kind.usage(),
                mapped_at_creation: false,
            })
        });
        PooledBuffer { buf: Some(buf), kind, class, pool: self.clone() }
    }

    /// A new storage buffer holding `data` (padded to its size class), created mapped so the
    /// data is in place before any queued work can touch it. It joins the pool when dropped.
    pub fn upload(&self, device: &wgpu::Device, data: &[u8]) -> Result<PooledBuffer> {
        let class = size_class(data.len() as u64);
        let buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pushforward upload"),
            size: class,
            usage: Kind::Storage.usage(),
            mapped_at_creation: true,
        });
        {
            let mut view =
                buf.slice(..).get_mapped_range_mut().map_err(|e| Error::Gpu(format!("mapping a new buffer: {e}")))?;
            view.slice(..data.len()).copy_from_slice(data);
        }
        buf.unmap();
        self.lock().created += 1;
        Ok(PooledBuffer { buf: Some(buf), kind: Kind::Storage, class, pool: self.clone() })
    }

    pub fn stats(&self) -> PoolStats {
        let g = self.lock();
        PoolStats { created: g.created, reused: g.reused, live: g.created - g.destroyed }
    }

    /// Destroys the buffers released since the last submission; called right after each
    /// submission (work already submitted keeps what it uses alive until it completes).
    pub fn destroy_retired(&self) {
        let retired = std::mem::take(&mut self.lock().retired);
        for b in retired {
            b.destroy();
        }
    }

    fn put(&self, kind: Kind, class: u64, buf: wgpu::Buffer) {
        let mut g = self.lock();
        let list_len = g.free.get(&(kind, class)).map_or(0, Vec::len);
        if g.idle_bytes + class > MAX_IDLE_BYTES || list_len >= MAX_IDLE_PER_CLASS {
            g.destroyed += 1;
            g.retired.push(buf);
            return;
        }
        g.idle_bytes += class;
        g.free.value_mut((kind, class)).push(buf);
    }
}

/// A buffer on loan from the pool; it goes back on drop.
pub(crate) struct PooledBuffer {
    buf: Option<wgpu::Buffer>,
    kind: Kind,
    class: u64,
    pool: BufferPool,
}

impl PooledBuffer {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.pool.put(self.kind, self.class, b);
        }
    }
}

/// A pooled buffer that goes back to the pool only when `done` says it is in a reusable state
/// (a staging buffer unmapped); dropped before that, it is released, never pooled.
pub(crate) struct ReturnWhenDone(pub Option<PooledBuffer>);

impl ReturnWhenDone {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.0.as_ref().expect("held until done").buffer()
    }

    pub fn done(&mut self) {
        drop(self.0.take());
    }
}

impl Drop for ReturnWhenDone {
    fn drop(&mut self) {
        if let Some(mut p) = self.0.take()
            && let Some(buf) = p.buf.take()
        {
            // Taken out, it skips PooledBuffer's return to the pool; counted as destroyed.
            p.pool.inner.lock().unwrap_or_else(|e| e.into_inner()).destroyed += 1;
            buf.destroy();
        }
    }
}
