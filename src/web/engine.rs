//! The two engines behind one path: a solve on either engine leaves a
//! `BackendOutput<DualTensor>` (host tensors on the CPU, GPU buffers on WebGPU), and one
//! interpolation (`state_at`, `Backend::lincomb` through `Dual`) and one painter draw it.

use super::options::Callbacks;
use super::{device, pool};
use crate::Backend;
use crate::cpu::CpuBackend;
use crate::dual::{Dual, DualTensor};
use crate::error::{Error, Result};
use crate::gpu::{GpuBackend, GpuOptions, GpuTensor};
use crate::model::{DataConfig, Model, ModelConfig};
use crate::options::{Entries, MAX_DRAWN_PATHS, Paths, SampleRequest};
use crate::render::gpu::{GpuCanvas, Scene};
use crate::render::{self, GridPlot, PointsPlot, Rgba};
use crate::sampler::{BackendOutput, Progress, Sampler as CoreSampler};
use std::ops::ControlFlow;
use wasm_bindgen::{Clamped, JsCast};

/// The sampler on whichever backend was chosen (the library is generic; JS sees one class).
pub enum Engine {
    /// With workers, solves run there (a small one on this thread while they boot, see
    /// [`page_thread_while_starting`]); without, on this thread (yielding between steps).
    Cpu { sampler: CoreSampler<Dual<'static>>, pool: Option<pool::Workers> },
    /// The solve stays on the GPU and is drawn from there.
    Gpu { sampler: CoreSampler<Dual<'static>>, gpu: &'static GpuBackend, painter: Option<Box<GpuCanvas>> },
}

/// Where a CPU solve spent its time (`sample({ profile: true })`): each kernel's calls and
/// summed time over every worker, and each worker's rows and busy time.
pub struct SolveProfile {
    pub kernels: Vec<crate::profile::KernelTime>,
    pub workers: Vec<WorkerShare>,
}

pub struct WorkerShare {
    pub rows: std::ops::Range<usize>,
    pub busy_ms: f64,
}

/// An engine no call holds any more stops its workers (one replaced while a call still ran on
/// it, as when WebGPU takes over, stops them once that call ends).
impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What `drawAt`/`animate` need of the last solve.
pub struct Kept {
    pub out: BackendOutput<DualTensor>,
    pub request: SampleRequest,
    pub entries: Entries,
}

impl Engine {
    pub fn core(&self) -> &CoreSampler<Dual<'static>> {
        match self {
            Engine::Cpu { sampler, .. } | Engine::Gpu { sampler, .. } => sampler,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Engine::Cpu { .. } => "cpu",
            Engine::Gpu { .. } => "webgpu",
        }
    }

    pub fn adapter(&self) -> String {
        match self {
            Engine::Cpu { .. } => "wasm CPU kernels (simd128)".into(),
            Engine::Gpu { sampler, .. } => sampler.backend().name(),
        }
    }

