//! Memory budgets (`src/memory.rs`, issue #13 item 1–2): a model whose single sample cannot fit
//! is refused before anything large is allocated; batches split into chunks that fit, with the
//! samples of one solve; kept trajectory frames are capped (thinned) and can be limited to the
//! drawn rows. A counting allocator measures the heap's high-water mark during a solve.

use pushforward::cpu::CpuBackend;
use pushforward::memory::{self, MemoryLimits};
use pushforward::model::{ArchConfig, DataConfig, MlpConfig, Model, ModelConfig, PathConfig, UnetConfig};
use pushforward::ode::Solver;
use pushforward::sampler::{Labels, SampleOptions, Sampler};
use pushforward::{Backend, Error};
use std::alloc::{GlobalAlloc, Layout, System};
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The heap high-water mark is process-wide: tests that read it run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn mlp(width: usize, classes: usize) -> Model {
    let config = ModelConfig {
        arch: ArchConfig::Mlp(MlpConfig {
            data_dim: 2,
            width,
            depth: 3,
            time_embed_dim: 16,
            time_scale: 1000.0,
            flow_map: false,
        }),
        data: DataConfig::Points2d { range: [[-3.0, 3.0], [-3.0, 3.0]] },
        num_classes: classes,
        path: PathConfig::Linear,
        format_version: 1,
        provenance: Default::default(),
        class_names: Vec::new(),
    };
    Model::random(config, 7).unwrap()
}

fn go() -> impl FnMut(pushforward::sampler::Progress) -> ControlFlow<()> {
    |_| ControlFlow::Continue(())
}

/// The reviewer's case: a 1.9 MB U-Net with legal fields (base 2, channel_mult [64], 1024²
/// images) asks 4.8 GB for one im2col at n = 1. It is refused when the sampler is made.
#[test]
fn a_model_whose_one_sample_cannot_fit_is_refused_at_load() {
    let config = ModelConfig {
        arch: ArchConfig::Unet(UnetConfig {
            in_channels: 1,
            base_channels: 2,
            channel_mult: vec![64],
            num_res_blocks: 1,
            groups: 2,
            time_scale: 1000.0,
        }),
        data: DataConfig::Image { channels: 1, height: 1024, width: 1024, range: [-1.0, 1.0] },
        num_classes: 0,
        path: PathConfig::Linear,
        format_version: 1,
        provenance: Default::default(),
        class_names: Vec::new(),
    };
    let fp = memory::footprint(&config);
    assert!(fp.im2col_values as u64 * 4 > 4 << 30, "im2col of 256 channels × 9 × 1024² is {} values", fp.im2col_values);
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let model = Model::random(config, 1).unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let err = Sampler::new(CpuBackend, &model).err().expect("refused");
    println!("{err}");
    assert!(matches!(err, Error::OutOfMemory(_)), "{err}");
    assert!(err.to_string().contains("GiB"), "the message states the sizes: {err}");
    // Nothing of the 4.8 GB was allocated on the way to the refusal.
    assert!(PEAK.load(Ordering::Relaxed).saturating_sub(before) < 64 << 20);
}

/// A batch over the budget is solved in chunks that fit: the heap's high-water mark during
/// the solve stays within the budget plus the output, and the samples are those of one batch.
#[test]
fn batches_split_to_fit_the_budget_with_the_samples_of_one_solve() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let model = mlp(256, 0);
    let o = SampleOptions { n: 20_000, solver: Solver::Rk4, steps: 3, seed: 5, ..Default::default() };
    // Each solve on a fresh thread: the tensor buffer recycler is per thread, so this one starts
    // empty and its spares are freed when it ends — the heap mark sees everything it holds.
    let on_thread = |limits: Option<MemoryLimits>| {
        let (model, o) = (model.clone(), o.clone());
        std::thread::spawn(move || {
            let mut s = Sampler::new(CpuBackend, &model).unwrap();
            if let Some(l) = limits {
                s = s.with_memory_limits(l).unwrap();
            }
            let mut chunks = 0;
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let out = s
                .sample(&o, &mut |p| {
                    chunks += (p.step == 0) as usize;
                    ControlFlow::Continue(())
                })
                .unwrap();
            (out, chunks, PEAK.load(Ordering::Relaxed) - base)
        })
        .join()
        .unwrap()
    };
    let (whole, _, whole_peak) = on_thread(None);
    let budget = 2u64 << 20;
    let limits = MemoryLimits { budget_bytes: budget, max_tensor_bytes: budget, ..CpuBackend.memory_limits() };
    let (split, chunks, peak) = on_thread(Some(limits));
    let output = (o.n * 2 * 4) as u64;
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "{} points: one batch heap peak {:.1} MiB; {chunks} chunks under a {} MiB budget: heap peak {:.1} MiB \
         (output {:.2} MiB)",
        o.n,
        mib(whole_peak),
        budget >> 20,
        mib(peak),
        mib(output as usize)
    );
    assert!(chunks > 1, "the batch was not split");
    // The output is held twice at the end (the chunks, then the joined samples).
    assert!((peak as u64) <= budget + 3 * output, "heap peak {peak} over the budget");
    // The unsplit batch does not fit the budget, so the split was needed. (Natively the CPU
    // backend runs the MLP in row blocks, which keeps even the unsplit batch's forward small;
    // the plan still counts a whole batch's activations per row, what wasm holds.)
    assert!(whole_peak as u64 > budget, "the unsplit batch held only {whole_peak} bytes");
    assert_eq!(whole.samples.data(), split.samples.data(), "split samples differ");
    assert_eq!(split.stats.nfe, chunks * whole.stats.nfe);
}

