//! The `#[wasm_bindgen]` surface, and nothing else: parse JS options, call the library, draw,
//! turn every error into a `JsError` with a readable message.
//!
//! ```js
//! import init, { Sampler } from './pkg/pushforward.js';
//! await init();
//! const s = await Sampler.create({ canvas, model: 'models/moons.safetensors', backend: 'cpu' });
//! const r = await s.sample({ n: 4096, solver: 'heun', steps: 8, seed: 1, returnSamples: true });
//! ```

use crate::Backend;
use crate::cpu::CpuBackend;
use crate::dual::{Dual, DualTensor};
use crate::gpu::{GpuBackend, GpuOptions, GpuTensor};
use crate::model::{DataConfig, Model};
use crate::ode::Solver;
use crate::render::gpu::{GpuCanvas, Scene};
use crate::render::{self, GridPlot, PointsPlot, Rgba};
use crate::sampler::{BackendOutput, Labels, Progress, SampleOptions, Sampler as CoreSampler};
use serde::Deserialize;
use std::cell::RefCell;
use std::ops::ControlFlow;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::{Clamped, JsCast};
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A plain JS object from (key, value) pairs.
fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in fields {
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

#[wasm_bindgen(module = "/src/cpu_workers.js")]
extern "C" {
    /// The worker pool of the CPU backend (src/cpu_workers.js).
    type CpuPool;
    #[wasm_bindgen(static_method_of = CpuPool, js_name = create, catch)]
    async fn create_pool(model: js_sys::Uint8Array, count: u32) -> Result<CpuPool, JsValue>;
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
    fn terminate(this: &CpuPool);
}

/// The most CPU workers a sampler starts (each holds a wasm instance and the weights).
const MAX_WORKERS: u32 = 8;

/// Trajectory lines are drawn for this many samples (more would hide the density).
const MAX_PATHS: usize = 300;

/// The data options of `sample()`, as JS passes them (camelCase). `label`, `trajectories`,
/// `onProgress` and `signal` are read separately: they are not plain data of one type.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct JsSampleOptions {
    // Counts arrive as JS numbers: read as f64 so that 2.5 or 1e12 (beyond a 32-bit usize)
    // get a message naming the option rather than a serde type error.
    n: Option<f64>,
    solver: Option<String>,
    steps: Option<f64>,
    rtol: Option<f32>,
    atol: Option<f32>,
    max_steps: Option<f64>,
    seed: Option<f64>,
    guidance: Option<f32>,
    /// SDE noise level ε (0 or absent: the ODE).
    noise: Option<f32>,
    return_samples: bool,
}

/// The sampler on whichever backend was chosen (the library is generic; JS sees one class),
/// with what `drawAt` needs of the last solve.
enum Engine {
    /// Kept frames are host copies: (t, [n, …] values). With a pool, solves run in workers.
    Cpu { sampler: CoreSampler<Dual<'static>>, pool: Option<CpuPool>, frames: RefCell<Vec<(f32, Vec<f32>)>> },
    /// The last solve stays on the GPU and is drawn from there.
    Gpu {
        sampler: CoreSampler<Dual<'static>>,
        gpu: &'static GpuBackend,
        canvas: Option<Box<GpuCanvas>>,
        kept: RefCell<Option<BackendOutput<DualTensor>>>,
    },
}

thread_local! {
    /// The page's one WebGPU device, shared by every sampler (and every embed) on the page. It is
    /// kept for the page's lifetime: a device is expensive to open and its pipelines and buffer
    /// pool are what make later samplers start fast.
    static SHARED_GPU: std::cell::Cell<Option<&'static GpuBackend>> = const { std::cell::Cell::new(None) };
    static GPU_OPENING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static GPU_DEVICES_OPENED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The shared device, opened on first use. Samplers created while it is being opened wait for
/// it instead of opening a second one.
async fn shared_gpu() -> crate::Result<&'static GpuBackend> {
    loop {
        if let Some(g) = SHARED_GPU.with(|c| c.get()) {
            return Ok(g);
        }
        if !GPU_OPENING.with(|c| c.replace(true)) {
            break;
        }
        sleep_ms(10).await;
    }
    let opened = GpuBackend::new_async(&GpuOptions::default()).await;
    GPU_OPENING.with(|c| c.set(false));
    let g: &'static GpuBackend = Box::leak(Box::new(opened?));
    GPU_DEVICES_OPENED.with(|c| c.set(c.get() + 1));
    SHARED_GPU.with(|c| c.set(Some(g)));
    Ok(g)
}

/// Resolves after `ms` milliseconds (setTimeout through `Reflect`, so it works in workers too).
async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        if let Ok(f) =
            js_sys::Reflect::get(&global, &"setTimeout".into()).and_then(|f| f.dyn_into::<js_sys::Function>())
        {
            let _ = f.call2(&global, &resolve, &JsValue::from(ms));
        } else {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

impl Engine {
    /// The sampler, whichever engine runs it.
    fn core(&self) -> &CoreSampler<Dual<'static>> {
        match self {
            Engine::Cpu { sampler, .. } | Engine::Gpu { sampler, .. } => sampler,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Engine::Cpu { .. } => "cpu",
            Engine::Gpu { .. } => "webgpu",
        }
    }

    fn adapter(&self) -> String {
        match self {
            Engine::Cpu { .. } => "wasm CPU kernels (simd128)".into(),
            Engine::Gpu { sampler, .. } => sampler.backend().name(),
        }
    }
}

/// The CPU engine, with a worker pool of `workers` (0: none) when workers can start.
async fn open_cpu_engine(
    model: &Model,
    bytes: &[u8],
    workers: u32,
    reason: String,
) -> Result<(Engine, String), JsError> {
    let sampler = CoreSampler::new(Dual::Cpu(CpuBackend), model).map_err(js_err)?;
    // Workers keep the page responsive and use every core; without them (0, or where workers
    // cannot start, e.g. a sandboxed frame) the solve runs on this thread.
    let (pool, reason) = if workers == 0 {
        (None, reason)
    } else {
        match CpuPool::create_pool(js_sys::Uint8Array::from(bytes), workers).await {
            Ok(pool) => (Some(pool), format!("{reason}; {workers} worker{}", if workers == 1 { "" } else { "s" })),
            Err(e) => {
                (None, format!("{reason}; workers unavailable ({}), solving on the page's thread", js_message(&e)))
            }
        }
    };
    Ok((Engine::Cpu { sampler, pool, frames: RefCell::default() }, reason))
}

/// The WebGPU engine on the page's shared device, drawing into `canvas` if given. With
/// `max_binding_bytes` it gets a device of its own that plans batches as if storage bindings
/// were that small (to exercise batch splitting; the option exists for tests).
async fn open_gpu_engine(
    model: &Model,
    canvas: Option<&web_sys::HtmlCanvasElement>,
    max_binding_bytes: Option<u64>,
) -> crate::Result<Engine> {
    let b: &'static GpuBackend = match max_binding_bytes {
        None => shared_gpu().await?,
        Some(bytes) => {
            let limits = crate::gpu::PlanLimits {
                max_binding_bytes: bytes,
                max_buffer_bytes: u64::MAX,
                max_workgroups_per_dim: u32::MAX,
            };
            Box::leak(Box::new(
                GpuBackend::new_async(&GpuOptions { limits: Some(limits), ..Default::default() }).await?,
            ))
        }
    };
    let sampler = CoreSampler::new(Dual::Gpu(b), model)?;
    let painter = canvas.map(|c| GpuCanvas::new(b, c.clone()).map(Box::new)).transpose()?;
    Ok(Engine::Gpu { sampler, gpu: b, canvas: painter, kept: RefCell::default() })
}