    pub fn gpu(&self) -> Option<&'static GpuBackend> {
        match self {
            Engine::Gpu { gpu, .. } => Some(gpu),
            Engine::Cpu { .. } => None,
        }
    }

    /// Stops the workers (their pending calls reject as disposed).
    pub fn stop(&self) {
        if let Engine::Cpu { pool: Some(p), .. } = self {
            p.stop();
        }
    }

    /// Why the CPU engine's workers could not start, once that is known (it then solves on
    /// this thread), and what `backendReason` said of them until then.
    pub fn workers_failed(&self) -> Option<(String, String)> {
        match self {
            Engine::Cpu { pool: Some(p), .. } => match p.state() {
                pool::WorkerState::Failed(why) => Some((why, p.note())),
                _ => None,
            },
            _ => None,
        }
    }

    /// Solves `request` (its options as given, `entries`, for the workers). `cancelled` is
    /// asked at every step (abort signal, dispose).
    pub async fn solve(
        &self,
        config: &ModelConfig,
        request: &SampleRequest,
        entries: &Entries,
        cb: &Callbacks,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(BackendOutput<DualTensor>, Option<SolveProfile>)> {
        let o = &request.options;
        let mut progress = |p: Progress| {
            if cancelled() {
                return ControlFlow::Break(());
            }
            cb.report(&super::progress_event(p));
            ControlFlow::Continue(())
        };
        match self {
            Engine::Cpu { sampler, pool } => {
                let on_workers = pool.as_ref().filter(|p| match p.state() {
                    pool::WorkerState::Ready => true,
                    pool::WorkerState::Starting => !page_thread_while_starting(config, request),
                    pool::WorkerState::Failed(_) => false,
                });
                if let Some(workers) = on_workers {
                    // Adaptive steps differ between row ranges, so their frames would not line
                    // up: an adaptive solve that keeps frames runs in one worker.
                    let min_rows = if o.solver.is_adaptive() && o.trajectory_every.is_some() {
                        o.n
                    } else if matches!(config.data, DataConfig::Image { .. }) {
                        1
                    } else {
                        256
                    };
                    match pool::solve(workers, entries, o.n, &config.sample_shape(), min_rows, cb).await {
                        // The workers never started: this thread solves it below.
                        Err(Error::Worker(_)) if matches!(workers.state(), pool::WorkerState::Failed(_)) => {}
                        r => {
                            let (out, profile) = r?;
                            return Ok((out, request.profile.then_some(profile)));
                        }
                    }
                }
                // Workers still starting (a small first request): their deferred boot waits for
                // this solve, which would otherwise share the page's core with it.
                let _hold =
                    pool.as_ref().filter(|p| matches!(p.state(), pool::WorkerState::Starting)).map(|p| p.hold());
                if request.profile {
                    crate::profile::start();
                }
                let t0 = crate::host::now_ms();
                let out = sampler.sample_on_backend(o, &mut progress).await;
                let busy_ms = crate::host::now_ms() - t0;
                // Only a profiled call stops the recording (another call may be running beside it).
                let profile = request.profile.then(|| SolveProfile {
                    kernels: crate::profile::finish(),
                    workers: vec![WorkerShare { rows: 0..o.n, busy_ms }],
                });
                Ok((out?, profile))
            }
            Engine::Gpu { sampler, gpu, .. } => {
                let out = sampler.sample_on_backend(o, &mut progress).await?;
                // Timed to the end of the GPU's work (nothing is read back to draw).
                gpu.finish().await?;
                Ok((out, None))
            }
        }
    }
}

/// Whether a request may run on the page's thread while the workers are still booting (they
/// are up ~250–330 ms after the weights in a cold 2-core page: a worker's start, its bindings
/// and its copy of the model; the wasm itself is posted compiled): a 2-D request of at most 16,384 sample evaluations (the demo's first frame: 1,024
/// points × 16 evaluations, ~70 ms on one core), whose samples are the workers' own (same
/// kernels, noise indexed by sample). Anything larger waits for the workers.
fn page_thread_while_starting(config: &ModelConfig, request: &SampleRequest) -> bool {
    let o = &request.options;
    let guided = if o.guidance != 1.0 { 2 } else { 1 };
    let evaluations = o.n.saturating_mul(o.steps.saturating_mul(o.solver.stages() * guided));
    matches!(config.data, DataConfig::Points2d { .. }) && !o.solver.is_adaptive() && evaluations <= 16_384
}

/// The CPU engine, with `pool` (none: 0 workers) booting; `reason` says why the CPU was chosen
/// and gains how many workers it has.
pub fn open_cpu(model: &Model, pool: Option<pool::Workers>, reason: String) -> Result<(Engine, String)> {
    let sampler = CoreSampler::new(Dual::Cpu(CpuBackend), model)?;
    // Workers keep the page responsive and use every core; without them (0, or where workers
    // cannot start, e.g. a sandboxed frame) the solve runs on this thread.
    let reason = match &pool {
        Some(p) => format!("{reason}{}", p.note()),
        None => reason,
    };
    Ok((Engine::Cpu { sampler, pool }, reason))
}

/// The WebGPU engine on the page's shared device (or, with `max_binding_bytes`, a device of its
/// own that plans batches as if storage bindings were that small — for tests), drawing into
/// `canvas` if given.
pub async fn open_gpu(
    model: &Model,
    canvas: Option<&web_sys::HtmlCanvasElement>,
    max_binding_bytes: Option<u64>,
) -> Result<Engine> {
    let gpu = match max_binding_bytes {
        None => device::shared_gpu().await?,
        Some(bytes) => {
            let limits = crate::gpu::PlanLimits {
                max_binding_bytes: bytes,
                max_buffer_bytes: u64::MAX,
                max_workgroups_per_dim: u32::MAX,
            };
            device::open(&GpuOptions { limits: Some(limits), ..Default::default() }).await?
        }
    };
    let sampler = CoreSampler::new(Dual::Gpu(gpu), model)?;
    let painter = canvas.map(|c| GpuCanvas::new(gpu, c.clone()).map(Box::new)).transpose()?;
    Ok(Engine::Gpu { sampler, gpu, painter })
}

