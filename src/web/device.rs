//! The page's one WebGPU device, shared by every sampler (and every embed) on the page, and
//! the probe that tells `backend: 'auto'` what kind of adapter the browser has.

use super::{find_text, get};
use crate::gpu::{GpuBackend, GpuOptions};
use std::cell::Cell;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

thread_local! {
    /// Kept for the page's lifetime: a device is expensive to open, and its pipelines and
    /// buffer pool are what make later samplers start fast. Dropped only when lost.
    static SHARED_GPU: Cell<Option<&'static GpuBackend>> = const { Cell::new(None) };
    static GPU_OPENING: Cell<bool> = const { Cell::new(false) };
    static GPU_DEVICES_OPENED: Cell<u32> = const { Cell::new(0) };
}

/// How many WebGPU devices this page has opened.
pub fn devices_opened() -> u32 {
    GPU_DEVICES_OPENED.with(Cell::get)
}

/// The shared device, opened on first use. Samplers created while it is being opened wait for
/// it instead of opening a second one.
pub async fn shared_gpu() -> crate::Result<&'static GpuBackend> {
    loop {
        if let Some(g) = SHARED_GPU.with(Cell::get) {
            return Ok(g);
        }
        if !GPU_OPENING.with(|c| c.replace(true)) {
            break;
        }
        super::sleep_ms(10).await;
    }
    let opened = open(&GpuOptions::default()).await;
    GPU_OPENING.with(|c| c.set(false));
    let g = opened?;
    SHARED_GPU.with(|c| c.set(Some(g)));
    Ok(g)
}

/// A device of its own (a sampler planning with smaller limits, for tests). Devices live for
/// the page: wgpu's browser objects are cheap to keep, and samplers hold `&'static` to them.
pub async fn open(opts: &GpuOptions) -> crate::Result<&'static GpuBackend> {
    let g: &'static GpuBackend = Box::leak(Box::new(GpuBackend::new_async(opts).await?));
    GPU_DEVICES_OPENED.with(|c| c.set(c.get() + 1));
    Ok(g)
}

/// Forgets `lost` as the page's shared device, so the next sampler opens a new one.
pub fn forget(lost: &GpuBackend) {
    SHARED_GPU.with(|c| {
        if c.get().is_some_and(|g| std::ptr::eq(g, lost)) {
            c.set(None);
        }
    });
}

/// What `navigator.gpu` offers, read through `Reflect` so the CPU path needs no WebGPU bindings.
pub enum WebGpuProbe {
    Missing,
    NoAdapter,
    Fallback(String),
    Hardware(String),
}

/// The adapter request of `backend: 'auto'`, already sent: `Sampler.create` sends it once the
/// model's bytes are in and the CPU workers are starting (sent first, it held up the model's
/// download on the page's thread: a cold adapter takes 130–340 ms in a fresh headless Chromium,
/// where the GPU process starts too, part of it blocking the page).
pub struct ProbeStarted {
    request: Result<js_sys::Promise, WebGpuProbe>,
    /// For tests of the CPU-first start: the answer comes this much later, and a software
    /// adapter counts as hardware (where SwiftShader is the only adapter there is).
    test: AdapterTest,
}

/// The test hooks of the probe (`testAdapterDelayMs`, `testFallbackAsHardware` in
/// `Sampler.create`); the default is none.
#[derive(Clone, Copy, Default)]
pub struct AdapterTest {
    pub delay_ms: Option<i32>,
    pub fallback_as_hardware: bool,
}

pub fn start_probe(test: AdapterTest) -> ProbeStarted {
    let gpu = get(&get(&js_sys::global(), "navigator"), "gpu");
    let Ok(request) = get(&gpu, "requestAdapter").dyn_into::<js_sys::Function>() else {
        return ProbeStarted { request: Err(WebGpuProbe::Missing), test };
    };
    let request = match request.call0(&gpu).and_then(|p| p.dyn_into::<js_sys::Promise>()) {
        Ok(p) => Ok(p),
        Err(_) => Err(WebGpuProbe::NoAdapter),
    };
    ProbeStarted { request, test }
}

