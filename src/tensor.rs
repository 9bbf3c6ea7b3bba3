//! Host tensors: a shape and row-major f32 data (images are NCHW).

use crate::error::{Error, Result};

/// A host tensor. Its storage is recycled: a dropped tensor's buffer is kept (per thread,
/// bounded) and handed to the next `zeros`/`for_overwrite`/`clone` of a similar size, so an ODE
/// loop on the CPU backend stops allocating after its first step (the same buffers serve every
/// step and call).
#[derive(Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Clone for Tensor {
    fn clone(&self) -> Self {
        let mut data = recycle::take(self.data.len()).unwrap_or_default();
        data.clear();
        data.extend_from_slice(&self.data);
        Self { shape: self.shape.clone(), data }
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        recycle::give(std::mem::take(&mut self.data));
    }
}

/// The per-thread pool of spare tensor buffers.
mod recycle {
    use std::cell::RefCell;

    /// Smaller buffers come from the allocator's fast bins anyway.
    const MIN_FLOATS: usize = 1 << 12;
    const MAX_BUFFERS: usize = 24;
    /// At most 128 MiB of spare buffers per thread.
    const MAX_SPARE_FLOATS: usize = 32 << 20;

    thread_local! {
        static SPARE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    }

    /// A vector with capacity ≥ n: the smallest fitting spare, still holding the values it was
    /// given back with, or a new empty one. A failed allocation is an error, not an abort (in
    /// wasm an abort is a trap that leaves the page's promise unsettled).
    pub fn take(n: usize) -> Result<Vec<f32>, std::collections::TryReserveError> {
        if n >= MIN_FLOATS {
            let spare = SPARE.try_with(|s| {
                let mut s = s.try_borrow_mut().ok()?;
                let i = (0..s.len()).filter(|&i| s[i].capacity() >= n).min_by_key(|&i| s[i].capacity())?;
                Some(s.swap_remove(i))
            });
            if let Ok(Some(v)) = spare {
                return Ok(v);
            }
        }
        let mut v = Vec::new();
        v.try_reserve_exact(n)?;
        Ok(v)
    }

    pub fn give(v: Vec<f32>) {
        if v.capacity() < MIN_FLOATS {
            return;
        }
        let _ = SPARE.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                let held: usize = s.iter().map(Vec::capacity).sum();
                if s.len() < MAX_BUFFERS && held + v.capacity() <= MAX_SPARE_FLOATS {
                    s.push(v);
                }
            }
        });
    }
}

impl Tensor {
    /// Builds a tensor, checking that the data length equals the product of the shape.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n = checked_numel(&shape)?;
        if n != data.len() {
            return Err(Error::Shape {
                op: "Tensor::new",
                detail: format!("shape {shape:?} holds {n} values, data has {}", data.len()),
            });
        }
        Ok(Self { shape, data })
    }

    pub fn zeros(shape: Vec<usize>) -> Result<Self> {
        Self::recycled(shape, false)
    }

    /// A tensor for a kernel that writes every one of its values: a recycled buffer keeps
    /// whatever it held (finite or not; only a part past its old length is zeroed), which
    /// saves `zeros`' pass over memory the kernel is about to overwrite (the MLP's linear
    /// layers: 0.8% of a solve's time in the browser).
    pub fn for_overwrite(shape: Vec<usize>) -> Result<Self> {
        Self::recycled(shape, true)
    }

    fn recycled(shape: Vec<usize>, keep_stale: bool) -> Result<Self> {
        let n = checked_numel(&shape)?;
        let mut data = recycle::take(n).map_err(|_| {
            Error::OutOfMemory(format!("could not allocate a tensor of shape {shape:?} ({} MiB)", (n as u64 * 4) >> 20))
        })?;
        pushforward_kernels::elementwise::resize_buffer(&mut data, n, keep_stale);
        Ok(Self { shape, data })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_data(mut self) -> Vec<f32> {
        std::mem::take(&mut self.data)
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Same data, new shape with the same number of elements.
    pub fn reshape(mut self, shape: Vec<usize>) -> Result<Self> {
        Tensor::new(shape, std::mem::take(&mut self.data))
    }
}

/// Product of the dimensions, or an error instead of an overflow.
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Shape { op: "numel", detail: format!("shape {shape:?} overflows usize") })
}
