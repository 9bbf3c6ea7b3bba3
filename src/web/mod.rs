//! The `#[wasm_bindgen]` surface: the exported `Sampler` class, thin over the library. Split by
//! concern: `options` (JS values into the crate's one options contract), `engine` (the CPU and
//! GPU engines through `Dual`: one kept solve, one interpolation, one painter), `fetch`
//! (downloads with progress, cap, timeout and abort), `device` (the page's shared WebGPU device
//! and the adapter probe), `pool` (the CPU worker pool's glue). Every error is a `JsError`
//! with the library's message; every promise settles.
//!
//! ```js
//! import init, { Sampler } from './pkg/pushforward.js';
//! await init();
//! const s = await Sampler.create({ canvas, model: 'models/moons.safetensors', backend: 'cpu' });
//! const r = await s.sample({ n: 4096, solver: 'heun', steps: 8, seed: 1, returnSamples: true });
//! s.dispose();   // safe at any time, also during a call (which then rejects as disposed)
//! ```

mod device;
mod engine;
mod fetch;
mod options;
mod pool;

use crate::error::{Error, shown};
use crate::host::now_ms;
use crate::model::{DataConfig, Model};
use crate::options::{self as contract, Paths, Value};
use crate::render;
use crate::sampler::Progress;
use engine::{Engine, Kept, Picture};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Where `needle` first occurs in `text`, by bytes: what `str::find` does for these few
/// ASCII needles without core's two-way string searcher (~1 KB of the gzipped wasm).
fn find_text(text: &str, needle: &str) -> Option<usize> {
    text.as_bytes().windows(needle.len()).position(|w| w == needle.as_bytes())
}

