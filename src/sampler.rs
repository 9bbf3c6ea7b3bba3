//! The public sampling API: model + solver + steps + seed (+ class and guidance) → samples,
//! with per-step progress, cancellation and optional trajectory frames.

use crate::backend::Backend;
use crate::error::{Error, Result, num};
use crate::memory::{self, MemoryLimits, SolvePlan};
use crate::model::{Model, Network};
use crate::ode::{self, AdaptiveOptions, Schedule, SolveStats, Solver, StepInfo};
use crate::pointwise::BinaryOp;
use crate::rng;
use crate::tensor::Tensor;
use std::ops::ControlFlow;

/// Largest batch accepted, in f32 values (n × values per sample): the samples of a whole
/// request are held at once (the working set is split into chunks, the result is not). 2^28
/// values = 1 GiB natively; in wasm32, whose whole address space is 4 GiB and whose results are
/// copied out to JS, 2^25 (128 MiB). Bigger requests are an error, not an abort.
#[cfg(not(target_arch = "wasm32"))]
pub const MAX_BATCH_VALUES: usize = 1 << 28;
#[cfg(target_arch = "wasm32")]
pub const MAX_BATCH_VALUES: usize = 1 << 25;
/// Largest fixed step count accepted.
pub const MAX_STEPS: usize = 100_000;
/// |guidance| above this is certainly a mistake (samples leave the data range long before).
pub const MAX_GUIDANCE: f32 = 100.0;

/// Which classes to draw, for class-conditional models.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Labels {
    /// The null class: unconditional samples (the only choice for unconditional models).
    #[default]
    Unconditional,
    /// Every sample of this class.
    Class(u32),
    /// Sample i gets class i mod num_classes (a grid with one column per class).
    Cycle,
    /// One explicit class per sample.
    PerSample(Vec<u32>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    pub n: usize,
    pub solver: Solver,
    /// Steps of the uniform time grid (fixed-step solvers).
    pub steps: usize,
    /// Dopri5 tolerances and step budget.
    pub rtol: f32,
    pub atol: f32,
    pub max_steps: usize,
    pub seed: u64,
    pub labels: Labels,
    /// Classifier-free guidance scale w: v = v_u + w·(v_c − v_u); 1 = plain conditional.
    pub guidance: f32,
    /// The times t (0 noise, 1 data) where guidance applies, [from, to]; elsewhere the plain
    /// conditional velocity, one network pass instead of two. Guidance only in the middle of
    /// the path (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval improves
    /// sample and distribution quality") keeps its class fidelity with less loss of diversity.
    pub guidance_interval: [f32; 2],
    /// CFG-Zero★'s optimised scale (Fan et al. 2025): v = s·v_u + w·(v_c − s·v_u), with
    /// s = ⟨v_c, v_u⟩ / ‖v_u‖² per sample, the projection that best matches the unconditional
    /// velocity to the conditional one before extrapolating.
    pub cfg_zero_star: bool,
    /// CFG-Zero★'s zero-init: the first k steps of the fixed grid keep the noise (velocity 0),
    /// and the solve runs the remaining steps from t = k/steps.
    pub zero_init_steps: usize,
    /// Keep the state every `k` accepted steps (plus the first and last) for drawing paths.
    /// The kept values are capped (`memory::MAX_KEPT_FRAME_VALUES`): past the cap every other
    /// kept step is dropped, so the frames still span the whole solve.
    pub trajectory_every: Option<usize>,
    /// Keep frames of only the first `k` samples of the request (the paths that are drawn);
    /// `None` keeps every sample's.
    pub trajectory_rows: Option<usize>,
    /// SDE noise level ε (0: the ODE). Above 0, sampling runs Euler–Maruyama on the SDE with
    /// the flow's marginals (`ode::sde`); it needs `solver` Euler and a linear-path model.
    pub noise: f32,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            n: 1000,
            solver: Solver::Heun,
            steps: 8,
            rtol: 1e-3,
            atol: 1e-3,
            max_steps: 1000,
            seed: 0,
            labels: Labels::Unconditional,
            guidance: 1.0,
            guidance_interval: [0.0, 1.0],
            cfg_zero_star: false,
            zero_init_steps: 0,
            trajectory_every: None,
            trajectory_rows: None,
            noise: 0.0,
        }
    }
}

