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
use crate::gpu::{GpuBackend, GpuOptions};
use crate::model::{DataConfig, Model};
use crate::ode::Solver;
use crate::render::{self, Rgba};
use crate::sampler::{Labels, Progress, SampleOptions, SampleOutput, Sampler as CoreSampler};
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;
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

/// Options of `sample()`, as JS passes them (camelCase). `onProgress` and `signal` are read
/// separately because they are JS objects, not data.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct JsSampleOptions {
    n: Option<usize>,
    solver: Option<String>,
    steps: Option<usize>,
    rtol: Option<f32>,
    atol: Option<f32>,
    max_steps: Option<usize>,
    seed: Option<f64>,
    /// A class number, "all" (one per class, cycling), or null for unconditional.
    label: Option<serde_json::Value>,
    guidance: Option<f32>,
    /// true, or keep every k-th step.
    trajectories: Option<serde_json::Value>,
    return_samples: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SampleResult {
    backend: String,
    nfe: usize,
    accepted_steps: usize,
    rejected_steps: usize,
    sample_ms: f64,
    draw_ms: f64,
    n: usize,
}

/// The sampler on whichever backend was chosen (the library is generic; JS sees one class).
enum Engine {
    Cpu(CoreSampler<CpuBackend>),
    Gpu(CoreSampler<&'static GpuBackend>),
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
    async fn sample(
        &self,
        o: &SampleOptions,
        progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> crate::Result<SampleOutput> {
        match self {
            Engine::Cpu(s) => s.sample_async(o, progress).await,
            Engine::Gpu(s) => s.sample_async(o, progress).await,
        }
    }

    fn initial_noise(&self, n: usize, seed: u64) -> crate::Result<crate::Tensor> {
        match self {
            Engine::Cpu(s) => s.initial_noise(n, seed),
            Engine::Gpu(s) => s.initial_noise(n, seed),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Engine::Cpu(_) => "cpu",
            Engine::Gpu(_) => "webgpu",
        }
    }

    fn adapter(&self) -> String {
        match self {
            Engine::Cpu(_) => "wasm CPU kernels (simd128)".into(),
            Engine::Gpu(s) => s.backend().name(),
        }
    }
}

/// A model loaded into a backend, drawing into an optional canvas.
#[wasm_bindgen]
pub struct Sampler {
    core: Engine,
    model: Model,
    canvas: Option<web_sys::HtmlCanvasElement>,
    backend_reason: String,
    /// The last solve's states (t, flattened [n, …]) for `drawAt`/`animate`: every step when
    /// trajectories were requested, else just noise and samples.
    frames: std::cell::RefCell<Vec<(f32, Vec<f32>)>>,
    last_options: std::cell::RefCell<Option<SampleOptions>>,
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
        let (core, reason) = if use_gpu {
            match shared_gpu().await.and_then(|b| CoreSampler::new(b, &model)) {
                Ok(s) => (Engine::Gpu(s), reason),
                // An explicit request fails loudly; `auto` falls back and says why.
                Err(e) if backend == "webgpu" => return Err(js_err(format!("WebGPU backend unavailable: {e}"))),
                Err(e) => (
                    Engine::Cpu(CoreSampler::new(CpuBackend, &model).map_err(js_err)?),
                    format!("WebGPU failed to start ({e}); using the wasm CPU kernels"),
                ),
            }
        } else {
            (Engine::Cpu(CoreSampler::new(CpuBackend, &model).map_err(js_err)?), reason)
        };
        let canvas = get("canvas").dyn_into::<web_sys::HtmlCanvasElement>().ok();
        Ok(Sampler {
            core,
            model,
            canvas,
            backend_reason: reason,
            frames: Default::default(),
            last_options: Default::default(),
        })
    }

    /// The model's config, parameter count, backend and why it was chosen.
    pub fn info(&self) -> Result<JsValue, JsError> {
        let v = serde_json::json!({
            "config": self.model.config,
            "parameters": self.model.param_count(),
            "backend": self.core.kind(),
            "adapter": self.core.adapter(),
            "backendReason": self.backend_reason,
        });
        v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_err)
    }