/// The states to draw at time `t` ∈ [0, 1], one per chunk of `kept`: the kept frames around t
/// mixed linearly (noise → samples when the solve kept no whole-state frames).
pub fn states_at(engine: &Engine, kept: &Kept, t: f32) -> Result<Vec<DualTensor>> {
    let sampler = engine.core();
    let b = sampler.backend();
    let o = &kept.request.options;
    let mut states = Vec::with_capacity(kept.out.chunks.len());
    for c in &kept.out.chunks {
        let whole = |f: &DualTensor| shape_of(b, f).first() == Some(&c.rows.len());
        let noise;
        let mut times: Vec<(f32, &DualTensor)> = if c.frames.iter().all(|(_, f)| whole(f)) {
            c.frames.iter().map(|(t, f)| (*t, f)).collect()
        } else {
            Vec::new()
        };
        if times.is_empty() {
            noise = sampler.noise_on_backend(o.seed, c.rows.start, c.rows.end)?;
            times.push((0.0, &noise));
        }
        if times.last().is_none_or(|(t, _)| *t != 1.0) {
            times.push((1.0, &c.samples));
        }
        let i = times.iter().rposition(|(ft, _)| *ft <= t).unwrap_or(0);
        states.push(match times.get(i + 1) {
            Some(&(tb, next)) if tb > times[i].0 => {
                let f = (t - times[i].0) / (tb - times[i].0);
                b.lincomb(times[i].1, &[(-f, times[i].1), (f, next)])?
            }
            _ => b.lincomb(times[i].1, &[])?,
        });
    }
    Ok(states)
}

fn shape_of<'a>(b: &Dual<'_>, t: &'a DualTensor) -> &'a [usize] {
    b.shape(t)
}

/// Where pictures go: a 2-D canvas (CPU engine) or the GPU engine's WebGPU surface.
pub struct Picture<'a> {
    pub config: &'a ModelConfig,
    pub canvas: &'a web_sys::HtmlCanvasElement,
    pub heat: Option<&'a render::HeatLayer>,
}

impl Picture<'_> {
    /// Draws `states` (one per chunk of `out`), with `out`'s kept paths as lines when
    /// `with_paths`.
    pub fn draw(
        &self,
        engine: &Engine,
        out: &BackendOutput<DualTensor>,
        states: &[&DualTensor],
        n: usize,
        with_paths: bool,
    ) -> Result<()> {
        let (w, h) = (self.canvas.width().max(1) as usize, self.canvas.height().max(1) as usize);
        match engine {
            Engine::Gpu { gpu, painter: Some(gc), .. } => {
                fn on_gpu(t: &DualTensor) -> Result<&GpuTensor> {
                    t.as_gpu().ok_or_else(|| Error::Gpu("the kept samples are not on the GPU".into()))
                }
                let states = states.iter().map(|t| on_gpu(t)).collect::<Result<Vec<_>>>()?;
                let scene = match self.config.data {
                    DataConfig::Points2d { range } => Scene::Points {
                        plot: PointsPlot { width: w, height: h, range },
                        states,
                        first_row: out.chunks.iter().map(|c| c.rows.start).collect(),
                        paths: if with_paths {
                            out.chunks
                                .iter()
                                .map(|c| c.frames.iter().map(|(_, f)| on_gpu(f)).collect::<Result<Vec<_>>>())
                                .collect::<Result<Vec<_>>>()?
                        } else {
                            Vec::new()
                        },
                        max_paths: MAX_DRAWN_PATHS,
                        heat: self.heat,
                    },
                    DataConfig::Image { .. } => Scene::Images {
                        grid: grid(self.config, n, w, h)?,
                        chunks: out.chunks.iter().map(|c| c.rows.start).zip(states).collect(),
                    },
                };
                gc.draw(gpu, &scene, w as u32, h as u32)
            }
            Engine::Gpu { painter: None, .. } => Err(Error::Gpu("this sampler has no canvas".into())),
            Engine::Cpu { .. } => {
                fn host(t: &DualTensor) -> Result<&[f32]> {
                    match t {
                        DualTensor::Cpu(t) => Ok(t.data()),
                        DualTensor::Gpu(_) => Err(Error::Gpu("the kept samples are not on the host".into())),
                    }
                }
                let mut data = Vec::new();
                for s in states {
                    data.extend_from_slice(host(s)?);
                }
                let img = match self.config.data {
                    DataConfig::Points2d { range } => {
                        // Paths: the first chunk's frames hold the drawn rows.
                        let paths: Vec<Vec<f32>> = if with_paths {
                            out.chunks.first().map_or(Ok(Vec::new()), |c| {
                                c.frames.iter().map(|(_, f)| host(f).map(<[f32]>::to_vec)).collect::<Result<Vec<_>>>()
                            })?
                        } else {
                            Vec::new()
                        };
                        render::density_plot(&data, range, w, h, &paths, MAX_DRAWN_PATHS, self.heat)
                    }
                    DataConfig::Image { .. } => {
                        render::centred(&render::image_grid(&data, &grid(self.config, n, w, h)?), w, h)
                    }
                };
                put_rgba(self.canvas, &img)
            }
        }
    }
}