impl SampleOptions {
    /// The defaults for a model: a flow map takes one jump of its own (Euler, 1 step); an image
    /// model Adams–Bashforth 2 with 8 steps (8 NFE: on the shipped digits 1.4× the Fréchet floor
    /// unguided, where Heun's 8 steps cost 16 NFE and Heun at 8 NFE is 8.4×; `models/README.md`);
    /// a 2-D model Heun with 8 steps.
    pub fn for_model(config: &crate::model::ModelConfig) -> Self {
        if config.arch.flow_map() {
            Self { solver: Solver::Euler, steps: 1, ..Self::default() }
        } else if matches!(config.data, crate::model::DataConfig::Image { .. }) {
            Self { solver: Solver::Ab2, steps: 8, ..Self::default() }
        } else {
            Self::default()
        }
    }
}

/// Reported to the progress callback after every accepted step (and once at t = 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub step: usize,
    /// Known for fixed grids; `None` for adaptive solves.
    pub total_steps: Option<usize>,
    pub t: f32,
    pub nfe: usize,
}

#[derive(Debug, Clone)]
pub struct SampleOutput {
    /// [n, …sample shape].
    pub samples: Tensor,
    /// (t, state) pairs when trajectories were requested.
    pub frames: Vec<(f32, Tensor)>,
    pub stats: SolveStats,
    /// The class of each sample (empty for unconditional models).
    pub labels: Vec<u32>,
}

/// What [`Sampler::sample_on_backend`] leaves on the backend: the samples (and kept frames) of
/// each row chunk the batch was solved in.
pub struct BackendOutput<T> {
    pub chunks: Vec<BackendChunk<T>>,
    pub stats: SolveStats,
    /// The class of each sample (empty for unconditional models).
    pub labels: Vec<u32>,
}

/// Samples `rows` of a request, as backend tensors [rows.len(), …sample shape].
pub struct BackendChunk<T> {
    pub rows: std::ops::Range<usize>,
    pub samples: T,
    /// (t, state) pairs when trajectories were requested (every chunk has the same times).
    pub frames: Vec<(f32, T)>,
}

/// A model bound to a backend, ready to sample.
pub struct Sampler<B: Backend> {
    backend: B,
    network: Network<B>,
    /// Plan as if the backend had these limits (`with_memory_limits`).
    limits: Option<MemoryLimits>,
}

impl<B: Backend> Sampler<B> {
    /// Binds `model` to `backend`; a model whose single sample cannot fit the backend's memory
    /// budget is refused here, before anything is uploaded.
    pub fn new(backend: B, model: &Model) -> Result<Self> {
        memory::check_model_fits(&model.config, &backend.memory_limits())?;
        let network = Network::new(&backend, model)?;
        Ok(Self { backend, network, limits: None })
    }

    /// Plans every solve as if the backend's memory limits were `limits` (smaller budgets split
    /// batches into more chunks; tests use it to exercise splitting and the frame cap cheaply).
    pub fn with_memory_limits(mut self, limits: MemoryLimits) -> Result<Self> {
        memory::check_model_fits(&self.network.config, &limits)?;
        self.limits = Some(limits);
        Ok(self)
    }

