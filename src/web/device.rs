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

/// The adapter request of `backend: 'auto'`, already sent: `Sampler.create` starts it first,
/// so that a cold adapter (130–340 ms in a fresh headless Chromium, where the GPU process
/// starts too) loads while the model is fetched and the CPU workers boot.
pub struct ProbeStarted(Result<js_sys::Promise, WebGpuProbe>);

pub fn start_probe() -> ProbeStarted {
    let gpu = get(&get(&js_sys::global(), "navigator"), "gpu");
    let Ok(request) = get(&gpu, "requestAdapter").dyn_into::<js_sys::Function>() else {
        return ProbeStarted(Err(WebGpuProbe::Missing));
    };
    match request.call0(&gpu).and_then(|p| p.dyn_into::<js_sys::Promise>()) {
        Ok(p) => ProbeStarted(Ok(p)),
        Err(_) => ProbeStarted(Err(WebGpuProbe::NoAdapter)),
    }
}

impl ProbeStarted {
    /// What the adapter turned out to be.
    pub async fn finish(self) -> WebGpuProbe {
        let promise = match self.0 {
            Ok(p) => p,
            Err(known) => return known,
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
            .map_or_else(|| "unnamed".into(), |n| crate::error::shown(&n, 80));
        let fallback = get(&info, "isFallbackAdapter")
            .as_bool()
            .or_else(|| get(&adapter, "isFallbackAdapter").as_bool())
            .unwrap_or(false)
            || find_text(&name.to_ascii_lowercase(), "swiftshader").is_some();
        if fallback { WebGpuProbe::Fallback(name) } else { WebGpuProbe::Hardware(name) }
    }
}