/// Whether this browser has `navigator.gpu.requestAdapter` at all.
pub fn webgpu_present() -> bool {
    get(&get(&get(&js_sys::global(), "navigator"), "gpu"), "requestAdapter").is_function()
}

impl ProbeStarted {
    /// What the adapter turned out to be.
    pub async fn finish(self) -> WebGpuProbe {
        let promise = match self.request {
            Ok(p) => p,
            Err(known) => return known,
        };
        let adapter = JsFuture::from(promise).await;
        if let Some(ms) = self.test.delay_ms {
            super::sleep_ms(ms).await;
        }
        let adapter = match adapter {
            Ok(a) if !a.is_null() && !a.is_undefined() => a,
            _ => return WebGpuProbe::NoAdapter,
        };
        let info = get(&adapter, "info");
        let field = |k: &str| get(&info, k).as_string().filter(|s| !s.is_empty());
        let name = field("description")
            .or_else(|| field("device"))
            .or_else(|| field("vendor"))
            .map_or_else(|| "unnamed".into(), |n| crate::error::shown(&n, 80));
        let fallback = get(&info, "isFallbackAdapter")
            .as_bool()
            .or_else(|| get(&adapter, "isFallbackAdapter").as_bool())
            .unwrap_or(false)
            || find_text(&name.to_ascii_lowercase(), "swiftshader").is_some();
        if fallback && !self.test.fallback_as_hardware {
            WebGpuProbe::Fallback(name)
        } else {
            WebGpuProbe::Hardware(name)
        }
    }
}

impl WebGpuProbe {
    /// Whether `auto` runs on this adapter, and why (or why not), for `backendReason`.
    pub fn choice(&self) -> (bool, String) {
        match self {
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
        }
    }
}

/// `auto`'s adapter request for a sampler that started on the CPU (a 2-D model with its
/// workers): not sent by `Sampler.create` — a cold request blocks the page's thread for part of
/// its 130–340 ms, and the workers and the first frame do not need it — but by the end of the
/// first `sample()` ([`LateAnswer::ask`]); the answer is filled in when it comes. A hardware
/// adapter's device is opened meanwhile, so that the `sample()` which moves to it does not wait
/// for that too.
#[derive(Clone)]
pub struct LateAnswer(std::rc::Rc<std::cell::RefCell<Late>>);

enum Late {
    NotAsked(AdapterTest),
    Asked,
    Answered(WebGpuProbe),
}

impl LateAnswer {
    pub fn not_asked(test: AdapterTest) -> LateAnswer {
        LateAnswer(std::rc::Rc::new(std::cell::RefCell::new(Late::NotAsked(test))))
    }

    /// Sends the adapter request, once.
    pub fn ask(&self) {
        let test = match &*self.0.borrow() {
            Late::NotAsked(test) => *test,
            // Asked already, or answered (an answer waits for the sample() that acts on it).
            Late::Asked | Late::Answered(_) => return,
        };
        *self.0.borrow_mut() = Late::Asked;
        let cell = self.0.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let answer = start_probe(test).finish().await;
            super::mark("pushforward:adapter-answered");
            if matches!(answer, WebGpuProbe::Hardware(_)) {
                // A failure shows again, with its reason, when the sampler opens its engine.
                let _ = shared_gpu().await;
            }
            *cell.borrow_mut() = Late::Answered(answer);
        });
    }

    /// What the answer means for `auto` (see [`WebGpuProbe::choice`]), once it has come.
    pub fn choice(&self) -> Option<(bool, String)> {
        match &*self.0.borrow() {
            Late::Answered(answer) => Some(answer.choice()),
            Late::NotAsked(_) | Late::Asked => None,
        }
    }
}