    /// The limits solves are planned with.
    pub fn memory_limits(&self) -> MemoryLimits {
        self.limits.unwrap_or_else(|| self.backend.memory_limits())
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn network(&self) -> &Network<B> {
        &self.network
    }

    /// Checks options against the model and resolves the per-sample labels.
    fn resolve_labels(&self, o: &SampleOptions) -> Result<Vec<u32>> {
        let k = self.network.config.num_classes;
        let bad = |reason: String| Error::InvalidOption { option: "label", reason };
        if k == 0 {
            return match o.labels {
                Labels::Unconditional => Ok(Vec::new()),
                _ => Err(bad("this model is unconditional".into())),
            };
        }
        let null = k as u32;
        let labels = match &o.labels {
            Labels::Unconditional => vec![null; o.n],
            Labels::Class(c) => vec![*c; o.n],
            Labels::Cycle => (0..o.n).map(|i| (i % k) as u32).collect(),
            Labels::PerSample(v) if v.len() == o.n => v.clone(),
            Labels::PerSample(v) => return Err(bad(format!("{} labels for n = {}", v.len(), o.n))),
        };
        if let Some(&c) = labels.iter().find(|&&c| c > null) {
            return Err(bad(format!("class {c} is out of range 0..{k} (or {null} for unconditional)")));
        }
        Ok(labels)
    }

    fn validate(&self, o: &SampleOptions) -> Result<Schedule> {
        let len = self.network.config.sample_len();
        if o.n == 0 || o.n.checked_mul(len).is_none_or(|v| v > MAX_BATCH_VALUES) {
            return Err(Error::InvalidOption {
                option: "n",
                reason: format!("{} samples of {len} values; allowed 1..={}", o.n, MAX_BATCH_VALUES / len.max(1)),
            });
        }
        if o.noise != 0.0 {
            let bad = |reason: String| Err(Error::InvalidOption { option: "noise", reason });
            if !(o.noise.is_finite() && o.noise > 0.0 && o.noise <= ode::sde::MAX_NOISE) {
                return bad(format!("{} must be in [0, {}]", num(o.noise), num(ode::sde::MAX_NOISE)));
            }
            if o.solver != Solver::Euler {
                return bad(format!(
                    "noise > 0 samples the SDE with Euler–Maruyama: use solver euler (or noise 0 for {})",
                    o.solver
                ));
            }
            if self.network.config.path != crate::model::PathConfig::Linear {
                return bad("the SDE's score is derived for the linear path; this model uses another".into());
            }
            if !self.network.config.provenance.independent_coupling() {
                return bad(
                    "this model was trained on coupled (minibatch-OT or reflow) pairs, so its velocity is not the \
                     marginal one the SDE's score needs: use a model trained with independent coupling (e.g. moons_sde)"
                        .into(),
                );
            }
        }
        if !o.guidance.is_finite() || o.guidance < 0.0 || o.guidance > MAX_GUIDANCE {
            return Err(Error::InvalidOption {
                option: "guidance",
                reason: format!("{} must be in [0, {}]", num(o.guidance), num(MAX_GUIDANCE)),
            });
        }
        let [from, to] = o.guidance_interval;
        if !(from.is_finite() && to.is_finite() && 0.0 <= from && from <= to && to <= 1.0) {
            return Err(Error::InvalidOption {
                option: "guidanceFrom, guidanceTo",
                reason: format!("[{}, {}] must satisfy 0 ≤ from ≤ to ≤ 1", num(from), num(to)),
            });
        }
        if o.zero_init_steps > 0 && (o.solver.is_adaptive() || o.zero_init_steps >= o.steps) {
            return Err(Error::InvalidOption {
                option: "zeroInitSteps",
                reason: format!(
                    "{} must be below steps ({}) and needs a fixed-step solver (not {})",
                    o.zero_init_steps, o.steps, o.solver
                ),
            });
        }
        if o.trajectory_every == Some(0) {
            return Err(Error::InvalidOption { option: "trajectory_every", reason: "must be ≥ 1".into() });
        }
        if o.solver.is_adaptive() {
            Ok(Schedule::Adaptive(AdaptiveOptions {
                t0: 0.0,
                t1: 1.0,
                rtol: o.rtol,
                atol: o.atol,
                max_steps: o.max_steps,
                initial_step: None,
            }))
        } else {
            if o.steps == 0 || o.steps > MAX_STEPS {
                return Err(Error::InvalidOption {
                    option: "steps",
                    reason: format!("{} must be in 1..={MAX_STEPS}", o.steps),
                });
            }
            // Zero-init: the noise is the state at t = k/steps; the grid's later points are
            // those of the whole grid, so the steps keep their size.
            let grid = ode::uniform_grid(0.0, 1.0, o.steps)?;
            Ok(Schedule::Grid(grid[o.zero_init_steps..].to_vec()))
        }
    }

    /// The initial noise x0 [n, …sample shape] for a seed, on the host: sample i, value j is
    /// `rng::normal(seed, STREAM_INIT, i·len + j)`. Backends generate the same numbers with
    /// [`Backend::normal_noise`] (bit-identical on the CPU; within a few ulps on the GPU).
    pub fn initial_noise(&self, n: usize, seed: u64) -> Result<Tensor> {
        let mut shape = vec![n];
        shape.extend(self.network.config.sample_shape());
        let mut x0 = Tensor::zeros(shape)?;
        rng::fill_normal(seed, rng::STREAM_INIT, 0, x0.data_mut());
        Ok(x0)
    }

    /// Draws `o.n` samples. `progress` is called after every accepted step; returning
    /// `ControlFlow::Break(())` cancels the solve with `Error::Cancelled`. Blocking form for
    /// native code; the browser awaits [`Sampler::sample_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn sample(
        &self,
        o: &SampleOptions,
        progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<SampleOutput> {
        pollster::block_on(self.sample_async(o, progress))
    }

    /// [`Sampler::sample`] as a future: [`Sampler::sample_on_backend`], then
    /// [`Sampler::download`].
    pub async fn sample_async(
        &self,
        o: &SampleOptions,
        progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<SampleOutput> {
        let out = self.sample_on_backend(o, progress).await?;
        self.download(&out).await
    }

    /// [`Sampler::sample_rows_on_backend`] read back to the host: the unit of work of one
    /// worker when a request is split across several.
    pub async fn sample_rows_async(
        &self,
        o: &SampleOptions,
        rows: std::ops::Range<usize>,
        progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<SampleOutput> {
        let out = self.sample_rows_on_backend(o, rows, progress).await?;
        self.download(&out).await
    }

    /// Reads a solve's samples and frames back to the host (one download per chunk and frame).
    pub async fn download(&self, out: &BackendOutput<B::Tensor>) -> Result<SampleOutput> {
        let b = &self.backend;
        let n: usize = out.chunks.iter().map(|c| c.rows.len()).sum();
        let mut data = Vec::with_capacity(n * self.network.config.sample_len());
        let mut frames: Vec<(f32, Vec<f32>)> = Vec::new();
        for (c, chunk) in out.chunks.iter().enumerate() {
            data.extend(b.download(&chunk.samples).await?.into_data());
            for (k, (t, f)) in chunk.frames.iter().enumerate() {
                let host = b.download(f).await?.into_data();
                // Fixed grids give every chunk the same frame times.
                match frames.get_mut(k) {
                    Some((_, acc)) if c > 0 => acc.extend(host),
                    _ => frames.push((*t, host)),
                }
            }
        }
        let mut shape = vec![n];
        shape.extend(self.network.config.sample_shape());
        let samples = Tensor::new(shape.clone(), data)?;
        let len = self.network.config.sample_len().max(1);
        let frame = |f: Vec<f32>| {
            let mut shape = shape.clone();
            shape[0] = f.len() / len;
            Tensor::new(shape, f)
        };
        let mut frames = frames.into_iter().map(|(t, f)| Ok((t, frame(f)?))).collect::<Result<Vec<_>>>()?;
        // Adaptive solves don't know their last step in advance: make sure the end is a frame
        // (of the rows that kept frames; rows past `trajectory_rows` kept none).
        if let Some((t, last)) = frames.last()
            && *t != 1.0
        {
            let kept = last.shape()[0];
            frames.push((1.0, frame(samples.data()[..kept * len].to_vec())?));
        }
        let first = out.chunks.first().map_or(0, |c| c.rows.start);
        let labels = out.labels.get(first..first + n).map_or_else(Vec::new, <[u32]>::to_vec);
        Ok(SampleOutput { samples, frames, stats: out.stats, labels })
    }

    /// Draws `o.n` samples and leaves them on the backend (on the GPU: nothing is read back, so
    /// they can be drawn straight from their buffers).
    ///
    /// Batches larger than the backend can hold at once (on the GPU: the largest intermediate
    /// tensor must fit one storage binding, see [`Backend::max_batch_rows`]) are solved as row
    /// chunks one after the other. Noise is indexed by sample, so the samples of a fixed-step
    /// solve are the same as in one batch; an adaptive (Dopri5) solve controls its steps per
    /// chunk, so its samples can differ slightly. For chunked solves `stats` are summed over the
    /// chunks and `progress` restarts at step 0 for each chunk.
    pub async fn sample_on_backend(
        &self,
        o: &SampleOptions,
        progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<BackendOutput<B::Tensor>> {
        self.sample_rows_on_backend(o, 0..o.n, progress).await
    }

    /// Only samples `rows` of the request `o`: the noise and labels of exactly those rows of the
    /// whole batch, so splitting a request over workers gives the samples of one solve. The
    /// output's `labels` are those of the whole request.
    pub async fn sample_rows_on_backend(
        &self,
        o: &SampleOptions,
        rows: std::ops::Range<usize>,
        progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<BackendOutput<B::Tensor>> {
        let schedule = self.validate(o)?;
        if rows.start >= rows.end || rows.end > o.n {
            return Err(Error::InvalidOption {
                option: "rows",
                reason: format!("{rows:?} is not a non-empty range within 0..{}", o.n),
            });
        }
        let labels = self.resolve_labels(o)?;
        let guided = !labels.is_empty() && o.guidance != 1.0;
        let limits = self.memory_limits();
        let config = &self.network.config;
        // The solver's states per row: the slopes it holds, x, the stage input, the new state and the
        // error estimate; with guidance the network also sees [x; x].
        // CFG-Zero★'s scale adds the two halves and their products.
        let states =
            o.solver.held_slopes() + 5 + if guided { 2 } else { 0 } + if guided && o.cfg_zero_star { 4 } else { 0 };
        let plan =
            SolvePlan::new(&memory::footprint(config), &limits, config.sample_len(), 1 + guided as usize, states, 0);
        let (wanted, rows) = (rows.clone(), plan.max_rows(&limits)?.min(rows.len()));
        let max_frames = self.max_kept_frames(o, &wanted)?;
        if rows < wanted.len() && o.solver.is_adaptive() && o.trajectory_every.is_some() {
            return Err(Error::InvalidOption {
                option: "trajectory_every",
                reason: format!(
                    "{} samples are split into chunks of {rows} on this backend, and adaptive steps differ between \
                     chunks: request trajectories for at most {rows} samples or use a fixed-step solver",
                    wanted.len()
                ),
            });
        }
        let mut stats = SolveStats::default();
        let mut chunks = Vec::with_capacity(wanted.len().div_ceil(rows));
        for start in wanted.clone().step_by(rows) {
            let end = (start + rows).min(wanted.end);
            let (chunk, s) = self.solve_rows(o, &schedule, &labels, start, end, max_frames, progress).await?;
            stats.nfe += s.nfe;
            stats.accepted += s.accepted;
            stats.rejected += s.rejected;
            chunks.push(chunk);
        }
        Ok(BackendOutput { chunks, stats, labels })
    }

    /// Paths from given starting points `x0` [n, …] (not seeded noise) to t = 1, every step kept:
    /// the path of a point dropped on the canvas. Unconditional models only.
    pub async fn paths_from(&self, x0: &Tensor, solver: Solver, steps: usize) -> Result<Vec<(f32, Tensor)>> {
        if self.network.config.num_classes > 0 {
            return Err(Error::InvalidOption {
                option: "model",
                reason: "paths from chosen points need an unconditional model".into(),
            });
        }
        let o = SampleOptions { n: x0.shape().first().copied().unwrap_or(0), solver, steps, ..Default::default() };
        let schedule = self.validate(&o)?;
        let b = &self.backend;
        let net = &self.network;
        let mut frames: Vec<(f32, B::Tensor)> = Vec::new();
        let map_grid = self.flow_map_grid(solver, &schedule, 0.0);
        let mut velocity =
            |x: &B::Tensor, t: f32| net.average_velocity(b, x, t, map_grid.map_or(0.0, |g| step_from(g, t)), None);
        let mut keep = |info: &StepInfo<'_, B::Tensor>| -> Result<()> {
            frames.push((info.t, b.lincomb(info.x, &[])?));
            Ok(())
        };
        ode::integrate_async(b, solver, &schedule, b.upload(x0)?, &mut velocity, &mut keep).await?;
        let mut out = Vec::with_capacity(frames.len());
        for (t, f) in &frames {
            out.push((*t, b.download(f).await?));
        }
        Ok(out)
    }

    /// The velocity v(x, t) at the cell centres of a `res`×`res` grid over `range` (row-major,
    /// top row first, y up), [res², 2]: the flow field at time t. Unconditional models only.
    pub async fn velocity_grid(&self, range: [[f32; 2]; 2], res: usize, t: f32) -> Result<Tensor> {
        if res == 0 || res > 256 || !(0.0..=1.0).contains(&t) {
            return Err(Error::InvalidOption {
                option: "resolution",
                reason: format!("{res} cells per side (1..=256) at t = {} (in [0, 1])", num(t)),
            });
        }
        if self.network.config.num_classes > 0 || self.network.config.sample_len() != 2 {
            return Err(Error::InvalidOption {
                option: "model",
                reason: "the flow field is drawn for unconditional 2-D models".into(),
            });
        }
        let pts = crate::render::cell_centres(range, res, res);
        let b = &self.backend;
        let x = b.upload(&Tensor::new(vec![res * res, 2], pts)?)?;
        b.download(&self.network.velocity(b, &x, t, None)?).await
    }

    /// The grid whose steps a flow-map model jumps: Euler's steps forward in time on the ODE
    /// (x + h·u(x, t, h) is then the map's own step). Other solvers, backward grids and the SDE
    /// evaluate the instantaneous velocity (step 0), so every solver works on a flow map.
    fn flow_map_grid<'s>(&self, solver: Solver, schedule: &'s Schedule, noise: f32) -> Option<&'s [f32]> {
        match schedule {
            Schedule::Grid(grid)
                if self.network.config.arch.flow_map()
                    && solver == Solver::Euler
                    && noise == 0.0
                    && grid.windows(2).all(|w| w[0] < w[1]) =>
            {
                Some(grid)
            }
            _ => None,
        }
    }

    /// The initial noise of samples `start..end` on the backend (what a solve starts from).
    pub fn noise_on_backend(&self, seed: u64, start: usize, end: usize) -> Result<B::Tensor> {
        let len = self.network.config.sample_len();
        let mut shape = vec![end.saturating_sub(start)];
        shape.extend(self.network.config.sample_shape());
        self.backend.normal_noise(seed, rng::STREAM_INIT, start as u64 * len as u64, &shape)
    }

    /// How many trajectory frames a solve of `rows` of `o` may keep: the kept values (frames ×
    /// kept rows × sample length, all chunks together) stay within
    /// `memory::MAX_KEPT_FRAME_VALUES`. An error when not even the two ends fit.
    fn max_kept_frames(&self, o: &SampleOptions, rows: &std::ops::Range<usize>) -> Result<usize> {
        if o.trajectory_every.is_none() {
            return Ok(0);
        }
        let kept_rows = o.trajectory_rows.map_or(rows.len(), |k| k.min(o.n).saturating_sub(rows.start).min(rows.len()));
        let per_frame = kept_rows.saturating_mul(self.network.config.sample_len()).max(1);
        let cap = self.memory_limits().max_kept_values;
        let frames = cap / per_frame;
        if frames < 2 {
            return Err(Error::InvalidOption {
                option: "trajectories",
                reason: format!(
                    "keeping the paths of {kept_rows} samples needs {per_frame} values a step, over the cap of {cap} \
                     values for all kept steps: keep fewer samples' paths"
                ),
            });
        }
        Ok(frames)
    }

    /// Solves samples `start..end` of the request (noise and labels of exactly those rows),
    /// keeping at most `max_frames` trajectory frames of the kept rows.
    #[allow(clippy::too_many_arguments)]
    async fn solve_rows(
        &self,
        o: &SampleOptions,
        schedule: &Schedule,
        all_labels: &[u32],
        start: usize,
        end: usize,
        max_frames: usize,
        progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<(BackendChunk<B::Tensor>, SolveStats)> {
        let b = &self.backend;
        let n = end - start;
        // Noise is generated on the backend (the GPU runs rng.wgsl: nothing to upload), indexed
        // by sample so that chunks draw exactly the numbers of the whole batch.
        let x0 = self.noise_on_backend(o.seed, start, end)?;
        let labels: Vec<u32> = if all_labels.is_empty() { Vec::new() } else { all_labels[start..end].to_vec() };

        let conditional = !labels.is_empty();
        let guided = conditional && o.guidance != 1.0;
        // For guidance, cond and uncond run as one batch [x; x] with labels [y; null].
        let guided_labels: Vec<u32> = if guided {
            labels.iter().copied().chain(std::iter::repeat_n(self.network.config.num_classes as u32, n)).collect()
        } else {
            Vec::new()
        };
        let net = &self.network;
        let [from, to] = o.guidance_interval;
        // CFG-Zero★'s ε, uploaded once per solve (not per evaluation).
        let zero_star_eps =
            if guided && o.cfg_zero_star { Some(b.upload(&Tensor::new(vec![1], vec![1e-8])?)?) } else { None };
        let map_grid = self.flow_map_grid(o.solver, schedule, o.noise);
        let mut velocity = |x: &B::Tensor, t: f32| -> Result<B::Tensor> {
            let step = map_grid.map_or(0.0, |grid| step_from(grid, t));
            if guided && (from..=to).contains(&t) {
                let v = net.average_velocity(b, &b.repeat2(x)?, t, step, Some(&guided_labels))?;
                match &zero_star_eps {
                    Some(eps) => zero_star_mix(b, &v, o.guidance, n, eps),
                    None => b.guidance_mix(&v, o.guidance),
                }
            } else {
                net.average_velocity(b, x, t, step, conditional.then_some(&labels[..]))
            }
        };

        // Trajectory frames stay on the backend during the solve (a GPU copy, no readback) and
        // are downloaded once at the end. Only the kept rows are copied; past `max_frames` every
        // other kept step is dropped and the stride doubles, so memory stays bounded and the
        // frames still span the solve (the same steps in every chunk of a fixed grid).
        let kept = o.trajectory_rows.map_or(n, |k| k.min(end).saturating_sub(start));
        let mut stride = o.trajectory_every.unwrap_or(1);
        let mut frames: Vec<(f32, B::Tensor)> = Vec::new();
        let mut on_step = |info: &StepInfo<'_, B::Tensor>| -> Result<()> {
            if o.trajectory_every.is_some() && kept > 0 {
                let last = info.total_steps == Some(info.step);
                if info.step % stride == 0 || last {
                    if frames.len() >= max_frames {
                        // Keep frames 0, 2, 4, …: the first stays, the spacing doubles.
                        let mut i = 0;
                        frames.retain(|_| {
                            i += 1;
                            (i - 1) % 2 == 0
                        });
                        stride *= 2;
                    }
                    if info.step % stride == 0 || last {
                        let copy = if kept == n { b.lincomb(info.x, &[])? } else { b.slice_rows(info.x, 0..kept)? };
                        frames.push((info.t, copy));
                    }
                }
            }
            match progress(Progress { step: info.step, total_steps: info.total_steps, t: info.t, nfe: info.nfe }) {
                ControlFlow::Continue(()) => Ok(()),
                ControlFlow::Break(()) => Err(Error::Cancelled),
            }
        };
        let (x1, stats) = match schedule {
            Schedule::Grid(grid) if o.noise > 0.0 => {
                // Step k's noise for sample i sits at index (k·n + i)·len of the SDE stream: the
                // same numbers whatever the chunking.
                let len = self.network.config.sample_len();
                let shape = b.shape(&x0).to_vec();
                let mut noise = |k: usize| {
                    b.normal_noise(o.seed, rng::STREAM_SDE, ode::sde::noise_index(k, o.n, start, len), &shape)
                };
                ode::sde::integrate_euler_maruyama(b, grid, o.noise, x0, &mut velocity, &mut noise, &mut on_step)
                    .await?
            }
            _ => ode::integrate_async(b, o.solver, schedule, x0, &mut velocity, &mut on_step).await?,
        };
        Ok((BackendChunk { rows: start..end, samples: x1, frames }, stats))
    }
}

/// The length of the grid step that starts at `t` (Euler evaluates only at grid points, each
/// exactly as the grid holds it); 0 off the grid. The grid increases (`flow_map_grid`), so a
/// binary search: a linear scan per evaluation would make a long solve quadratic in its steps.
fn step_from(grid: &[f32], t: f32) -> f32 {
    let i = grid.partition_point(|&g| g < t);
    match (grid.get(i), grid.get(i + 1)) {
        (Some(&start), Some(&end)) if start == t => end - start,
        _ => 0.0,
    }
}

/// CFG-Zero★'s guided velocity from v = [v_c; v_u] ([2n, …]): s·v_u + w·(v_c − s·v_u) with
/// s = ⟨v_c, v_u⟩ / (‖v_u‖² + ε) per sample (`eps`: [1] holding 1e-8). Built from the
/// backends' batched matmul, broadcasting multiply and linear combination, so both backends
/// compute it alike.
fn zero_star_mix<B: Backend>(b: &B, v: &B::Tensor, w: f32, n: usize, eps: &B::Tensor) -> Result<B::Tensor> {
    let shape = b.shape(v).to_vec();
    let sample_shape = crate::shapes::guidance_mix(&shape)?;
    let len: usize = shape[1..].iter().product();
    let cond = b.reshape_owned(b.slice_rows(v, 0..n)?, &[n, 1, len])?;
    let uncond = b.reshape_owned(b.slice_rows(v, n..2 * n)?, &[n, len, 1])?;
    let dot = b.matmul(&cond, &uncond)?;
    let uncond_row = b.reshape(&uncond, &[n, 1, len])?;
    let norm2 = b.matmul(&uncond_row, &uncond)?;
    let scale = b.binary(&dot, &b.binary(&norm2, eps, BinaryOp::Add)?, BinaryOp::Div)?;
    let scaled = b.binary(&uncond_row, &scale, BinaryOp::Mul)?;
    let mixed = b.lincomb(&scaled, &[(w, &cond), (-w, &scaled)])?;
    b.reshape_owned(mixed, &sample_shape)
}
