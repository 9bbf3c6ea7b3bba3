//! The wgpu instance, adapter, device and queue, the limits the engine plans with, and the
//! error plumbing (uncaptured validation errors and device loss become `Error`s at the next
//! readback instead of panicking inside wgpu).

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The sizes the engine splits work by. Normally the device's own limits; tests set them
/// artificially small to exercise batch splitting and 2-D dispatch grids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Largest storage binding (bytes) one tensor of a sampling chunk may need.
    pub max_binding_bytes: u64,
    /// Largest buffer (bytes).
    pub max_buffer_bytes: u64,
    /// Workgroups per dispatch dimension (a flat count beyond it is folded into 2-D).
    pub max_workgroups_per_dim: u32,
}

/// How to open the device.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Prefer a low-power or a high-performance adapter.
    pub power_preference: wgpu::PowerPreference,
    /// Plan with smaller limits than the device's (each field is min'd with the device's).
    pub limits: Option<PlanLimits>,
    /// Request `TIMESTAMP_QUERY` (when the adapter has it) for per-kernel profiling.
    pub timestamps: bool,
    /// The working-set budget of one solve (default `memory::GPU_BUDGET_BYTES`).
    pub budget_bytes: Option<u64>,
}

/// An open device. Cheap to share by reference; `GpuBackend` owns one.
pub struct GpuContext {
    /// Kept for drawing: a canvas surface is made by the instance and configured for the adapter
    /// (the browser build; natively the painter draws into textures).
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) instance: wgpu::Instance,
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) adapter: wgpu::Adapter,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The device's real limits (every binding is checked against these).
    pub device_limits: wgpu::Limits,
    /// The limits used to plan chunking and dispatch grids.
    pub plan: PlanLimits,
    /// The working-set budget of one solve (`crate::memory`).
    pub budget_bytes: u64,
    /// Whether timestamp queries are enabled on this device.
    pub timestamps: bool,
    /// First uncaptured error or device loss, reported by `check`.
    failure: Arc<Mutex<Option<Error>>>,
}

static LOGGED: AtomicBool = AtomicBool::new(false);

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?}, driver {} {})", info.name, info.backend, info.device_type, info.driver, info.driver_info)
}

impl GpuContext {
    /// Opens the first adapter that wgpu offers for the enabled backends (Vulkan natively,
    /// WebGPU in the browser). No adapter is `Error::NoAdapter`.
    pub async fn new_async(opts: &GpuOptions) -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        // Vulkan only natively (the compiled-in backend); the browser's WebGPU on wasm.
        desc.backends = wgpu::Backends::all();
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: opts.power_preference,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| {
                Error::NoAdapter(format!(
                    "{e}. Natively pushforward uses Vulkan: install a driver, e.g. Mesa's software \
                     rasteriser with `apt-get install mesa-vulkan-drivers libvulkan1`"
                ))
            })?;
        let info = adapter.get_info();
        if !LOGGED.swap(true, Ordering::Relaxed) {
            log_line(&format!("pushforward: GPU adapter {}", describe(&info)));
        }
        let timestamps = opts.timestamps && adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let features = if timestamps { wgpu::Features::TIMESTAMP_QUERY } else { wgpu::Features::empty() };
        // Ask for everything the adapter offers: big batches want big storage bindings.
        let device_limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("pushforward"),
                required_features: features,
                required_limits: device_limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::Gpu(format!("request_device on {}: {e}", info.name)))?;

        let failure: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
        let f = failure.clone();
        // Without a handler wgpu panics on validation errors; record the first one instead.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = f.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(match e {
                    wgpu::Error::OutOfMemory { .. } => {
                        Error::OutOfMemory(format!("the GPU refused an allocation: {e}"))
                    }
                    _ => Error::Gpu(e.to_string()),
                });
            }
        }));
        let f = failure.clone();
        device.set_device_lost_callback(move |reason, msg| {
            // Loss wins over an earlier validation error: it is what callers must recover from.
            let mut slot = f.lock().unwrap_or_else(|p| p.into_inner());
            if !matches!(*slot, Some(Error::DeviceLost(_))) {
                *slot = Some(Error::DeviceLost(format!("{reason:?}: {msg}")));
            }
        });

        let mut plan = PlanLimits {
            max_binding_bytes: device_limits.max_storage_buffer_binding_size.min(device_limits.max_buffer_size),
            max_buffer_bytes: device_limits.max_buffer_size,
            max_workgroups_per_dim: device_limits.max_compute_workgroups_per_dimension,
        };
        if let Some(l) = opts.limits {
            plan.max_binding_bytes = plan.max_binding_bytes.min(l.max_binding_bytes).max(4);
            plan.max_buffer_bytes = plan.max_buffer_bytes.min(l.max_buffer_bytes).max(4);
            plan.max_workgroups_per_dim = plan.max_workgroups_per_dim.min(l.max_workgroups_per_dim).max(1);
        }
        let budget_bytes = opts.budget_bytes.unwrap_or(crate::memory::GPU_BUDGET_BYTES).max(4);
        Ok(Self { instance, adapter, device, queue, info, device_limits, plan, budget_bytes, timestamps, failure })
    }

    /// Blocking [`GpuContext::new_async`] (native only: the browser cannot block).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(opts: &GpuOptions) -> Result<Self> {
        pollster::block_on(Self::new_async(opts))
    }

    /// "name (backend, device type, driver)".
    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    /// True for CPU (software) adapters such as lavapipe and SwiftShader.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// True once the device is lost (it never comes back; open a new one).
    pub fn is_lost(&self) -> bool {
        matches!(*self.failure.lock().unwrap_or_else(|p| p.into_inner()), Some(Error::DeviceLost(_)))
    }

    /// The device loss, or the validation / out-of-memory error seen since the last check.
    /// Loss is permanent and reported by every later check; any other error is reported once
    /// and then cleared, so one failed request (an allocation the driver refused, say) does not
    /// poison the device that every sampler on the page shares.
    pub fn check(&self) -> Result<()> {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            None => Ok(()),
            Some(Error::DeviceLost(_)) => Err(slot.clone().expect("just matched")),
            Some(_) => Err(slot.take().expect("just matched")),
        }
    }
}

fn log_line(s: &str) {
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{s}");
    #[cfg(target_arch = "wasm32")]
    web_sys::console::log_1(&s.into());
}
