//! The CPU backend's worker pool (`src/cpu_workers.js`): each request carries an id, runs
//! after the requests before it, and settles on its own; abort and dispose reach only the
//! request they are meant for. This side turns a request into the pool's call and its merged
//! result into the sampler's output.

use super::engine::{SolveProfile, WorkerShare};
use super::options::{Callbacks, to_object};
use super::{find_text, get, js_message};
use crate::dual::DualTensor;
use crate::error::{Error, Result};
use crate::options::Entries;
use crate::profile::KernelTime;
use crate::sampler::{BackendChunk, BackendOutput};
use crate::tensor::Tensor;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/cpu_workers.js")]
extern "C" {
    /// The worker pool of the CPU backend (src/cpu_workers.js).
    pub type CpuPool;
    /// The pool, its workers booting (see `Workers`).
    #[wasm_bindgen(static_method_of = CpuPool, js_name = start)]
    fn start_pool(
        model: js_sys::Uint8Array,
        count: u32,
        declaration: Option<String>,
        build: &str,
        module: &JsValue,
        defer_ms: f64,
    ) -> CpuPool;
    /// A page-thread solve runs: a deferred boot waits for its `release`.
    #[wasm_bindgen(method)]
    fn hold(this: &CpuPool);
    #[wasm_bindgen(method)]
    fn release(this: &CpuPool);
    /// "starting", "ready", or why the workers could not start.
    #[wasm_bindgen(method)]
    fn state(this: &CpuPool) -> String;
    #[wasm_bindgen(method, catch)]
    async fn solve(
        this: &CpuPool,
        opts: JsValue,
        n: u32,
        min_rows: u32,
        on_progress: JsValue,
        signal: JsValue,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method)]
    pub fn terminate(this: &CpuPool);
}

/// Which of the two wasm builds this is (`scripts/build-web.sh`): `relaxed` (relaxed-SIMD
/// multiply-adds, chosen where the browser validates them) or `simd128`.
pub const WASM_BUILD: &str = if cfg!(target_feature = "relaxed-simd") { "relaxed" } else { "simd128" };

/// A CPU engine's worker pool. Its workers boot while the sampler goes on (a request sent
/// meanwhile waits for them in the pool); dropped, it stops them.
pub struct Workers {
    pool: CpuPool,
    count: u32,
}

/// How far a pool's workers are.
pub enum WorkerState {
    Starting,
    Ready,
    /// They could not start (e.g. a sandboxed frame); the pool has stopped.
    Failed(String),
}

/// Starts `count` workers, each with its own copy of the weights file (and the declaration an
/// ONNX file was given beside it), on this page's wasm build: the same kernels, so the workers'
/// rows are the rows the page thread would compute. They get this page's compiled module, not
/// its URL: no download and compile per worker (and V8 shares the machine code between them).
/// `deferred`: they boot when a request needs them, after the page-thread solves that `hold`
/// them, or 50 ms after this call with none running (see `CpuPool.start`).
pub fn start(model: &[u8], count: u32, declaration: Option<String>, deferred: bool) -> Workers {
    let module = wasm_bindgen::module();
    let defer_ms = if deferred { 50.0 } else { 0.0 };
    let pool = CpuPool::start_pool(js_sys::Uint8Array::from(model), count, declaration, WASM_BUILD, &module, defer_ms);
    Workers { pool, count }
}

/// A page-thread solve while the workers are starting; dropped, it lets a deferred boot go.
pub struct Hold<'a>(&'a CpuPool);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Workers {
    pub fn state(&self) -> WorkerState {
        match self.pool.state() {
            s if s == "starting" => WorkerState::Starting,
            s if s == "ready" => WorkerState::Ready,
            why => WorkerState::Failed(why),
        }
    }

    /// Holds a deferred boot until the returned guard is dropped.
    pub fn hold(&self) -> Hold<'_> {
        self.pool.hold();
        Hold(&self.pool)
    }

    /// What `backendReason` says of them: "; 2 workers".
    pub fn note(&self) -> String {
        format!("; {} worker{}", self.count, if self.count == 1 { "" } else { "s" })
    }

    /// Stops the workers (their pending calls reject as disposed).
    pub fn stop(&self) {
        self.pool.terminate();
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.pool.terminate();
    }
}

/// Solves the request `entries` (`n` samples of `sample_shape`) over the workers, in row ranges
/// of at least `min_rows`.
pub async fn solve(
    workers: &Workers,
    entries: &Entries,
    n: usize,
    sample_shape: &[usize],
    min_rows: usize,
    cb: &Callbacks,
) -> Result<(BackendOutput<DualTensor>, SolveProfile)> {
    let progress = cb.on_progress.clone().map_or(JsValue::UNDEFINED, JsValue::from);
    let signal = cb.signal.clone().map_or(JsValue::UNDEFINED, JsValue::from);
    let r = workers.pool.solve(to_object(entries), n as u32, min_rows.min(n) as u32, progress, signal).await.map_err(
        |e| match js_message(&e) {
            m if find_text(&m, "cancelled").is_some() => Error::Cancelled,
            m if find_text(&m, "disposed").is_some() => Error::Disposed,
            m => Error::Worker(m),
        },
    )?;
    let floats = |v: JsValue| v.dyn_into::<js_sys::Float32Array>().map(|a| a.to_vec()).unwrap_or_default();
    let len: usize = sample_shape.iter().product::<usize>().max(1);
    let tensor = |data: Vec<f32>| {
        let mut shape = vec![data.len() / len];
        shape.extend_from_slice(sample_shape);
        Tensor::new(shape, data).map(DualTensor::Cpu)
    };
    let samples = tensor(floats(get(&r, "samples")))?;
    let mut frames = Vec::new();
    for f in js_sys::Array::from(&get(&r, "frames")).iter() {
        frames.push((get(&f, "t").as_f64().unwrap_or(0.0) as f32, tensor(floats(get(&f, "data")))?));
    }
    let count = |k: &str| get(&r, k).as_f64().unwrap_or(0.0) as usize;
    // Each worker's rows and busy time, and (with `profile`) its kernel times, summed by kernel.
    let mut profile = SolveProfile { kernels: Vec::new(), workers: Vec::new() };
    for w in js_sys::Array::from(&get(&r, "workers")).iter() {
        let num = |o: &JsValue, k: &str| get(o, k).as_f64().unwrap_or(0.0);
        profile
            .workers
            .push(WorkerShare { rows: num(&w, "start") as usize..num(&w, "end") as usize, busy_ms: num(&w, "busyMs") });
        let rows = js_sys::Array::from(&get(&w, "kernels"));
        let kernels = rows.iter().map(|k| KernelTime {
            name: get(&k, "name").as_string().unwrap_or_default(),
            calls: num(&k, "calls") as u64,
            ms: num(&k, "ms"),
        });
        crate::profile::merge(&mut profile.kernels, kernels);
    }
    let out = BackendOutput {
        chunks: vec![BackendChunk { rows: 0..n, samples, frames }],
        stats: crate::ode::SolveStats {
            nfe: count("nfe"),
            accepted: count("acceptedSteps"),
            rejected: count("rejectedSteps"),
        },
        labels: get(&r, "labels").dyn_into::<js_sys::Uint32Array>().map(|a| a.to_vec()).unwrap_or_default(),
    };
    Ok((out, profile))
}