    /// Samples, draws to the canvas (if any) and resolves with timings; with
    /// `returnSamples: true` also `samples` (Float32Array) and `labels`.
    pub async fn sample(&self, opts: JsValue) -> Result<JsValue, JsError> {
        let on_progress =
            js_sys::Reflect::get(&opts, &"onProgress".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        let signal =
            js_sys::Reflect::get(&opts, &"signal".into()).ok().and_then(|s| s.dyn_into::<web_sys::AbortSignal>().ok());
        // Data fields only: copy without the callbacks.
        let data = js_sys::Object::assign(
            &js_sys::Object::new(),
            &opts.clone().dyn_into::<js_sys::Object>().unwrap_or_default(),
        );
        for k in ["onProgress", "signal"] {
            let _ = js_sys::Reflect::delete_property(&data, &k.into());
        }
        let o: JsSampleOptions =
            serde_wasm_bindgen::from_value(data.into()).map_err(|e| js_err(format!("bad sample options: {e}")))?;
        let options = self.to_options(&o)?;

        let t0 = now_ms();
        let mut progress = |p: crate::sampler::Progress| {
            if signal.as_ref().is_some_and(|s| s.aborted()) {
                return ControlFlow::Break(());
            }
            if let Some(f) = &on_progress {
                let ev = serde_json::json!({ "step": p.step, "totalSteps": p.total_steps, "t": p.t, "nfe": p.nfe });
                if let Ok(v) = ev.serialize(&serde_wasm_bindgen::Serializer::json_compatible()) {
                    let _ = f.call1(&JsValue::NULL, &v);
                }
            }
            ControlFlow::Continue(())
        };
        let out = self.core.sample(&options, &mut progress).await.map_err(js_err)?;
        let t1 = now_ms();
        if let Some(canvas) = &self.canvas {
            let frames: Vec<Vec<f32>> = out.frames.iter().map(|(_, f)| f.data().to_vec()).collect();
            let img = self.render(out.samples.data(), options.n, &frames, canvas)?;
            draw_rgba(canvas, &img)?;
        }
        let mut kept: Vec<(f32, Vec<f32>)> = out.frames.iter().map(|(t, f)| (*t, f.data().to_vec())).collect();
        if kept.is_empty() {
            kept = vec![
                (0.0, self.core.initial_noise(options.n, options.seed).map_err(js_err)?.into_data()),
                (1.0, out.samples.data().to_vec()),
            ];
        }
        *self.frames.borrow_mut() = kept;
        *self.last_options.borrow_mut() = Some(options.clone());
        let t2 = now_ms();
        let res = SampleResult {
            backend: self.core.kind().into(),
            nfe: out.stats.nfe,
            accepted_steps: out.stats.accepted,
            rejected_steps: out.stats.rejected,
            sample_ms: t1 - t0,
            draw_ms: t2 - t1,
            n: options.n,
        };
        let obj = res.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_err)?;
        if o.return_samples {
            let arr = js_sys::Float32Array::from(out.samples.data());
            js_sys::Reflect::set(&obj, &"samples".into(), &arr).map_err(|_| JsError::new("cannot set samples"))?;
            let labels = js_sys::Uint32Array::from(&out.labels[..]);
            js_sys::Reflect::set(&obj, &"labels".into(), &labels).map_err(|_| JsError::new("cannot set labels"))?;
        }
        Ok(obj)
    }