/// What one `sample()` produced, for the result object.
struct Solved {
    stats: crate::ode::SolveStats,
    labels: Vec<u32>,
    samples: Option<crate::Tensor>,
    sample_ms: f64,
}

/// A model loaded into a backend, drawing into an optional canvas.
#[wasm_bindgen]
pub struct Sampler {
    /// Replaced when a lost WebGPU device is reopened (or given up for the CPU).
    engine: RefCell<Rc<Engine>>,
    model: Model,
    /// The weights file, kept by WebGPU samplers for a CPU fallback's workers after device loss.
    bytes: Vec<u8>,
    workers: u32,
    canvas: Option<web_sys::HtmlCanvasElement>,
    backend_reason: RefCell<String>,
    last_options: RefCell<Option<SampleOptions>>,
    /// The model's log-density drawn under the samples (after `density()`).
    heat: RefCell<Option<render::HeatLayer>>,
}

#[wasm_bindgen]
impl Sampler {
    /// `Sampler.create({ canvas?, model: url | Uint8Array, backend?: 'auto' | 'cpu' | 'webgpu', onProgress? })`.
    pub async fn create(opts: JsValue) -> Result<Sampler, JsError> {
        let get = |k: &str| js_sys::Reflect::get(&opts, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
        let model_v = get("model");
        let on_progress = get("onProgress").dyn_into::<js_sys::Function>().ok();
        let bytes: Vec<u8> = if let Some(s) = model_v.as_string() {
            fetch_bytes(&s, on_progress.as_ref()).await?
        } else if let Some(arr) = model_v.dyn_ref::<js_sys::Uint8Array>() {
            arr.to_vec()
        } else if let Some(buf) = model_v.dyn_ref::<js_sys::ArrayBuffer>() {
            js_sys::Uint8Array::new(buf).to_vec()
        } else {
            return Err(JsError::new("`model` must be a URL string, a Uint8Array or an ArrayBuffer"));
        };
        let model = Model::from_bytes(&bytes).map_err(js_err)?;
        let backend = get("backend").as_string().unwrap_or_else(|| "auto".into());
        let canvas = get("canvas").dyn_into::<web_sys::HtmlCanvasElement>().ok();
        // `auto`: WebGPU on a hardware adapter; the wasm CPU kernels when WebGPU is missing or the
        // adapter is a software fallback (SwiftShader is ~50× slower than wasm SIMD here).
        let (use_gpu, reason) = match backend.as_str() {
            "cpu" => (false, "the CPU backend was requested".to_string()),
            "webgpu" => (true, "the WebGPU backend was requested".to_string()),
            "auto" => match probe_webgpu().await {
                WebGpuProbe::Missing => {
                    (false, "WebGPU is not available in this browser; using the wasm CPU kernels".into())
                }
                WebGpuProbe::NoAdapter => (false, "WebGPU found no adapter; using the wasm CPU kernels".into()),
                WebGpuProbe::Fallback(name) => (
                    false,
                    format!(
                        "the WebGPU adapter ({name}) is a software fallback, far slower than wasm SIMD; using the wasm CPU kernels"
                    ),
                ),
                WebGpuProbe::Hardware(name) => (true, format!("hardware WebGPU adapter {name}")),
            },
            other => return Err(JsError::new(&format!("unknown backend `{other}` (auto, webgpu or cpu)"))),
        };
        let workers = match get("workers") {
            v if v.is_undefined() || v.as_string().is_some_and(|s| s == "auto") => {
                let cores = js_sys::Reflect::get(
                    &js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or_default(),
                    &"hardwareConcurrency".into(),
                )
                .ok()
                .and_then(|v| v.as_f64())
                .unwrap_or(1.0);
                (cores as u32).clamp(1, MAX_WORKERS)
            }
            v => match v.as_f64() {
                Some(k) if k >= 0.0 && k.fract() == 0.0 && k <= MAX_WORKERS as f64 => k as u32,
                _ => return Err(JsError::new(&format!("workers must be 'auto' or an integer in 0..={MAX_WORKERS}"))),
            },
        };
        let max_binding_bytes = match get("maxBindingBytes") {
            v if v.is_undefined() => None,
            v => match v.as_f64() {
                Some(b) if b >= 4.0 && b.fract() == 0.0 && b <= 1e15 => Some(b as u64),
                _ => return Err(JsError::new("maxBindingBytes must be an integer number of bytes ≥ 4")),
            },
        };
        let (engine, reason) = if use_gpu {
            match open_gpu_engine(&model, canvas.as_ref(), max_binding_bytes).await {
                Ok(engine) => (engine, reason),
                // An explicit request fails loudly; `auto` falls back and says why.
                Err(e) if backend == "webgpu" => return Err(js_err(format!("WebGPU backend unavailable: {e}"))),
                Err(e) => {
                    open_cpu_engine(
                        &model,
                        &bytes,
                        workers,
                        format!("WebGPU failed to start ({e}); using the wasm CPU kernels"),
                    )
                    .await?
                }
            }
        } else {
            open_cpu_engine(&model, &bytes, workers, reason).await?
        };
        let bytes = if use_gpu { bytes } else { Vec::new() };
        Ok(Sampler {
            engine: RefCell::new(Rc::new(engine)),
            model,
            bytes,
            workers,
            canvas,
            backend_reason: RefCell::new(reason),
            last_options: RefCell::default(),
            heat: RefCell::default(),
        })
    }

    /// The model's config, parameter count, backend and why it was chosen.
    pub fn info(&self) -> Result<JsValue, JsError> {
        let config =
            js_sys::JSON::parse(&self.model.config.to_json()).map_err(|_| JsError::new("config is not JSON"))?;
        Ok(object(&[
            ("config", config),
            ("parameters", JsValue::from(self.model.param_count() as f64)),
            ("backend", self.engine().kind().into()),
            ("adapter", self.engine().adapter().into()),
            ("backendReason", self.backend_reason.borrow().as_str().into()),
        ]))
    }

    /// Samples, draws to the canvas (if any) and resolves with timings; with
    /// `returnSamples: true` also `samples` (Float32Array) and `labels`.
    pub async fn sample(&self, opts: JsValue) -> Result<JsValue, JsError> {
        let field = |k: &str| js_sys::Reflect::get(&opts, &k.into()).unwrap_or(JsValue::UNDEFINED);
        let on_progress = field("onProgress").dyn_into::<js_sys::Function>().ok();
        let signal = field("signal").dyn_into::<web_sys::AbortSignal>().ok();
        let (label, trajectories) = (field("label"), field("trajectories"));
        let o = self.parse_options(&opts)?;
        let options = self.to_options(&o, &label, &trajectories)?;

        let mut progress = |p: Progress| {
            if signal.as_ref().is_some_and(|s| s.aborted()) {
                return ControlFlow::Break(());
            }
            if let Some(f) = &on_progress {
                let _ = f.call1(&JsValue::NULL, &progress_event(p));
            }
            ControlFlow::Continue(())
        };
        let t0 = now_ms();
        let engine = self.live_engine().await?;
        let solved = match &*engine {
            Engine::Cpu { sampler, pool, frames } => {
                let out = match pool {
                    Some(pool) => {
                        let data = js_sys::Object::assign(
                            &js_sys::Object::new(),
                            &opts.clone().dyn_into::<js_sys::Object>().unwrap_or_default(),
                        );
                        for k in ["onProgress", "signal", "returnSamples"] {
                            let _ = js_sys::Reflect::delete_property(&data, &k.into());
                        }
                        let min_rows = if matches!(self.model.config.data, DataConfig::Image { .. }) { 1 } else { 256 };
                        let on_progress = on_progress.clone().map_or(JsValue::UNDEFINED, JsValue::from);
                        let signal = signal.clone().map_or(JsValue::UNDEFINED, JsValue::from);
                        let r = pool
                            .solve(data.into(), options.n as u32, min_rows, on_progress, signal)
                            .await
                            .map_err(|e| JsError::new(&js_message(&e)))?;
                        self.pooled_output(&options, &r).map_err(js_err)?
                    }
                    None => sampler.sample_async(&options, &mut progress).await.map_err(js_err)?,
                };
                let sample_ms = now_ms() - t0;
                let mut kept: Vec<(f32, Vec<f32>)> = out.frames.iter().map(|(t, f)| (*t, f.data().to_vec())).collect();
                if kept.is_empty() {
                    kept = vec![
                        (0.0, sampler.initial_noise(options.n, options.seed).map_err(js_err)?.into_data()),
                        (1.0, out.samples.data().to_vec()),
                    ];
                }
                let paths: Vec<Vec<f32>> = out.frames.iter().map(|(_, f)| f.data().to_vec()).collect();
                if let Some(canvas) = &self.canvas {
                    draw_rgba(canvas, &self.render_cpu(out.samples.data(), options.n, &paths, canvas))?;
                }
                *frames.borrow_mut() = kept;
                Solved { stats: out.stats, labels: out.labels, samples: Some(out.samples), sample_ms }
            }
            Engine::Gpu { sampler, gpu, canvas, kept } => {
                let out = sampler.sample_on_backend(&options, &mut progress).await.map_err(js_err)?;
                // Timed to the end of the GPU's work (nothing is read back to draw).
                gpu.finish().await.map_err(js_err)?;
                let sample_ms = now_ms() - t0;
                if let (Some(gc), Some(el)) = (canvas, &self.canvas) {
                    let with_paths = options.trajectory_every.is_some();
                    let heat = self.heat.borrow();
                    let scene = self.scene(
                        &out,
                        out.chunks.iter().map(|c| &c.samples).collect(),
                        options.n,
                        with_paths,
                        heat.as_ref(),
                        el,
                    );
                    gc.draw(gpu, &scene?, el.width(), el.height()).map_err(js_err)?;
                }
                let samples = if o.return_samples {
                    Some(sampler.download(&options, &out).await.map_err(js_err)?.samples)
                } else {
                    None
                };
                let solved = Solved { stats: out.stats, labels: out.labels.clone(), samples, sample_ms };
                *kept.borrow_mut() = Some(out);
                solved
            }
        };
        *self.last_options.borrow_mut() = Some(options.clone());
        if let Engine::Gpu { gpu, .. } = &*engine {
            gpu.finish().await.map_err(js_err)?;
        }
        let draw_ms = now_ms() - t0 - solved.sample_ms;
        let obj = object(&[
            ("backend", engine.kind().into()),
            ("nfe", JsValue::from(solved.stats.nfe as f64)),
            ("acceptedSteps", JsValue::from(solved.stats.accepted as f64)),
            ("rejectedSteps", JsValue::from(solved.stats.rejected as f64)),
            ("sampleMs", JsValue::from(solved.sample_ms)),
            ("drawMs", JsValue::from(draw_ms)),
            ("n", JsValue::from(options.n as f64)),
        ]);
        if o.return_samples {
            let samples = solved.samples.as_ref().map_or(&[][..], |s| s.data());
            let _ = js_sys::Reflect::set(&obj, &"samples".into(), &js_sys::Float32Array::from(samples));
            let _ = js_sys::Reflect::set(&obj, &"labels".into(), &js_sys::Uint32Array::from(&solved.labels[..]));
        }
        Ok(obj)
    }

    /// Draws the state at time `t` ∈ [0, 1] of the last solve (linear interpolation between
    /// the kept steps): noise at 0, samples at 1. For a time slider.
    #[wasm_bindgen(js_name = drawAt)]
    pub fn draw_at(&self, t: f32) -> Result<(), JsError> {
        let Some(canvas) = &self.canvas else { return Err(JsError::new("this sampler has no canvas")) };
        if !t.is_finite() {
            return Err(JsError::new("t must be a number in [0, 1]"));
        }
        let t = t.clamp(0.0, 1.0);
        let n = self.last_options.borrow().as_ref().map_or(0, |o| o.n);
        let seed = self.last_options.borrow().as_ref().map_or(0, |o| o.seed);
        match &*self.engine() {
            Engine::Cpu { frames, .. } => {
                let frames = frames.borrow();
                if frames.is_empty() {
                    return Err(JsError::new("nothing sampled yet: call sample() first"));
                }
                let state = interpolate(&frames, t);
                draw_rgba(canvas, &self.render_cpu(&state, n, &[], canvas))
            }
            Engine::Gpu { sampler, gpu, canvas: gc, kept } => {
                let kept = kept.borrow();
                let Some(out) = kept.as_ref() else {
                    return Err(JsError::new("nothing sampled yet: call sample() first"));
                };
                let Some(gc) = gc else { return Err(JsError::new("this sampler has no canvas")) };
                let b = sampler.backend();
                let mut states = Vec::with_capacity(out.chunks.len());
                for c in &out.chunks {
                    // The kept times: the frames (ending at the samples), or noise → samples.
                    let noise;
                    let mut times: Vec<(f32, &DualTensor)> = c.frames.iter().map(|(t, f)| (*t, f)).collect();
                    if times.is_empty() {
                        noise = sampler.noise_on_backend(seed, c.rows.start, c.rows.end).map_err(js_err)?;
                        times.push((0.0, &noise));
                    }
                    if times.last().is_none_or(|(t, _)| *t != 1.0) {
                        times.push((1.0, &c.samples));
                    }
                    let i = times.iter().rposition(|(ft, _)| *ft <= t).unwrap_or(0);
                    let state = match times.get(i + 1) {
                        Some(&(tb, b_t)) if tb > times[i].0 => {
                            let f = (t - times[i].0) / (tb - times[i].0);
                            b.lincomb(times[i].1, &[(-f, times[i].1), (f, b_t)]).map_err(js_err)?
                        }
                        _ => b.lincomb(times[i].1, &[]).map_err(js_err)?,
                    };
                    states.push(state);
                }
                let heat = self.heat.borrow();
                let scene = self.scene(out, states.iter().collect(), n, false, heat.as_ref(), canvas)?;
                gc.draw(gpu, &scene, canvas.width(), canvas.height()).map_err(js_err)
            }
        }
    }

    /// Shows the push-forward: re-solves the last request keeping every step, then plays it
    /// from noise (t = 0) to data (t = 1) over `duration` ms (default 2000).
    pub async fn animate(&self, opts: JsValue) -> Result<(), JsError> {
        let duration = js_sys::Reflect::get(&opts, &"duration".into()).ok().and_then(|v| v.as_f64()).unwrap_or(2000.0);
        if !(duration.is_finite() && duration > 0.0 && duration <= 600_000.0) {
            return Err(JsError::new("duration must be in (0, 600000] ms"));
        }
        let Some(mut o) = self.last_options.borrow().clone() else { return Err(JsError::new("call sample() first")) };
        if o.trajectory_every != Some(1) {
            o.trajectory_every = Some(1);
            let go = &mut |_| ControlFlow::Continue(());
            match &*self.live_engine().await? {
                Engine::Cpu { sampler, frames, .. } => {
                    let out = sampler.sample_async(&o, go).await.map_err(js_err)?;
                    *frames.borrow_mut() = out.frames.iter().map(|(t, f)| (*t, f.data().to_vec())).collect();
                }
                Engine::Gpu { sampler, kept, .. } => {
                    *kept.borrow_mut() = Some(sampler.sample_on_backend(&o, go).await.map_err(js_err)?);
                }
            }
        }
        let start = now_ms();
        loop {
            next_animation_frame().await?;
            let t = ((now_ms() - start) / duration).min(1.0) as f32;
            self.draw_at(t)?;
            if t >= 1.0 {
                return Ok(());
            }
        }
    }

    /// The model's log-density log p(x) on a `resolution`² grid over the plot box (2-D models),
    /// by integrating the exact divergence from data back to noise (`steps` RK4 steps), drawn
    /// under the samples from now on. Resolves with `{ logDensity, width, height, integral, ms }`
    /// (`integral`: Σ p·cell area over the box, ≈ 1 when the box holds the distribution).
    pub async fn density(&self, opts: JsValue) -> Result<JsValue, JsError> {
        let num = |k: &str, d: f64| js_sys::Reflect::get(&opts, &k.into()).ok().and_then(|v| v.as_f64()).unwrap_or(d);
        let (res, steps) = (num("resolution", 64.0), num("steps", 16.0));
        if !(whole_in(res, 2.0, 512.0) && whole_in(steps, 1.0, 1000.0)) {
            return Err(JsError::new("resolution must be an integer in 2..=512 and steps in 1..=1000"));
        }
        let DataConfig::Points2d { range } = self.model.config.data else {
            return Err(JsError::new("log-densities are for 2-D point models"));
        };
        let res = res as usize;
        let t0 = now_ms();
        let engine = self.live_engine().await?;
        let log_p = engine.core().log_density_grid(range, res, res, steps as usize).await.map_err(js_err)?;
        let ms = now_ms() - t0;
        let cell = (range[0][1] - range[0][0]) as f64 * (range[1][1] - range[1][0]) as f64 / (res * res) as f64;
        let integral: f64 = log_p.iter().map(|&l| (l as f64).exp() * cell).sum();
        *self.heat.borrow_mut() = Some(render::HeatLayer::from_log_density(res, res, &log_p));
        if self.last_options.borrow().is_some() && self.canvas.is_some() {
            self.draw_at(1.0)?;
        }
        Ok(object(&[
            ("logDensity", js_sys::Float32Array::from(&log_p[..]).into()),
            ("width", JsValue::from(res as f64)),
            ("height", JsValue::from(res as f64)),
            ("integral", JsValue::from(integral)),
            ("ms", JsValue::from(ms)),
        ]))
    }

    /// Paths from points you choose (noise at t = 0, e.g. where a user clicked) to t = 1, every
    /// step kept: `pathsFrom(Float32Array [x0, y0, x1, y1, …], { solver, steps })` resolves with
    /// `{ times: Float32Array, paths: Float32Array }`, `paths` = [times.length][n][2] flattened.
    #[wasm_bindgen(js_name = pathsFrom)]
    pub async fn paths_from(&self, points: Vec<f32>, opts: JsValue) -> Result<JsValue, JsError> {
        let get = |k: &str| js_sys::Reflect::get(&opts, &k.into()).unwrap_or(JsValue::UNDEFINED);
        let solver: Solver = get("solver").as_string().unwrap_or_else(|| "heun".into()).parse().map_err(js_err)?;
        let steps = get("steps").as_f64().unwrap_or(16.0);
        if !whole_in(steps, 1.0, 1000.0)
            || points.is_empty()
            || !points.len().is_multiple_of(2)
            || points.len() > 2 * 4096
        {
            return Err(JsError::new("pathsFrom needs 1..=4096 points as [x, y, …] and steps in 1..=1000"));
        }
        let n = points.len() / 2;
        let x0 = crate::Tensor::new(vec![n, 2], points).map_err(js_err)?;
        let engine = self.live_engine().await?;
        let frames = engine.core().paths_from(&x0, solver, steps as usize).await.map_err(js_err)?;
        let times: Vec<f32> = frames.iter().map(|(t, _)| *t).collect();
        let paths: Vec<f32> = frames.iter().flat_map(|(_, f)| f.data().iter().copied()).collect();
        Ok(object(&[
            ("times", js_sys::Float32Array::from(&times[..]).into()),
            ("paths", js_sys::Float32Array::from(&paths[..]).into()),
        ]))
    }

    /// The flow field v(x, t) on a `resolution`² grid over the plot box (cell centres, top row
    /// first): `velocityField({ t, resolution })` → Float32Array [resolution²][2].
    #[wasm_bindgen(js_name = velocityField)]
    pub async fn velocity_field(&self, opts: JsValue) -> Result<js_sys::Float32Array, JsError> {
        let num = |k: &str, d: f64| js_sys::Reflect::get(&opts, &k.into()).ok().and_then(|v| v.as_f64()).unwrap_or(d);
        let (t, res) = (num("t", 0.5), num("resolution", 20.0));
        if !whole_in(res, 1.0, 256.0) {
            return Err(JsError::new("resolution must be an integer in 1..=256"));
        }
        let DataConfig::Points2d { range } = self.model.config.data else {
            return Err(JsError::new("the flow field is drawn for 2-D point models"));
        };
        let engine = self.live_engine().await?;
        let v = engine.core().velocity_grid(range, res as usize, t as f32).await.map_err(js_err)?;
        Ok(js_sys::Float32Array::from(v.data()))
    }

    /// Stops drawing the log-density layer.
    #[wasm_bindgen(js_name = clearDensity)]
    pub fn clear_density(&self) -> Result<(), JsError> {
        *self.heat.borrow_mut() = None;
        if self.last_options.borrow().is_some() && self.canvas.is_some() {
            self.draw_at(1.0)?;
        }
        Ok(())
    }

    /// How many WebGPU devices this page has opened (all samplers share one).
    #[wasm_bindgen(js_name = webgpuDevicesOpened)]
    pub fn webgpu_devices_opened() -> u32 {
        GPU_DEVICES_OPENED.with(|c| c.get())
    }

    /// Resource counters for long sessions: `{ gpuBuffersLive, gpuBuffersCreated,
    /// gpuBuffersReused, wasmMemoryBytes }` (GPU counts are 0 on the CPU backend).
    pub fn stats(&self) -> JsValue {
        let pool = match &*self.engine() {
            Engine::Gpu { gpu, .. } => gpu.stats().pool,
            Engine::Cpu { .. } => Default::default(),
        };
        let memory = js_sys::Reflect::get(&wasm_bindgen::memory(), &"buffer".into())
            .ok()
            .and_then(|b| js_sys::Reflect::get(&b, &"byteLength".into()).ok())
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        object(&[
            ("gpuBuffersLive", JsValue::from(pool.live as f64)),
            ("gpuBuffersCreated", JsValue::from(pool.created as f64)),
            ("gpuBuffersReused", JsValue::from(pool.reused as f64)),
            ("wasmMemoryBytes", JsValue::from(memory)),
        ])
    }

    /// One worker's share of a request: samples `start..end` of `sample(opts)` (noise and labels
    /// of those rows of the whole batch), with their trajectory frames. Resolves with
    /// `{ samples, labels, frames: [{ t, data }], nfe, acceptedSteps, rejectedSteps }`.
    #[wasm_bindgen(js_name = solveRows)]
    pub async fn solve_rows(&self, opts: JsValue, start: u32, end: u32) -> Result<JsValue, JsError> {
        let engine = self.engine();
        let Engine::Cpu { sampler, .. } = &*engine else {
            return Err(JsError::new("solveRows runs on the CPU backend"));
        };
        let field = |k: &str| js_sys::Reflect::get(&opts, &k.into()).unwrap_or(JsValue::UNDEFINED);
        let on_progress = field("onProgress").dyn_into::<js_sys::Function>().ok();
        let o = self.parse_options(&opts)?;
        let options = self.to_options(&o, &field("label"), &field("trajectories"))?;
        let mut progress = |p: Progress| {
            if let Some(f) = &on_progress {
                let _ = f.call1(&JsValue::NULL, &progress_event(p));
            }
            ControlFlow::Continue(())
        };
        let out =
            sampler.sample_rows_async(&options, start as usize..end as usize, &mut progress).await.map_err(js_err)?;
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
        ]))
    }

    /// Frees the model, the kept samples, the canvas surface (GPU buffers return to the shared
    /// device's pool) and the CPU workers.
    pub fn dispose(self) {
        if let Engine::Cpu { pool: Some(pool), .. } = &*self.engine() {
            pool.terminate();
        }
    }
}