/// `o[k]`, or undefined.
fn get(o: &JsValue, k: &str) -> JsValue {
    js_sys::Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

/// A plain JS object from (key, value) pairs.
fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in fields {
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

/// The message of a JS error value (an `Error`'s `message`, or its string form), escaped and
/// truncated like every echoed string.
fn js_message(e: &JsValue) -> String {
    let m = get(e, "message").as_string().or_else(|| e.as_string()).unwrap_or_else(|| format!("{e:?}"));
    shown(&m, crate::error::LONG)
}

/// Resolves after `ms` milliseconds (setTimeout through `Reflect`, so it works in workers too).
async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        match get(&global, "setTimeout").dyn_into::<js_sys::Function>() {
            Ok(f) => {
                let _ = f.call2(&global, &resolve, &JsValue::from(ms));
            }
            Err(_) => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// `url` resolved against the page: the kept copy's key, whichever relative form named it.
fn absolute_url(url: &str) -> String {
    let global = js_sys::global();
    let base = get(&get(&global, "location"), "href");
    get(&global, "URL")
        .dyn_into::<js_sys::Function>()
        .ok()
        .and_then(|c| js_sys::Reflect::construct(&c, &js_sys::Array::of2(&url.into(), &base)).ok())
        .and_then(|u| get(&u, "href").as_string())
        .unwrap_or_else(|| url.to_string())
}

/// A progress callback's event object.
fn progress_event(p: Progress) -> JsValue {
    object(&[
        ("step", JsValue::from(p.step as f64)),
        ("totalSteps", p.total_steps.map_or(JsValue::NULL, |s| JsValue::from(s as f64))),
        ("t", JsValue::from(p.t)),
        ("nfe", JsValue::from(p.nfe as f64)),
    ])
}

/// `backendReason` while `auto`'s adapter has not answered (see `Sampler::create_inner`).
const CPU_FIRST: &str = "the wasm CPU kernels until WebGPU's adapter answers, asked for after the first sample (a 2-D \
     model's first samples come sooner from them than from a GPU device); a hardware adapter takes over at the next \
     sample() after it answers";

/// The most CPU workers a sampler starts (each holds a wasm instance and the weights).
const MAX_WORKERS: u32 = 8;

/// A model loaded into a backend, drawing into an optional canvas. `dispose()` is safe at any
/// time: it cancels what runs (that call rejects with "the sampler was disposed"), stops the
/// workers and frees the weights and kept samples; every later call rejects the same way.
#[wasm_bindgen]
pub struct Sampler {
    /// `None` once disposed. Replaced when a lost WebGPU device is reopened (or given up for
    /// the CPU). Calls hold an `Rc` while they run, so an engine lives until its last call ends.
    engine: RefCell<Option<Rc<Engine>>>,
    model: Model,
    /// The weights file, kept by WebGPU samplers for a CPU fallback's workers after device loss.
    bytes: RefCell<Vec<u8>>,
    workers: u32,
    /// The declaration an ONNX file was given beside it (for the workers of a CPU fallback).
    declaration: Option<String>,
    canvas: RefCell<Option<web_sys::HtmlCanvasElement>>,
    backend_reason: RefCell<String>,
    /// `auto`'s adapter request, still out when `create` returned on the CPU (see
    /// `adopt_late_adapter`).
    late_adapter: RefCell<Option<device::LateAnswer>>,
    /// Where the model's bytes came from and where they are kept for the next load.
    provenance: fetch::Provenance,
    kept: RefCell<Option<Rc<Kept>>>,
    /// The model's log-density drawn under the samples (after `density()`).
    heat: RefCell<Option<render::HeatLayer>>,
    disposed: Cell<bool>,
    /// The `resolve` of every call in flight's stop promise (see `guarded`), by call id.
    stops: RefCell<Vec<(u32, js_sys::Function)>>,
    next_call: Cell<u32>,
}

#[wasm_bindgen]
impl Sampler {
    /// `Sampler.create({ canvas?, model: url | Uint8Array | ArrayBuffer, backend?: 'auto' |
    /// 'cpu' | 'webgpu', workers?, onProgress?, signal?, maxDownloadBytes?, downloadTimeoutMs? })`.
    pub async fn create(opts: JsValue) -> Result<Sampler, JsError> {
        Self::create_inner(opts).await.map_err(js_err)
    }

    /// The model's config, parameter count, backend and why it was chosen, which wasm build
    /// runs (`relaxed` with relaxed-SIMD FMA kernels, or `simd128`), and where the model came
    /// from (`modelSource`: network, cache, memory, bytes) and is kept (`modelKept`: cache,
    /// memory, none, off; `modelKeptNote` says why); on WebGPU, `linearKernel`: the linear
    /// layer's kernel variant (`registers4x4` on a software adapter, `tiled64` or `tiled128` where tuned).
    pub fn info(&self) -> Result<JsValue, JsError> {
        let engine = self.engine().map_err(js_err)?;
        // A late adapter answer that keeps the CPU is told at once (a move waits for sample()).
        let _ = self.late_adapter_says_gpu();
        if let Some((why, note)) = engine.workers_failed() {
            let mut reason = self.backend_reason.borrow_mut();
            *reason =
                reason.replacen(&note, &format!("; workers unavailable ({why}), solving on the page's thread"), 1);
        }
        let config =
            js_sys::JSON::parse(&self.model.config.to_json()).map_err(|_| JsError::new("config is not JSON"))?;
        Ok(object(&[
            ("config", config),
            ("parameters", JsValue::from(self.model.param_count() as f64)),
            ("backend", engine.kind().into()),
            ("adapter", engine.adapter().into()),
            ("backendReason", self.backend_reason.borrow().as_str().into()),
            ("wasmBuild", pool::WASM_BUILD.into()),
            ("linearKernel", engine.gpu().map_or(JsValue::NULL, |g| g.linear_variant(0, 0, 0).name().into())),
            ("modelSource", self.provenance.source.into()),
            ("modelKept", self.provenance.kept.into()),
            ("modelKeptNote", self.provenance.note.as_str().into()),
        ]))
    }

    /// The defaults and bounds of `sample()` for this model (the demo and the embed read them
    /// instead of restating them): `{ n, solver, steps, …, solvers, limits: { n: [lo, hi], … } }`.
    pub fn defaults(&self) -> JsValue {
        js_sys::JSON::parse(&contract::defaults_json(&self.model.config)).unwrap_or(JsValue::NULL)
    }

    /// The canvas this sampler draws on (a fresh one replaces the page's canvas when a CPU
    /// fallback needs a 2-D context on a canvas that held a WebGPU one).
    #[wasm_bindgen(getter)]
    pub fn canvas(&self) -> Option<web_sys::HtmlCanvasElement> {
        self.canvas.borrow().clone()
    }

    /// Samples, draws to the canvas (if any) and resolves with timings; with
    /// `returnSamples: true` also `samples` (Float32Array) and `labels`.
    pub async fn sample(&self, opts: JsValue) -> Result<JsValue, JsError> {
        self.guarded(Box::pin(self.sample_inner(opts.clone())), &opts).await.map_err(|e| js_err(self.settle(e)))
    }

    /// Draws the state at time `t` ∈ [0, 1] of the last solve (linear interpolation between
    /// the kept steps): noise at 0, samples at 1. For a time slider.
    #[wasm_bindgen(js_name = drawAt)]
    pub fn draw_at(&self, t: f32) -> Result<(), JsError> {
        if !t.is_finite() {
            return Err(JsError::new("t must be a number in [0, 1]"));
        }
        self.draw_kept(crate::pointwise::clamp(t, 0.0, 1.0)).map_err(js_err)
    }

    /// Shows the push-forward: re-solves the last request keeping every sample's state at every
    /// step (unless the last solve did), then plays it from noise (t = 0) to data (t = 1) over
    /// `duration` ms (default 2000). Honours `signal`.
    pub async fn animate(&self, opts: JsValue) -> Result<(), JsError> {
        let call = async { self.animate_inner(opts.clone()).await.map(|()| JsValue::UNDEFINED) };
        self.guarded(Box::pin(call), &opts).await.map(drop).map_err(|e| js_err(self.settle(e)))
    }

    /// The model's log-density log p(x) on a `resolution`² grid over the plot box (2-D models),
    /// by integrating the exact divergence from data back to noise (`steps` RK4 steps), drawn
    /// under the samples from now on. Resolves with `{ logDensity, width, height, integral, ms }`
    /// (`integral`: Σ p·cell area over the box, ≈ 1 when the box holds the distribution).
    pub async fn density(&self, opts: JsValue) -> Result<JsValue, JsError> {
        self.guarded(Box::pin(self.density_inner(opts.clone())), &opts).await.map_err(|e| js_err(self.settle(e)))
    }

    /// Paths from points you choose (noise at t = 0, e.g. where a user clicked) to t = 1, every
    /// step kept: `pathsFrom(Float32Array [x0, y0, x1, y1, …], { solver, steps })` resolves with
    /// `{ times: Float32Array, paths: Float32Array }`, `paths` = [times.length][n][2] flattened.
    #[wasm_bindgen(js_name = pathsFrom)]
    pub async fn paths_from(&self, points: Vec<f32>, opts: JsValue) -> Result<JsValue, JsError> {
        self.guarded(Box::pin(self.paths_inner(points, opts.clone())), &opts).await.map_err(|e| js_err(self.settle(e)))
    }

    /// The flow field v(x, t) on a `resolution`² grid over the plot box (cell centres, top row
    /// first): `velocityField({ t, resolution })` → Float32Array [resolution²][2].
    #[wasm_bindgen(js_name = velocityField)]
    pub async fn velocity_field(&self, opts: JsValue) -> Result<js_sys::Float32Array, JsError> {
        let call = async { self.field_inner(opts.clone()).await.map(JsValue::from) };
        self.guarded(Box::pin(call), &opts).await.map(JsCast::unchecked_into).map_err(|e| js_err(self.settle(e)))
    }

    /// Stops drawing the log-density layer.
    #[wasm_bindgen(js_name = clearDensity)]
    pub fn clear_density(&self) -> Result<(), JsError> {
        *self.heat.borrow_mut() = None;
        self.redraw().map_err(js_err)
    }

    /// Forgets the kept copy of the model at `url` (resolved against the page), or of every
    /// model without one: the next `Sampler.create` of it downloads again.
    #[wasm_bindgen(js_name = clearModelCache)]
    pub async fn clear_model_cache(url: Option<String>) {
        fetch::forget_models(url.map(|u| absolute_url(&u))).await;
    }

    /// How many WebGPU devices this page has opened (all samplers share one).
    #[wasm_bindgen(js_name = webgpuDevicesOpened)]
    pub fn webgpu_devices_opened() -> u32 {
        device::devices_opened()
    }

    /// Resource counters for long sessions: `{ gpuBuffersLive, gpuBuffersCreated,
    /// gpuBuffersReused, wasmMemoryBytes, disposed }` (GPU counts are 0 on the CPU backend).
    pub fn stats(&self) -> JsValue {
        let pool = self.engine().ok().and_then(|e| e.gpu()).map(|g| g.stats().pool).unwrap_or_default();
        let memory = get(&get(&wasm_bindgen::memory(), "buffer"), "byteLength").as_f64().unwrap_or(0.0);
        object(&[
            ("gpuBuffersLive", JsValue::from(pool.live as f64)),
            ("gpuBuffersCreated", JsValue::from(pool.created as f64)),
            ("gpuBuffersReused", JsValue::from(pool.reused as f64)),
            ("wasmMemoryBytes", JsValue::from(memory)),
            ("disposed", JsValue::from(self.disposed.get())),
        ])
    }

    /// One worker's share of a request: samples `start..end` of `sample(opts)` (noise and labels
    /// of those rows of the whole batch), with their trajectory frames. Resolves with
    /// `{ samples, labels, frames: [{ t, data }], nfe, acceptedSteps, rejectedSteps }`.
    #[wasm_bindgen(js_name = solveRows)]
    pub async fn solve_rows(&self, opts: JsValue, start: u32, end: u32) -> Result<JsValue, JsError> {
        self.solve_rows_inner(opts, start, end).await.map_err(js_err)
    }

    /// Frees the model's engine, the kept samples, the workers and the weights; cancels the call
    /// in flight (it rejects with "the sampler was disposed"). Idempotent; safe during a call.
    pub fn dispose(&self) {
        if self.disposed.replace(true) {
            return;
        }
        if let Some(engine) = self.engine.borrow_mut().take() {
            engine.stop();
        }
        self.kept.borrow_mut().take();
        self.heat.borrow_mut().take();
        std::mem::take(&mut *self.bytes.borrow_mut());
        // Settle every call in flight now, even one waiting on GPU work already submitted.
        for (_, stop) in std::mem::take(&mut *self.stops.borrow_mut()) {
            let _ = stop.call0(&JsValue::NULL);
        }
    }
}

impl Sampler {
    async fn create_inner(opts: JsValue) -> crate::Result<Sampler> {
        let (e, cb) = options::read("Sampler.create", &opts, &["onProgress", "signal"])?;
        e.check_known(
            "Sampler.create",
            &[
                "model",
                "declaration",
                "backend",
                "canvas",
                "workers",
                "maxBindingBytes",
                "maxDownloadBytes",
                "downloadTimeoutMs",
                "cache",
                "testAdapterDelayMs",
                "testFallbackAsHardware",
                "testLinearVariant",
            ],
        )?;
        let cache = match e.get("cache") {
            None | Some(Value::Bool(true)) => fetch::CacheMode::Use,
            Some(Value::Bool(false)) => fetch::CacheMode::Off,
            Some(Value::Str(s)) if s == "use" => fetch::CacheMode::Use,
            Some(Value::Str(s)) if s == "revalidate" => fetch::CacheMode::Revalidate,
            Some(_) => {
                return Err(Error::InvalidOption {
                    option: "cache",
                    reason: "must be true (the default: a kept copy loads without a request), \"revalidate\" or false"
                        .into(),
                });
            }
        };
        let backend = e.string("backend")?.unwrap_or("auto").to_string();
        if !["auto", "webgpu", "cpu"].contains(&backend.as_str()) {
            return Err(Error::InvalidOption {
                option: "backend",
                reason: format!("unknown backend `{}` (auto, webgpu or cpu)", shown(&backend, 40)),
            });
        }
        let adapter_test = device::AdapterTest {
            delay_ms: match e.get("testAdapterDelayMs") {
                None => None,
                Some(_) => Some(e.number("testAdapterDelayMs", 0.0, 0.0, 60_000.0)? as i32),
            },
            fallback_as_hardware: e.flag("testFallbackAsHardware", false)?,
        };
        // Tests force each linear kernel variant on the page's device ("tuned" lifts it).
        let force_linear = match e.string("testLinearVariant")? {
            None => None,
            Some("tuned") => Some(None),
            Some(name) => match crate::gpu::tuning::LinearVariant::from_name(name) {
                Some(v) => Some(Some(v)),
                None => {
                    return Err(Error::InvalidOption {
                        option: "testLinearVariant",
                        reason: "a linear kernel variant (registers4x4, tiled64, tiled128) or \"tuned\"".into(),
                    });
                }
            },
        };
        let given = |bytes: Vec<u8>| {
            let note = "given as bytes".into();
            (bytes, fetch::Kept::Known(fetch::Provenance { source: "bytes", kept: "none", note }))
        };
        let model_v = get(&opts, "model");
        let (bytes, kept) = if let Some(url) = model_v.as_string() {
            let limits = fetch::Limits {
                max_bytes: e.number("maxDownloadBytes", fetch::DEFAULT_MAX_BYTES, 1.0, fetch::MAX_MAX_BYTES)?,
                timeout_ms: e.number("downloadTimeoutMs", fetch::DEFAULT_TIMEOUT_MS, 1.0, 3_600_000.0)?,
            };
            fetch::fetch_model(&absolute_url(&url), &cb, &limits, cache).await?
        } else if let Some(arr) = model_v.dyn_ref::<js_sys::Uint8Array>() {
            given(arr.to_vec())
        } else if let Some(buf) = model_v.dyn_ref::<js_sys::ArrayBuffer>() {
            given(js_sys::Uint8Array::new(buf).to_vec())
        } else {
            return Err(Error::InvalidOption {
                option: "model",
                reason: "must be a URL string, a Uint8Array or an ArrayBuffer".into(),
            });
        };
        // A declaration passed beside an ONNX file (a JSON string or a plain object) says what
        // the graph is when its metadata does not.
        let declaration = match get(&opts, "declaration") {
            v if v.is_undefined() || v.is_null() => None,
            v if v.is_string() => v.as_string(),
            v if v.is_object() => js_sys::JSON::stringify(&v).ok().and_then(|s| s.as_string()),
            _ => {
                return Err(Error::InvalidOption {
                    option: "declaration",
                    reason: "must be a JSON string or an object".into(),
                });
            }
        };
        mark("pushforward:model-fetched");
        let model = match &declaration {
            Some(d) => crate::onnx::load(&bytes, Some(d))?,
            None => Model::from_bytes(&bytes)?,
        };
        let canvas = match get(&opts, "canvas") {
            v if v.is_undefined() || v.is_null() => None,
            v => Some(v.dyn_into::<web_sys::HtmlCanvasElement>().map_err(|_| Error::InvalidOption {
                option: "canvas",
                reason: "must be an HTMLCanvasElement".into(),
            })?),
        };
        let cores = get(&get(&js_sys::global(), "navigator"), "hardwareConcurrency").as_f64().unwrap_or(1.0);
        let workers = match e.get("workers") {
            None => (cores as u32).clamp(1, MAX_WORKERS),
            Some(Value::Str(s)) if s == "auto" => (cores as u32).clamp(1, MAX_WORKERS),
            _ => e.whole("workers", 0, 0, MAX_WORKERS as usize)? as u32,
        };
        let max_binding_bytes = match e.get("maxBindingBytes") {
            None => None,
            Some(_) => Some(e.whole("maxBindingBytes", 0, 4, 1 << 50)? as u64),
        };
        // The workers boot while `auto`'s probe is out; a 2-D model's after the small first
        // request the page's thread solves meanwhile (`engine::page_thread_while_starting`):
        // booting beside it took the core it ran on (2-core machines: ~70 → 270–330 ms). On a
        // hardware adapter they are stopped.
        let points = matches!(&model.config.data, DataConfig::Points2d { .. });
        let starting =
            (workers > 0 && backend != "webgpu").then(|| pool::start(&bytes, workers, declaration.clone(), points));
        // A 2-D model's first samples take the CPU ~70–330 ms, sooner than a cold
        // adapter answers (130–340 ms in a fresh headless Chromium, part of it blocking this
        // thread) and a device opens: `auto` starts it on the CPU and asks for the adapter after
        // the first sample; a hardware adapter takes over at the next `sample()` after it answers
        // (`adopt_late_adapter`). Image models wait for the answer, asked once the bytes are in
        // (sent first, it delayed the download by ~200 ms): a batch of images costs the CPU
        // seconds.
        let cpu_first = backend == "auto"
            && starting.is_some()
            && matches!(&model.config.data, DataConfig::Points2d { .. })
            && device::webgpu_present();
        let late = cpu_first.then(|| device::LateAnswer::not_asked(adapter_test));
        let answer = match backend == "auto" && !cpu_first {
            true => Some(device::start_probe(adapter_test).finish().await),
            false => None,
        };
        // `auto`: WebGPU on a hardware adapter; the wasm CPU kernels when WebGPU is missing or the
        // adapter is a software fallback (SwiftShader is ~50× slower than wasm SIMD here).
        let (use_gpu, reason) = match (&answer, &late) {
            (Some(answer), _) => answer.choice(),
            (None, Some(_)) => (false, CPU_FIRST.to_string()),
            (None, None) if backend == "cpu" => (false, "the CPU backend was requested".to_string()),
            (None, None) => (true, "the WebGPU backend was requested".to_string()),
        };
        if answer.is_some() && backend == "auto" {
            mark("pushforward:adapter-answered");
        }
        let mut canvas = canvas;
        let (engine, reason) = if use_gpu {
            match engine::open_gpu(&model, canvas.as_ref(), max_binding_bytes).await {
                Ok(engine) => {
                    drop(starting); // stops the workers it started
                    (engine, reason)
                }
                // An explicit request fails loudly; `auto` falls back and says why.
                Err(e) if backend == "webgpu" => {
                    return Err(Error::Gpu(format!("the WebGPU backend is unavailable: {e}")));
                }
                Err(e) => {
                    canvas = canvas.as_ref().map(engine::fresh_canvas_like);
                    let why = format!("WebGPU failed to start ({e}); using the wasm CPU kernels");
                    engine::open_cpu(&model, starting, why)?
                }
            }
        } else {
            engine::open_cpu(&model, starting, reason)?
        };
        if let (Some(force), Some(g)) = (force_linear, engine.gpu()) {
            g.force_linear(force);
        }
        // The weights stay for workers the sampler may need later: a CPU fallback after WebGPU
        // loses its device, or (while an adapter's answer is out) none once WebGPU takes over.
        let keep_bytes = matches!(engine, Engine::Gpu { .. }) || late.is_some();
        Ok(Sampler {
            engine: RefCell::new(Some(Rc::new(engine))),
            model,
            bytes: RefCell::new(if keep_bytes { bytes } else { Vec::new() }),
            workers,
            declaration,
            canvas: RefCell::new(canvas),
            backend_reason: RefCell::new(reason),
            late_adapter: RefCell::new(late),
            provenance: kept.provenance().await,
            kept: RefCell::default(),
            heat: RefCell::default(),
            disposed: Cell::new(false),
            stops: RefCell::default(),
            next_call: Cell::new(0),
        })
    }

    /// Runs a call so that its promise settles as soon as the sampler is disposed or the call's
    /// `signal` aborts, whatever it is waiting on (a GPU queue already fed minutes of work, a
    /// worker, a download): the work itself is stopped where it can be (steps check the signal,
    /// workers are terminated) and otherwise finishes unobserved.
    ///
    /// One copy for every call: the call is a boxed future of a `JsValue` (this poll loop was
    /// compiled once per exported method before, ~10 KB of the wasm).
    async fn guarded(
        &self,
        call: Pin<Box<dyn Future<Output = crate::Result<JsValue>> + '_>>,
        opts: &JsValue,
    ) -> crate::Result<JsValue> {
        if self.disposed.get() {
            return Err(Error::Disposed);
        }
        let id = self.next_call.get();
        self.next_call.set(id.wrapping_add(1));
        let mut resolve_fn = None;
        let stop = js_sys::Promise::new(&mut |resolve, _| resolve_fn = Some(resolve));
        let resolve = resolve_fn.expect("the executor runs at once");
        self.stops.borrow_mut().push((id, resolve.clone()));
        let signal = get(opts, "signal").dyn_into::<web_sys::AbortSignal>().ok();
        if let Some(s) = &signal {
            if s.aborted() {
                let _ = resolve.call0(&JsValue::NULL);
            }
            let _ = s.add_event_listener_with_callback("abort", &resolve);
        }
        let mut call = call;
        let mut stop = std::pin::pin!(JsFuture::from(stop));
        let out = std::future::poll_fn(|cx| {
            use std::task::Poll;
            if let Poll::Ready(r) = call.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            match stop.as_mut().poll(cx) {
                Poll::Ready(_) => {
                    Poll::Ready(Err(if self.disposed.get() { Error::Disposed } else { Error::Cancelled }))
                }
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        if let Some(s) = &signal {
            let _ = s.remove_event_listener_with_callback("abort", &resolve);
        }
        self.stops.borrow_mut().retain(|(i, _)| *i != id);
        out
    }

    /// The engine, or "disposed".
    fn engine(&self) -> crate::Result<Rc<Engine>> {
        self.engine.borrow().clone().ok_or(Error::Disposed)
    }

    /// A call's error as the caller sees it: whatever went wrong after `dispose()` is "disposed".
    fn settle(&self, e: Error) -> Error {
        if self.disposed.get() { Error::Disposed } else { e }
    }

    /// Ok unless the sampler was disposed meanwhile.
    fn still_alive(&self) -> crate::Result<()> {
        if self.disposed.get() { Err(Error::Disposed) } else { Ok(()) }
    }

    async fn sample_inner(&self, opts: JsValue) -> crate::Result<JsValue> {
        let (entries, cb) = options::read("sample", &opts, &["onProgress", "signal"])?;
        let request = contract::parse_sample(&self.model.config, &entries)?;
        let t0 = now_ms();
        self.adopt_late_adapter().await?;
        let engine = self.live_engine().await?;
        let cancelled = || cb.aborted() || self.disposed.get();
        let (out, profile) = engine.solve(&self.model.config, &request, &entries, &cb, &cancelled).await?;
        self.still_alive()?;
        let sample_ms = now_ms() - t0;
        let o = &request.options;
        let kept = Rc::new(Kept { out, request: request.clone(), entries });
        *self.kept.borrow_mut() = Some(kept.clone());
        if let Some(canvas) = self.canvas.borrow().as_ref() {
            let heat = self.heat.borrow();
            let picture = Picture { config: &self.model.config, canvas, heat: heat.as_ref() };
            let states: Vec<_> = kept.out.chunks.iter().map(|c| &c.samples).collect();
            picture.draw(&engine, &kept.out, &states, o.n, engine::with_paths(&request))?;
        }
        // `auto`'s CPU-first start asks for the adapter once the first samples are on screen:
        // after the next animation frame, since the request blocks this thread for a while.
        if let Some(late) = self.late_adapter.borrow().clone() {
            wasm_bindgen_futures::spawn_local(async move {
                let _ = next_animation_frame().await;
                late.ask();
            });
        }
        let samples =
            if request.return_samples { Some(engine.core().download(&kept.out).await?.samples) } else { None };
        if let Some(g) = engine.gpu() {
            g.finish().await?;
        }
        self.still_alive()?;
        let stats = kept.out.stats;
        let obj = object(&[
            ("backend", engine.kind().into()),
            ("nfe", JsValue::from(stats.nfe as f64)),
            ("acceptedSteps", JsValue::from(stats.accepted as f64)),
            ("rejectedSteps", JsValue::from(stats.rejected as f64)),
            ("sampleMs", JsValue::from(sample_ms)),
            ("drawMs", JsValue::from(now_ms() - t0 - sample_ms)),
            ("n", JsValue::from(o.n as f64)),
        ]);
        if let Some(p) = profile {
            let _ = js_sys::Reflect::set(&obj, &"profile".into(), &profile_object(&p));
        }
        // Where an image grid was drawn, for captions over it (the demo labels the classes).
        if let Some(canvas) = self.canvas.borrow().as_ref()
            && let Some(g) = render::GridPlot::for_model(&self.model.config, o.n, 1)
        {
            let (w, h) = (canvas.width().max(1) as usize, canvas.height().max(1) as usize);
            let g = g.fit(w, h);
            let (x, y) = g.origin(w, h);
            let num = |v: usize| JsValue::from(v as f64);
            let grid = object(&[
                ("cols", num(g.cols)),
                ("rows", num(g.rows())),
                ("x", num(x)),
                ("y", num(y)),
                ("cellWidth", num(g.width * g.scale + g.scale)),
                ("cellHeight", num(g.height * g.scale + g.scale)),
            ]);
            let _ = js_sys::Reflect::set(&obj, &"grid".into(), &grid);
        }
        if let Some(s) = samples {
            let _ = js_sys::Reflect::set(&obj, &"samples".into(), &js_sys::Float32Array::from(s.data()));
            let _ = js_sys::Reflect::set(&obj, &"labels".into(), &js_sys::Uint32Array::from(&kept.out.labels[..]));
        }
        Ok(obj)
    }

    /// Draws the kept solve at `t` (or nothing, if there is no canvas or no solve yet).
    fn draw_kept(&self, t: f32) -> crate::Result<()> {
        let engine = self.engine()?;
        let canvas = self.canvas.borrow();
        let Some(canvas) = canvas.as_ref() else {
            return Err(Error::InvalidOption { option: "canvas", reason: "this sampler has no canvas".into() });
        };
        let Some(kept) = self.kept.borrow().clone() else {
            return Err(Error::InvalidOption {
                option: "t",
                reason: "nothing sampled yet: call sample() first".into(),
            });
        };
        let states = engine::states_at(&engine, &kept, t)?;
        let heat = self.heat.borrow();
        let picture = Picture { config: &self.model.config, canvas, heat: heat.as_ref() };
        picture.draw(&engine, &kept.out, &states.iter().collect::<Vec<_>>(), kept.request.options.n, false)
    }

    /// Draws the kept samples again (after the density layer changed), if there are any.
    fn redraw(&self) -> crate::Result<()> {
        if self.kept.borrow().is_some() && self.canvas.borrow().is_some() { self.draw_kept(1.0) } else { Ok(()) }
    }

    async fn animate_inner(&self, opts: JsValue) -> crate::Result<()> {
        let (e, cb) = options::read("animate", &opts, &["signal"])?;
        let duration = contract::parse_animation(&e)?;
        let Some(last) = self.kept.borrow().clone() else {
            return Err(Error::InvalidOption { option: "animate", reason: "call sample() first".into() });
        };
        if last.request.paths != Paths::All {
            // Re-solve keeping every sample's state (capped by thinning, see SampleOptions).
            let mut entries = last.entries.clone();
            entries.0.retain(|(k, _)| k != "trajectories" && k != "returnSamples");
            entries.0.push(("trajectories".into(), Value::Str("all".into())));
            let request = contract::parse_sample(&self.model.config, &entries)?;
            let engine = self.live_engine().await?;
            let cancelled = || cb.aborted() || self.disposed.get();
            let (out, _) = engine.solve(&self.model.config, &request, &entries, &cb, &cancelled).await?;
            self.still_alive()?;
            *self.kept.borrow_mut() = Some(Rc::new(Kept { out, request, entries }));
        }
        let start = now_ms();
        loop {
            next_animation_frame().await?;
            if cb.aborted() {
                return Err(Error::Cancelled);
            }
            self.still_alive()?;
            let t = ((now_ms() - start) / duration).min(1.0) as f32;
            self.draw_kept(t)?;
            if t >= 1.0 {
                return Ok(());
            }
        }
    }

    async fn density_inner(&self, opts: JsValue) -> crate::Result<JsValue> {
        let (e, _) = options::read("density", &opts, &[])?;
        let (res, steps) = contract::parse_density(&e)?;
        let DataConfig::Points2d { range } = self.model.config.data else {
            return Err(Error::InvalidOption {
                option: "model",
                reason: "log-densities are for 2-D point models".into(),
            });
        };
        let t0 = now_ms();
        let engine = self.live_engine().await?;
        let log_p = engine.core().log_density_grid(range, res, res, steps).await?;
        self.still_alive()?;
        let ms = now_ms() - t0;
        let cell = (range[0][1] - range[0][0]) as f64 * (range[1][1] - range[1][0]) as f64 / (res * res) as f64;
        let integral: f64 = log_p.iter().map(|&l| (l as f64).exp() * cell).sum();
        *self.heat.borrow_mut() = Some(render::HeatLayer::from_log_density(res, res, &log_p));
        self.redraw()?;
        Ok(object(&[
            ("logDensity", js_sys::Float32Array::from(&log_p[..]).into()),
            ("width", JsValue::from(res as f64)),
            ("height", JsValue::from(res as f64)),
            ("integral", JsValue::from(integral)),
            ("ms", JsValue::from(ms)),
        ]))
    }

    async fn paths_inner(&self, points: Vec<f32>, opts: JsValue) -> crate::Result<JsValue> {
        let (e, _) = options::read("pathsFrom", &opts, &[])?;
        let (solver, steps) = contract::parse_paths(&e)?;
        if points.is_empty() || !points.len().is_multiple_of(2) || points.len() > 2 * contract::MAX_CHOSEN_POINTS {
            return Err(Error::InvalidOption {
                option: "points",
                reason: format!("pathsFrom needs 1..={} points as [x, y, …]", contract::MAX_CHOSEN_POINTS),
            });
        }
        let n = points.len() / 2;
        let x0 = crate::Tensor::new(vec![n, 2], points)?;
        let engine = self.live_engine().await?;
        let frames = engine.core().paths_from(&x0, solver, steps).await?;
        self.still_alive()?;
        let times: Vec<f32> = frames.iter().map(|(t, _)| *t).collect();
        let paths: Vec<f32> = frames.iter().flat_map(|(_, f)| f.data().iter().copied()).collect();
        Ok(object(&[
            ("times", js_sys::Float32Array::from(&times[..]).into()),
            ("paths", js_sys::Float32Array::from(&paths[..]).into()),
        ]))
    }

    async fn field_inner(&self, opts: JsValue) -> crate::Result<js_sys::Float32Array> {
        let (e, _) = options::read("velocityField", &opts, &[])?;
        let (t, res) = contract::parse_field(&e)?;
        let DataConfig::Points2d { range } = self.model.config.data else {
            return Err(Error::InvalidOption {
                option: "model",
                reason: "the flow field is drawn for 2-D point models".into(),
            });
        };
        let engine = self.live_engine().await?;
        let v = engine.core().velocity_grid(range, res, t).await?;
        self.still_alive()?;
        Ok(js_sys::Float32Array::from(v.data()))
    }

    async fn solve_rows_inner(&self, opts: JsValue, start: u32, end: u32) -> crate::Result<JsValue> {
        let engine = self.engine()?;
        let Engine::Cpu { sampler, .. } = &*engine else {
            return Err(Error::InvalidOption { option: "backend", reason: "solveRows runs on the CPU backend".into() });
        };
        let (entries, cb) = options::read("solveRows", &opts, &["onProgress"])?;
        let request = contract::parse_sample(&self.model.config, &entries)?;
        let mut progress = |p: Progress| {
            cb.report(&progress_event(p));
            ControlFlow::Continue(())
        };
        if request.profile {
            crate::profile::start();
        }
        let t0 = crate::host::now_ms();
        let out = sampler.sample_rows_async(&request.options, start as usize..end as usize, &mut progress).await;
        let busy_ms = crate::host::now_ms() - t0;
        // Only a profiled call stops the recording (another call may be running beside it).
        let kernels = if request.profile { crate::profile::finish() } else { Vec::new() };
        let out = out?;
        let frames = js_sys::Array::new();
        for (t, f) in &out.frames {
            frames.push(&object(&[("t", JsValue::from(*t)), ("data", js_sys::Float32Array::from(f.data()).into())]));
        }
        Ok(object(&[
            ("samples", js_sys::Float32Array::from(out.samples.data()).into()),
            ("labels", js_sys::Uint32Array::from(&out.labels[..]).into()),
            ("frames", frames.into()),
            ("nfe", JsValue::from(out.stats.nfe as f64)),
            ("acceptedSteps", JsValue::from(out.stats.accepted as f64)),
            ("rejectedSteps", JsValue::from(out.stats.rejected as f64)),
            ("busyMs", JsValue::from(busy_ms)),
            ("kernels", kernel_rows(&kernels)),
        ]))
    }

    /// Acts on `auto`'s adapter answer once it has come after `create` returned on the CPU: a
    /// hardware adapter takes over, on a fresh canvas put where the old one is (that one holds a
    /// 2-D context; `sampler.canvas` is the new one), and the workers stop; any other answer
    /// only says why the CPU stays. The move waits for a `sample()` (which draws anew) that no
    /// other call runs beside.
    async fn adopt_late_adapter(&self) -> crate::Result<()> {
        let Some(why) = self.late_adapter_says_gpu() else { return Ok(()) };
        if self.stops.borrow().len() > 1 {
            return Ok(());
        }
        self.late_adapter.borrow_mut().take();
        let old_canvas = self.canvas.borrow().clone();
        let fresh = old_canvas.as_ref().map(engine::fresh_canvas);
        match engine::open_gpu(&self.model, fresh.as_ref(), None).await {
            Ok(next) => {
                self.still_alive()?;
                if let (Some(old), Some(fresh)) = (&old_canvas, &fresh) {
                    engine::put_in_place(old, fresh);
                }
                *self.canvas.borrow_mut() = fresh;
                // The CPU engine's workers stop when the last call on it ends (`Engine`'s Drop).
                self.engine.borrow_mut().replace(Rc::new(next));
                self.kept.borrow_mut().take();
                *self.backend_reason.borrow_mut() = format!(
                    "{why} (it answered after Sampler.create; the samples until then ran on the wasm CPU kernels)"
                );
            }
            Err(e) => self.cpu_stays(&format!("WebGPU failed to start on the {why} ({e}); using the wasm CPU kernels")),
        }
        Ok(())
    }

    /// Whether `auto`'s late adapter answer (if it has come) moves the sampler to WebGPU, and
    /// why; an answer that keeps the CPU is settled here (`info()` calls this too).
    fn late_adapter_says_gpu(&self) -> Option<String> {
        let (use_gpu, why) = self.late_adapter.borrow().as_ref()?.choice()?;
        if use_gpu {
            return Some(why);
        }
        self.late_adapter.borrow_mut().take();
        self.cpu_stays(&why);
        None
    }

    /// The CPU stays for `why` (in place of "until WebGPU's adapter answers" in `backendReason`), and
    /// the weights kept for the workers of a move are let go.
    fn cpu_stays(&self, why: &str) {
        let mut reason = self.backend_reason.borrow_mut();
        *reason = reason.replacen(CPU_FIRST, why, 1);
        std::mem::take(&mut *self.bytes.borrow_mut());
    }

    /// The engine, after recovering from a lost WebGPU device: the page's device is reopened
    /// and the weights uploaded again; if WebGPU cannot come back, the CPU backend takes over
    /// on a fresh canvas (the old one holds a WebGPU context). `backendReason` says which.
    async fn live_engine(&self) -> crate::Result<Rc<Engine>> {
        let engine = self.engine()?;
        let Some(lost) = engine.gpu().filter(|g| g.context().is_lost()) else { return Ok(engine) };
        device::forget(lost);
        let canvas = self.canvas.borrow().clone();
        let (next, note) = match engine::open_gpu(&self.model, canvas.as_ref(), None).await {
            Ok(e) => (e, "the WebGPU device was lost and has been reopened".to_string()),
            Err(e) => {
                let fresh = canvas.as_ref().map(engine::fresh_canvas_like);
                *self.canvas.borrow_mut() = fresh;
                let bytes = self.bytes.borrow().clone();
                let why =
                    format!("the WebGPU device was lost and could not be reopened ({e}); using the wasm CPU kernels");
                let starting =
                    (self.workers > 0).then(|| pool::start(&bytes, self.workers, self.declaration.clone(), false));
                engine::open_cpu(&self.model, starting, why)?
            }
        };
        self.still_alive()?;
        let next = Rc::new(next);
        *self.engine.borrow_mut() = Some(next.clone());
        // The kept solve lived on the lost device.
        self.kept.borrow_mut().take();
        let mut reason = self.backend_reason.borrow_mut();
        let before_loss = find_text(&reason, "; the WebGPU device was lost").map_or(reason.as_str(), |i| &reason[..i]);
        *reason = format!("{before_loss}; {note}");
        Ok(next)
    }
}

/// `{ kernels: [{ name, calls, ms }], workers: [{ start, end, busyMs }] }`.
fn profile_object(p: &engine::SolveProfile) -> JsValue {
    let workers = js_sys::Array::new();
    for w in &p.workers {
        workers.push(&object(&[
            ("start", JsValue::from(w.rows.start as f64)),
            ("end", JsValue::from(w.rows.end as f64)),
            ("busyMs", JsValue::from(w.busy_ms)),
        ]));
    }
    object(&[("kernels", kernel_rows(&p.kernels)), ("workers", workers.into())])
}

fn kernel_rows(rows: &[crate::profile::KernelTime]) -> JsValue {
    let out = js_sys::Array::new();
    for k in rows {
        out.push(&object(&[
            ("name", JsValue::from_str(&k.name)),
            ("calls", JsValue::from(k.calls as f64)),
            ("ms", JsValue::from(k.ms)),
        ]));
    }
    out.into()
}

/// Resolves on the next `requestAnimationFrame`.
async fn next_animation_frame() -> crate::Result<()> {
    let window = web_sys::window()
        .ok_or_else(|| Error::InvalidOption { option: "animate", reason: "animate() needs a window".into() })?;
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = window.request_animation_frame(&resolve);
    });
    JsFuture::from(promise).await.map(|_| ()).map_err(|_| Error::Gpu("animation frame failed".into()))
}

/// A `performance.mark` (the steps of `Sampler.create` in a browser's performance panel, and
/// the bench's first-frame breakdown).
pub(crate) fn mark(name: &str) {
    let perf = get(&js_sys::global(), "performance");
    if let Ok(f) = get(&perf, "mark").dyn_into::<js_sys::Function>() {
        let _ = f.call1(&perf, &JsValue::from_str(name));
    }
}