    /// Draws the state at time `t` ∈ [0, 1] of the last solve (linear interpolation between
    /// the kept steps): noise at 0, samples at 1. For a time slider.
    #[wasm_bindgen(js_name = drawAt)]
    pub fn draw_at(&self, t: f32) -> Result<(), JsError> {
        let Some(canvas) = &self.canvas else { return Err(JsError::new("this sampler has no canvas")) };
        let frames = self.frames.borrow();
        if frames.is_empty() {
            return Err(JsError::new("nothing sampled yet: call sample() first"));
        }
        if !t.is_finite() {
            return Err(JsError::new("t must be a number in [0, 1]"));
        }
        let state = interpolate(&frames, t.clamp(0.0, 1.0));
        let n = self.last_options.borrow().as_ref().map_or(0, |o| o.n);
        let img = self.render(&state, n, &[], canvas)?;
        draw_rgba(canvas, &img)
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
            let out = self.core.sample(&o, &mut |_| ControlFlow::Continue(())).await.map_err(js_err)?;
            *self.frames.borrow_mut() = out.frames.iter().map(|(t, f)| (*t, f.data().to_vec())).collect();
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

    /// How many WebGPU devices this page has opened (all samplers share one).
    #[wasm_bindgen(js_name = webgpuDevicesOpened)]
    pub fn webgpu_devices_opened() -> u32 {
        GPU_DEVICES_OPENED.with(|c| c.get())
    }

    /// Frees the model and any backend resources.
    pub fn dispose(self) {}
}

impl Sampler {
    fn to_options(&self, o: &JsSampleOptions) -> Result<SampleOptions, JsError> {
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
        let k = self.model.config.num_classes;
        let labels = match (&o.label, k) {
            (None | Some(serde_json::Value::Null), 0) => Labels::Unconditional,
            (None, _) => Labels::Cycle,
            (Some(serde_json::Value::Null), _) => Labels::Unconditional,
            (Some(serde_json::Value::String(s)), _) if s == "all" => Labels::Cycle,
            (Some(v), _) => match v.as_u64() {
                Some(c) if c <= u32::MAX as u64 => Labels::Class(c as u32),
                _ => return Err(JsError::new(&format!("label {v} must be a class number, \"all\" or null"))),
            },
        };
        let trajectory_every = match &o.trajectories {
            None | Some(serde_json::Value::Bool(false)) | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Bool(true)) => Some(1),
            Some(v) => Some(
                v.as_u64()
                    .filter(|&k| k >= 1)
                    .ok_or_else(|| JsError::new("trajectories must be true/false or a step stride ≥ 1"))?
                    as usize,
            ),
        };
        Ok(SampleOptions {
            n: o.n.unwrap_or(if is_image { 20 } else { 4096 }),
            solver,
            steps: o.steps.unwrap_or(d.steps),
            rtol: o.rtol.unwrap_or(d.rtol),
            atol: o.atol.unwrap_or(d.atol),
            max_steps: o.max_steps.unwrap_or(d.max_steps),
            seed,
            labels,
            guidance: o.guidance.unwrap_or(d.guidance),
            trajectory_every,
        })
    }

    fn render(
        &self,
        samples: &[f32],
        n: usize,
        frames: &[Vec<f32>],
        canvas: &web_sys::HtmlCanvasElement,
    ) -> Result<Rgba, JsError> {
        Ok(match &self.model.config.data {
            DataConfig::Points2d { range } => {
                let (w, h) = (canvas.width().max(1) as usize, canvas.height().max(1) as usize);
                render::density_plot(samples, *range, w, h, frames, 300)
            }
            DataConfig::Image { channels, height, width, range } => {
                let cols =
                    if self.model.config.num_classes > 0 { self.model.config.num_classes.min(n) } else { 10.min(n) };
                let cw = canvas.width().max(1) as usize;
                let scale = (cw / (cols * (width + 1) + 1)).max(1);
                render::image_grid(samples, n, *channels, *height, *width, *range, cols, scale)
            }
        })
    }
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
        || name.to_lowercase().contains("swiftshader");
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
            let ev = serde_json::json!({ "phase": "download", "loaded": loaded, "total": total });
            if let Ok(v) = ev.serialize(&serde_wasm_bindgen::Serializer::json_compatible()) {
                let _ = f.call1(&JsValue::NULL, &v);
            }
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
    ctx.set_fill_style_str("#0c0c14");
    ctx.fill_rect(0.0, 0.0, canvas.width() as f64, canvas.height() as f64);
    let dx = ((canvas.width() as f64 - img.width as f64) / 2.0).max(0.0);
    let dy = ((canvas.height() as f64 - img.height as f64) / 2.0).max(0.0);
    ctx.put_image_data(&data, dx, dy).map_err(|_| JsError::new("cannot draw to the canvas"))
}