impl Sampler {
    fn engine(&self) -> Rc<Engine> {
        self.engine.borrow().clone()
    }

    /// The engine, after recovering from a lost WebGPU device: the page's device is reopened
    /// and the weights uploaded again; if WebGPU cannot come back, the CPU backend takes over.
    /// Either way `backendReason` says what happened.
    async fn live_engine(&self) -> Result<Rc<Engine>, JsError> {
        let engine = self.engine();
        let Engine::Gpu { gpu: lost, .. } = &*engine else { return Ok(engine) };
        if !lost.context().is_lost() {
            return Ok(engine);
        }
        SHARED_GPU.with(|c| {
            if c.get().is_some_and(|g| std::ptr::eq(g, *lost)) {
                c.set(None);
            }
        });
        let (next, note) = match open_gpu_engine(&self.model, self.canvas.as_ref(), None).await {
            Ok(e) => (e, "the WebGPU device was lost and has been reopened".to_string()),
            Err(e) => {
                // The canvas may hold a WebGPU context now; the CPU picture needs a 2-D one.
                let (e2, note) = open_cpu_engine(
                    &self.model,
                    &self.bytes,
                    self.workers,
                    format!("the WebGPU device was lost and could not be reopened ({e}); using the wasm CPU kernels"),
                )
                .await?;
                (e2, note)
            }
        };
        let next = Rc::new(next);
        *self.engine.borrow_mut() = next.clone();
        let mut reason = self.backend_reason.borrow_mut();
        *reason = format!("{}; {note}", reason.split("; the WebGPU device was lost").next().unwrap_or_default());
        Ok(next)
    }