/// Guidance doubles the network's batch: the plan counts it (more chunks than unguided).
#[test]
fn guidance_is_counted_in_the_plan() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let model = mlp(256, 3);
    let limits = MemoryLimits { budget_bytes: 2 << 20, max_tensor_bytes: 2 << 20, ..CpuBackend.memory_limits() };
    let s = Sampler::new(CpuBackend, &model).unwrap().with_memory_limits(limits).unwrap();
    let count = |guidance: f32| {
        let mut chunks = 0;
        let o = SampleOptions { n: 8000, steps: 1, guidance, labels: Labels::Cycle, ..Default::default() };
        s.sample(&o, &mut |p| {
            chunks += (p.step == 0) as usize;
            ControlFlow::Continue(())
        })
        .unwrap();
        chunks
    };
    let (plain, guided) = (count(1.0), count(2.0));
    println!("chunks: unguided {plain}, guided {guided}");
    assert!(guided > plain, "guided {guided} vs unguided {plain}");
}

/// Kept frames: capped by thinning (every other kept step dropped, the ends kept), and limited
/// to the leading rows when asked — the frames are those rows of the full frames.
#[test]
fn trajectory_frames_are_capped_and_limited_to_the_kept_rows() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let model = mlp(32, 0);
    let (n, steps) = (100, 64);
    let full = Sampler::new(CpuBackend, &model).unwrap();
    let o = SampleOptions { n, solver: Solver::Euler, steps, seed: 3, trajectory_every: Some(1), ..Default::default() };
    let all = full.sample(&o, &mut go()).unwrap();
    assert_eq!(all.frames.len(), steps + 1);

    // Room for 10 whole frames: 65 → thinned to 9 (steps 0, 8, …, 64).
    let limits = MemoryLimits { max_kept_values: 10 * n * 2, ..CpuBackend.memory_limits() };
    let capped = Sampler::new(CpuBackend, &model).unwrap().with_memory_limits(limits).unwrap();
    let thin = capped.sample(&o, &mut go()).unwrap();
    let times: Vec<f32> = thin.frames.iter().map(|(t, _)| *t).collect();
    println!("capped frames at t = {times:?}");
    assert!(thin.frames.len() <= 10 && thin.frames.len() >= 5, "{} frames", thin.frames.len());
    assert_eq!(times.first(), Some(&0.0));
    assert_eq!(times.last(), Some(&1.0));
    for (t, f) in &thin.frames {
        let (_, want) = all.frames.iter().find(|(ta, _)| ta == t).expect("a frame of the full solve");
        assert_eq!(f.data(), want.data());
    }
    assert_eq!(thin.samples.data(), all.samples.data());

    // Only the first 7 rows' paths.
    let drawn = full.sample(&SampleOptions { trajectory_rows: Some(7), ..o.clone() }, &mut go()).unwrap();
    assert_eq!(drawn.frames.len(), steps + 1);
    for ((_, f), (_, want)) in drawn.frames.iter().zip(&all.frames) {
        assert_eq!(f.shape(), [7, 2]);
        assert_eq!(f.data(), &want.data()[..14]);
    }

    // Not even the two ends fit: an error before the solve.
    let tiny = MemoryLimits { max_kept_values: n * 2, ..CpuBackend.memory_limits() };
    let s = Sampler::new(CpuBackend, &model).unwrap().with_memory_limits(tiny).unwrap();
    let err = s.sample(&o, &mut go()).expect_err("refused");
    assert!(matches!(err, Error::InvalidOption { option: "trajectories", .. }), "{err}");
}

/// The SDE's noise index is computed in 64 bits: at a million 2-D points and step 2048 it is
/// past 2^32, where a 32-bit product (wasm32's usize) would wrap onto step 0's numbers.
#[test]
fn sde_noise_index_does_not_wrap_at_32_bits() {
    use pushforward::ode::sde::noise_index;
    let (n, len) = (1 << 20, 2);
    for k in [0usize, 1, 2047, 2048, 2049, 100_000] {
        for row in [0usize, 1, n - 1] {
            let want = (k as u128 * n as u128 + row as u128) * len as u128;
            assert_eq!(noise_index(k, n, row, len) as u128, want, "k {k}, row {row}");
        }
    }
    assert!(noise_index(2048, n, 0, len) >= 1 << 32);
    assert_ne!(noise_index(2048, n, 0, len) as u32 as u64, noise_index(2048, n, 0, len));
}