fn grid(config: &ModelConfig, n: usize, width: usize, height: usize) -> Result<GridPlot> {
    GridPlot::for_model(config, n, 1)
        .map(|g| g.fit(width, height))
        .ok_or_else(|| Error::InvalidOption { option: "model", reason: "not an image model".into() })
}

fn put_rgba(canvas: &web_sys::HtmlCanvasElement, img: &Rgba) -> Result<()> {
    let fail = |why: &str| Error::Gpu(format!("cannot draw to the canvas: {why}"));
    let ctx = canvas
        .get_context("2d")
        .map_err(|_| fail("no 2d context"))?
        .ok_or_else(|| fail("the canvas already has another context type"))?
        .dyn_into::<web_sys::CanvasRenderingContext2d>()
        .map_err(|_| fail("not a 2d context"))?;
    let data =
        web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&img.pixels), img.width as u32, img.height as u32)
            .map_err(|_| fail("cannot make ImageData"))?;
    ctx.put_image_data(&data, 0.0, 0.0).map_err(|_| fail("putImageData failed"))
}

/// A canvas that can take a 2-D context in place of `old`, which may already hold a WebGPU one
/// (a canvas keeps its first context type): `old` itself if it can, else a [`fresh_canvas`]
/// put where `old` was. The CPU fallback after a lost device draws there.
pub fn fresh_canvas_like(old: &web_sys::HtmlCanvasElement) -> web_sys::HtmlCanvasElement {
    if old.get_context("2d").ok().flatten().is_some() {
        return old.clone();
    }
    let fresh = fresh_canvas(old);
    put_in_place(old, &fresh);
    fresh
}

/// A canvas without a context, a copy of `old` (size, id, classes, style), not yet in the page.
pub fn fresh_canvas(old: &web_sys::HtmlCanvasElement) -> web_sys::HtmlCanvasElement {
    let Some(doc) = old.owner_document() else { return old.clone() };
    let Ok(el) = doc.create_element("canvas") else { return old.clone() };
    let Ok(fresh) = el.dyn_into::<web_sys::HtmlCanvasElement>() else { return old.clone() };
    fresh.set_width(old.width());
    fresh.set_height(old.height());
    for attr in ["id", "class", "style", "role", "aria-label", "title"] {
        if let Some(v) = old.get_attribute(attr) {
            let _ = fresh.set_attribute(attr, &v);
        }
    }
    fresh
}

/// Puts `fresh` where `old` is in the page (if it is in one).
pub fn put_in_place(old: &web_sys::HtmlCanvasElement, fresh: &web_sys::HtmlCanvasElement) {
    if old.parent_node().is_some() && old != fresh {
        let _ = old.replace_with_with_node_1(fresh);
    }
}

/// How many kept paths a request asks for, for the CPU painter's lines.
pub fn with_paths(request: &SampleRequest) -> bool {
    !matches!(request.paths, Paths::None)
}