    /// The plain-data fields of `sample()`'s options (callbacks and mixed-type fields apart).
    fn parse_options(&self, opts: &JsValue) -> Result<JsSampleOptions, JsError> {
        #[rustfmt::skip]
        const KNOWN: [&str; 14] = [
            "n", "solver", "steps", "rtol", "atol", "maxSteps", "seed", "guidance", "noise", "returnSamples",
            "label", "trajectories", "onProgress", "signal",
        ];
        if !opts.is_undefined() && !opts.is_null() && !opts.is_object() {
            return Err(JsError::new("sample() takes an options object"));
        }
        // serde-wasm-bindgen reads only the fields it knows: a misspelt option must not pass.
        for key in js_sys::Object::keys(&opts.clone().dyn_into::<js_sys::Object>().unwrap_or_default()).iter() {
            let key = key.as_string().unwrap_or_default();
            if !KNOWN.contains(&key.as_str()) {
                return Err(JsError::new(&format!(
                    "unknown sample option `{key}` (expected one of {})",
                    KNOWN.join(", ")
                )));
            }
        }
        let data = js_sys::Object::assign(
            &js_sys::Object::new(),
            &opts.clone().dyn_into::<js_sys::Object>().unwrap_or_default(),
        );
        for k in ["onProgress", "signal", "label", "trajectories"] {
            let _ = js_sys::Reflect::delete_property(&data, &k.into());
        }
        serde_wasm_bindgen::from_value(data.into()).map_err(|e| js_err(format!("bad sample options: {e}")))
    }

    /// A worker pool's merged result as the sampler's output.
    fn pooled_output(&self, o: &SampleOptions, r: &JsValue) -> crate::Result<crate::sampler::SampleOutput> {
        let get = |k: &str| js_sys::Reflect::get(r, &k.into()).unwrap_or(JsValue::UNDEFINED);
        let floats = |v: JsValue| v.dyn_into::<js_sys::Float32Array>().map(|a| a.to_vec()).unwrap_or_default();
        let count = |k: &str| get(k).as_f64().unwrap_or(0.0) as usize;
        let mut shape = vec![o.n];
        shape.extend(self.model.config.sample_shape());
        let samples = crate::Tensor::new(shape.clone(), floats(get("samples")))?;
        let mut frames = Vec::new();
        for f in js_sys::Array::from(&get("frames")).iter() {
            let t = js_sys::Reflect::get(&f, &"t".into()).ok().and_then(|t| t.as_f64()).unwrap_or(0.0) as f32;
            frames.push((
                t,
                crate::Tensor::new(
                    shape.clone(),
                    floats(js_sys::Reflect::get(&f, &"data".into()).unwrap_or_default()),
                )?,
            ));
        }
        let labels = get("labels").dyn_into::<js_sys::Uint32Array>().map(|a| a.to_vec()).unwrap_or_default();
        let stats = crate::ode::SolveStats {
            nfe: count("nfe"),
            accepted: count("acceptedSteps"),
            rejected: count("rejectedSteps"),
        };
        Ok(crate::sampler::SampleOutput { samples, frames, stats, labels })
    }

    fn to_options(
        &self,
        o: &JsSampleOptions,
        label: &JsValue,
        trajectories: &JsValue,
    ) -> Result<SampleOptions, JsError> {
        let d = SampleOptions::default();
        let is_image = matches!(self.model.config.data, DataConfig::Image { .. });
        let solver: Solver = match &o.solver {
            Some(s) => s.parse().map_err(js_err)?,
            None => d.solver,
        };
        let seed = match o.seed {
            None => 0,
            Some(s) if s.is_finite() && s >= 0.0 && s.fract() == 0.0 && s <= 9_007_199_254_740_991.0 => s as u64,
            Some(s) => return Err(JsError::new(&format!("seed {s} must be a non-negative integer"))),
        };
        let conditional = self.model.config.num_classes > 0;
        let labels = if label.is_undefined() {
            if conditional { Labels::Cycle } else { Labels::Unconditional }
        } else if label.is_null() {
            Labels::Unconditional
        } else if label.as_string().is_some_and(|s| s == "all") {
            Labels::Cycle
        } else {
            match label.as_f64() {
                Some(c) if c >= 0.0 && c.fract() == 0.0 && c <= u32::MAX as f64 => Labels::Class(c as u32),
                _ => {
                    let shown =
                        label.as_string().map(|s| format!("\"{s}\"")).or_else(|| label.as_f64().map(|v| v.to_string()));
                    let shown = shown.unwrap_or_else(|| "of this type".into());
                    return Err(JsError::new(&format!("label {shown} must be a class number, \"all\" or null")));
                }
            }
        };
        let trajectory_every =
            if trajectories.is_undefined() || trajectories.is_null() || trajectories.as_bool() == Some(false) {
                None
            } else if trajectories.as_bool() == Some(true) {
                Some(1)
            } else {
                match trajectories.as_f64() {
                    Some(k) if k >= 1.0 && k.fract() == 0.0 && k <= 1e9 => Some(k as usize),
                    _ => return Err(JsError::new("trajectories must be true/false or a step stride ≥ 1")),
                }
            };
        // Whole numbers ≥ 0 (the sampler checks the ranges).
        let count = |name: &str, v: Option<f64>, default: usize| match v {
            None => Ok(default),
            Some(v) if v >= 0.0 && v.fract() == 0.0 && v < usize::MAX as f64 => Ok(v as usize),
            Some(v) if v >= 0.0 && v.fract() == 0.0 => Err(JsError::new(&format!("{name} = {v} is too large"))),
            Some(v) => Err(JsError::new(&format!("{name} must be a whole number, not {v}"))),
        };
        Ok(SampleOptions {
            n: count("n", o.n, if is_image { 20 } else { 4096 })?,
            solver,
            steps: count("steps", o.steps, d.steps)?,
            rtol: o.rtol.unwrap_or(d.rtol),
            atol: o.atol.unwrap_or(d.atol),
            max_steps: count("maxSteps", o.max_steps, d.max_steps)?,
            seed,
            labels,
            guidance: o.guidance.unwrap_or(d.guidance),
            noise: o.noise.unwrap_or(0.0),
            trajectory_every,
        })
    }

    /// The CPU backend's picture of `samples` (and trajectory `frames`) for the whole canvas.
    fn render_cpu(&self, samples: &[f32], n: usize, frames: &[Vec<f32>], canvas: &web_sys::HtmlCanvasElement) -> Rgba {
        let (w, h) = (canvas.width().max(1) as usize, canvas.height().max(1) as usize);
        match self.model.config.data {
            DataConfig::Points2d { range } => {
                render::density_plot(samples, range, w, h, frames, MAX_PATHS, self.heat.borrow().as_ref())
            }
            DataConfig::Image { .. } => {
                let grid = GridPlot::for_model(&self.model.config, n, 1).expect("an image model").fit_width(w);
                render::centred(&render::image_grid(samples, &grid), w, h)
            }
        }
    }

    /// The GPU scene of the per-chunk `states` of `out` (with `out`'s trajectory frames as
    /// lines when `with_paths`).
    fn scene<'a>(
        &self,
        out: &'a BackendOutput<DualTensor>,
        states: Vec<&'a DualTensor>,
        n: usize,
        with_paths: bool,
        heat: Option<&'a render::HeatLayer>,
        canvas: &web_sys::HtmlCanvasElement,
    ) -> Result<Scene<'a>, JsError> {
        let (w, h) = (canvas.width().max(1) as usize, canvas.height().max(1) as usize);
        let on_gpu = |t: &'a DualTensor| t.as_gpu().ok_or_else(|| JsError::new("the kept samples are not on the GPU"));
        let states = states.into_iter().map(on_gpu).collect::<Result<Vec<&GpuTensor>, JsError>>()?;
        Ok(match self.model.config.data {
            DataConfig::Points2d { range } => Scene::Points {
                plot: PointsPlot { width: w, height: h, range },
                states,
                first_row: out.chunks.iter().map(|c| c.rows.start).collect(),
                paths: if with_paths {
                    out.chunks
                        .iter()
                        .map(|c| c.frames.iter().map(|(_, f)| on_gpu(f)).collect::<Result<Vec<_>, JsError>>())
                        .collect::<Result<Vec<_>, JsError>>()?
                } else {
                    Vec::new()
                },
                max_paths: MAX_PATHS,
                heat,
            },
            DataConfig::Image { .. } => Scene::Images {
                grid: GridPlot::for_model(&self.model.config, n, 1).expect("an image model").fit_width(w),
                chunks: out.chunks.iter().map(|c| c.rows.start).zip(states).collect(),
            },
        })
    }
}

/// A whole number in lo..=hi (JS numbers for counts).
fn whole_in(v: f64, lo: f64, hi: f64) -> bool {
    (lo..=hi).contains(&v) && v.fract() == 0.0
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

/// The message of a JS error value (an `Error`'s `message`, or its string form).
fn js_message(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Linear interpolation in t between the two kept states around `t`.
fn interpolate(frames: &[(f32, Vec<f32>)], t: f32) -> Vec<f32> {
    let i = frames.iter().rposition(|(ft, _)| *ft <= t).unwrap_or(0);
    if i + 1 >= frames.len() {
        return frames[i].1.clone();
    }
    let ((ta, a), (tb, b)) = (&frames[i], &frames[i + 1]);
    let f = if tb > ta { (t - ta) / (tb - ta) } else { 0.0 };
    a.iter().zip(b).map(|(x, y)| x + (y - x) * f).collect()
}

/// Resolves on the next `requestAnimationFrame`.
async fn next_animation_frame() -> Result<(), JsError> {
    let window = web_sys::window().ok_or_else(|| JsError::new("animate() needs a window"))?;
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = window.request_animation_frame(&resolve);
    });
    JsFuture::from(promise).await.map(|_| ()).map_err(|_| JsError::new("animation frame failed"))
}

/// What `navigator.gpu` offers, read through `Reflect` so the CPU build needs no WebGPU bindings.
enum WebGpuProbe {
    Missing,
    NoAdapter,
    Fallback(String),
    Hardware(String),
}

async fn probe_webgpu() -> WebGpuProbe {
    let get = |o: &JsValue, k: &str| js_sys::Reflect::get(o, &k.into()).unwrap_or(JsValue::UNDEFINED);
    let navigator = get(&js_sys::global(), "navigator");
    let gpu = get(&navigator, "gpu");
    let Ok(request) = get(&gpu, "requestAdapter").dyn_into::<js_sys::Function>() else { return WebGpuProbe::Missing };
    let Ok(promise) = request.call0(&gpu).and_then(|p| p.dyn_into::<js_sys::Promise>()) else {
        return WebGpuProbe::NoAdapter;
    };
    let adapter = match JsFuture::from(promise).await {
        Ok(a) if !a.is_null() && !a.is_undefined() => a,
        _ => return WebGpuProbe::NoAdapter,
    };
    let info = get(&adapter, "info");
    let field = |k: &str| get(&info, k).as_string().filter(|s| !s.is_empty());
    let name = field("description")
        .or_else(|| field("device"))
        .or_else(|| field("vendor"))
        .unwrap_or_else(|| "unnamed".into());
    let fallback = get(&info, "isFallbackAdapter")
        .as_bool()
        .or_else(|| get(&adapter, "isFallbackAdapter").as_bool())
        .unwrap_or(false)
        || name.to_ascii_lowercase().contains("swiftshader");
    if fallback { WebGpuProbe::Fallback(name) } else { WebGpuProbe::Hardware(name) }
}

async fn fetch_bytes(url: &str, on_progress: Option<&js_sys::Function>) -> Result<Vec<u8>, JsError> {
    let global: js_sys::Object = js_sys::global();
    let fetch = js_sys::Reflect::get(&global, &"fetch".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| JsError::new("fetch() is not available here"))?;
    let promise: js_sys::Promise = fetch
        .call1(&global, &url.into())
        .map_err(|_| JsError::new("fetch() failed"))?
        .dyn_into()
        .map_err(|_| JsError::new("fetch() failed"))?;
    let resp: web_sys::Response = JsFuture::from(promise)
        .await
        .map_err(|e| {
            JsError::new(&format!("could not fetch `{url}`: {}", e.as_string().unwrap_or_else(|| format!("{e:?}"))))
        })?
        .dyn_into()
        .map_err(|_| JsError::new("fetch() did not return a Response"))?;
    if !resp.ok() {
        return Err(JsError::new(&format!("could not fetch `{url}`: HTTP {}", resp.status())));
    }
    let total = resp.headers().get("content-length").ok().flatten().and_then(|v| v.parse::<f64>().ok());
    let report = |loaded: f64| {
        if let Some(f) = on_progress {
            let total = total.map_or(JsValue::NULL, JsValue::from);
            let ev = object(&[("phase", "download".into()), ("loaded", JsValue::from(loaded)), ("total", total)]);
            let _ = f.call1(&JsValue::NULL, &ev);
        }
    };
    let read_err = |_| JsError::new(&format!("could not read `{url}`: the download broke off"));
    // Stream the body so a progress bar can move; fall back to arrayBuffer() where streams are missing.
    let Some(body) = resp.body() else {
        let buf = JsFuture::from(resp.array_buffer().map_err(read_err)?).await.map_err(read_err)?;
        let bytes = js_sys::Uint8Array::new(&buf).to_vec();
        report(bytes.len() as f64);
        return Ok(bytes);
    };
    let reader: web_sys::ReadableStreamDefaultReader =
        body.get_reader().dyn_into().map_err(|_| JsError::new("cannot read the body"))?;
    let mut bytes = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(read_err)?;
        if js_sys::Reflect::get(&chunk, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &"value".into()).map_err(read_err)?;
        bytes.extend(js_sys::Uint8Array::new(&value).to_vec());
        report(bytes.len() as f64);
    }
    Ok(bytes)
}

fn draw_rgba(canvas: &web_sys::HtmlCanvasElement, img: &Rgba) -> Result<(), JsError> {
    let ctx = canvas
        .get_context("2d")
        .map_err(|_| JsError::new("cannot get a 2d context"))?
        .ok_or_else(|| JsError::new("the canvas already has another context type"))?
        .dyn_into::<web_sys::CanvasRenderingContext2d>()
        .map_err(|_| JsError::new("not a 2d context"))?;
    let data =
        web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&img.pixels), img.width as u32, img.height as u32)
            .map_err(|_| JsError::new("cannot make ImageData"))?;
    ctx.put_image_data(&data, 0.0, 0.0).map_err(|_| JsError::new("cannot draw to the canvas"))
}
