//! End to end on the GPU: the same model, solver, steps and seed sample the same points/images
//! on the GPU as on the CPU (within 1e-3 max abs), for every solver and for guided
//! class-conditional U-Nets; and batches split by (artificially small) device limits give the
//! samples of the unsplit batch.
//!
//! Sized for lavapipe on 2 busy cores (~3 GFLOP/s): small n, few steps.

mod gpu_common;

use gpu_common::{gpu, mlp_config, open};
use pushforward::cpu::CpuBackend;
use pushforward::gpu::{GpuOptions, PlanLimits};
use pushforward::model::{ArchConfig, Model, ModelConfig};
use pushforward::ode::Solver;
use pushforward::sampler::{Labels, SampleOptions, SampleOutput, Sampler};
use pushforward::{Backend, Error};
use std::ops::ControlFlow;

fn mlp(num_classes: usize, seed: u64) -> Model {
    mlp_with(num_classes, seed, false)
}

/// The GPU tests' MLP; `flow_map`: one that also takes the step length (MeanFlow).
fn mlp_with(num_classes: usize, seed: u64, flow_map: bool) -> Model {
    Model::random(mlp_config(num_classes, flow_map), seed).unwrap()
}

fn unet() -> Model {
    Model::random(ModelConfig::mnist_unet_preset(), 5).unwrap()
}

fn run<B: Backend>(backend: B, model: &Model, o: &SampleOptions) -> SampleOutput {
    Sampler::new(backend, model).unwrap().sample(o, &mut |_| ControlFlow::Continue(())).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Every solver, on an MLP of the shipped size: GPU samples within 1e-3 of the CPU's.
#[test]
fn every_solver_matches_cpu() {
    let Some(g) = gpu() else { return };
    let model = mlp(0, 1);
    let gs = Sampler::new(g, &model).unwrap();
    let cs = Sampler::new(CpuBackend, &model).unwrap();
    for solver in Solver::ALL {
        let o = SampleOptions { n: 96, solver, steps: 3, seed: 7, rtol: 1e-3, atol: 1e-3, ..Default::default() };
        let go = gs.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
        let co = cs.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
        let d = max_abs_diff(go.samples.data(), co.samples.data());
        eprintln!("{solver}: max |gpu - cpu| = {d:.3e} ({} NFE gpu, {} NFE cpu)", go.stats.nfe, co.stats.nfe);
        assert_eq!(go.stats, co.stats, "{solver}: same steps on both backends");
        assert!(d <= 1e-3, "{solver}: samples differ by {d:e} > 1e-3");
    }
}

/// A flow map's jumps (Euler: the step length as the second time input) and its instantaneous
/// velocity (Heun) sample the same points on the GPU as on the CPU.
#[test]
fn flow_map_jumps_match_cpu() {
    let Some(g) = gpu() else { return };
    let model = mlp_with(0, 3, true);
    let gs = Sampler::new(g, &model).unwrap();
    let cs = Sampler::new(CpuBackend, &model).unwrap();
    for (solver, steps) in [(Solver::Euler, 1), (Solver::Euler, 2), (Solver::Heun, 2)] {
        let o = SampleOptions { n: 96, solver, steps, seed: 9, ..Default::default() };
        let go = gs.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
        let co = cs.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
        let d = max_abs_diff(go.samples.data(), co.samples.data());
        eprintln!("flow map, {solver} {steps} steps: max |gpu - cpu| = {d:.3e}");
        assert!(d <= 1e-3, "{solver} {steps}: samples differ by {d:e} > 1e-3");
    }
}

/// Guided class-conditional sampling (cond and uncond in one batch through repeat2 and
/// guidance_mix) on the U-Net of the shipped size and on a conditional MLP.
#[test]
fn guided_conditional_sampling_matches_cpu() {
    let Some(g) = gpu() else { return };
    let model = unet();
    let o = SampleOptions {
        n: 2,
        solver: Solver::Heun,
        steps: 2,
        seed: 3,
        labels: Labels::Cycle,
        guidance: 2.0,
        ..Default::default()
    };
    let go = run(g, &model, &o);
    let co = run(CpuBackend, &model, &o);
    let d = max_abs_diff(go.samples.data(), co.samples.data());
    eprintln!("guided U-Net, heun 2 steps: max |gpu - cpu| = {d:.3e}");
    assert!(d <= 1e-3, "guided U-Net samples differ by {d:e}");
    assert_eq!(go.labels, co.labels);
    // CFG-Zero★ (its per-sample scale through batched matmul and broadcasting) and guidance on
    // an interval of t, on both backends.
    let o = SampleOptions { cfg_zero_star: true, guidance_interval: [0.2, 1.0], zero_init_steps: 1, steps: 3, ..o };
    let go = run(g, &model, &o);
    let co = run(CpuBackend, &model, &o);
    let d = max_abs_diff(go.samples.data(), co.samples.data());
    eprintln!("guided U-Net, CFG-Zero* on [0.2, 1], zero-init 1 of 3 heun steps: max |gpu - cpu| = {d:.3e}");
    assert!(d <= 1e-3, "CFG-Zero* U-Net samples differ by {d:e}");

    let model = mlp(4, 2);
    for solver in [Solver::Rk4, Solver::Dopri5] {
        let o = SampleOptions {
            n: 40,
            solver,
            steps: 2,
            seed: 4,
            labels: Labels::Cycle,
            guidance: 3.0,
            ..Default::default()
        };
        let go = run(g, &model, &o);
        let co = run(CpuBackend, &model, &o);
        let d = max_abs_diff(go.samples.data(), co.samples.data());
        eprintln!("guided MLP, {solver}: max |gpu - cpu| = {d:.3e}");
        assert!(d <= 1e-3, "guided MLP {solver}: samples differ by {d:e}");
    }
}

/// Artificially small limits force the sampler to solve row chunks (and kernels onto 2-D grids):
/// the samples, stats per chunk and trajectory frames must be those of the unsplit batch.
#[test]
fn small_device_limits_split_batches_with_identical_samples() {
    let Some(g) = gpu() else { return };
    // MLP: the widest tensor is 256 values = 1 KiB per point: 10 KiB bindings → chunks of 10.
    let limits = PlanLimits { max_binding_bytes: 10 << 10, max_buffer_bytes: 10 << 10, max_workgroups_per_dim: 4 };
    let Some(small) = open(&GpuOptions { limits: Some(limits), ..Default::default() }) else { return };
    assert_eq!(small.memory_limits().max_tensor_bytes, 10 << 10, "tensors are planned within a 10 KiB binding");
    let model = mlp(0, 3);
    let o = SampleOptions {
        n: 47,
        solver: Solver::Midpoint,
        steps: 3,
        seed: 9,
        trajectory_every: Some(1),
        ..Default::default()
    };
    let whole = run(g, &model, &o);
    let split = run(&small, &model, &o);
    let d = max_abs_diff(whole.samples.data(), split.samples.data());
    eprintln!("MLP in 5 chunks: max |split - whole| = {d:e}");
    // Each sample goes through the same kernels with the same operands either way.
    assert!(d <= 1e-6, "split samples differ by {d:e}");
    assert_eq!(split.stats.nfe, 5 * whole.stats.nfe, "stats are summed over the 5 chunks");
    assert_eq!(split.frames.len(), whole.frames.len());
    for ((ta, fa), (tb, fb)) in whole.frames.iter().zip(&split.frames) {
        assert_eq!(ta, tb);
        assert_eq!(fa.shape(), fb.shape());
        assert!(max_abs_diff(fa.data(), fb.data()) <= 1e-6);
    }

    // Guided U-Net: one guided image's widest tensor (the 96-channel 28×28 concatenation, ×2 for
    // cond + uncond) is 602 KiB: 700 KiB bindings → one image per chunk.
    let limits =
        PlanLimits { max_binding_bytes: 700 << 10, max_buffer_bytes: 700 << 10, max_workgroups_per_dim: 65535 };
    let Some(small) = open(&GpuOptions { limits: Some(limits), ..Default::default() }) else { return };
    let model = unet();
    let o = SampleOptions {
        n: 3,
        solver: Solver::Euler,
        steps: 2,
        seed: 1,
        labels: Labels::Cycle,
        guidance: 2.0,
        ..Default::default()
    };
    let whole = run(g, &model, &o);
    let split = run(&small, &model, &o);
    let d = max_abs_diff(whole.samples.data(), split.samples.data());
    eprintln!("guided U-Net in 3 chunks: max |split - whole| = {d:e}");
    assert!(d <= 1e-6, "split U-Net samples differ by {d:e}");
    assert_eq!(split.stats.nfe, 3 * whole.stats.nfe);

    // Dopri5 chooses its steps per chunk, so its samples agree to the global solver error, not
    // bit for bit. A smooth field (time_scale 1: the time embedding varies slowly) and tolerances
    // of 1e-5 keep that well below 1e-3. Adaptive trajectories cannot be stitched across chunks
    // and are refused with a reason.
    let limits = PlanLimits { max_binding_bytes: 10 << 10, max_buffer_bytes: 10 << 10, max_workgroups_per_dim: 65535 };
    let Some(small) = open(&GpuOptions { limits: Some(limits), ..Default::default() }) else { return };
    let mut config = mlp(0, 3).config;
    if let ArchConfig::Mlp(c) = &mut config.arch {
        c.time_scale = 1.0;
    }
    let model = Model::random(config, 3).unwrap();
    let o = SampleOptions { n: 47, solver: Solver::Dopri5, rtol: 1e-5, atol: 1e-5, seed: 2, ..Default::default() };
    let whole = run(g, &model, &o);
    let split = run(&small, &model, &o);
    let d = max_abs_diff(whole.samples.data(), split.samples.data());
    eprintln!("dopri5 in 5 chunks: max |split - whole| = {d:e}");
    assert!(d <= 1e-3, "chunked dopri5 differs by {d:e}");
    let o = SampleOptions { trajectory_every: Some(1), ..o };
    let err = Sampler::new(&small, &model).unwrap().sample(&o, &mut |_| ControlFlow::Continue(()));
    assert!(matches!(err, Err(Error::InvalidOption { option: "trajectory_every", .. })), "{err:?}");

    // A sample that fits no binding at all is a typed error when the sampler is made, not a crash.
    let limits = PlanLimits { max_binding_bytes: 512, max_buffer_bytes: 512, max_workgroups_per_dim: 65535 };
    let Some(tiny) = open(&GpuOptions { limits: Some(limits), ..Default::default() }) else { return };
    let err = Sampler::new(&tiny, &mlp(0, 3)).err().expect("refused");
    assert!(matches!(err, Error::OutOfMemory(_)), "{err:?}");
    assert!(err.to_string().contains("512 B per tensor"), "{err}");
}

/// A fixed-step solve records everything and reads back once: the final finiteness check and
/// the download of the samples.
#[test]
fn fixed_step_solve_reads_back_only_at_the_end() {
    let Some(g) = open(&GpuOptions::default()) else { return };
    let model = mlp(0, 4);
    let s = Sampler::new(&g, &model).unwrap();
    let before = g.stats();
    let o = SampleOptions { n: 64, solver: Solver::Rk4, steps: 5, ..Default::default() };
    s.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
    let after = g.stats();
    assert_eq!(after.readbacks - before.readbacks, 2, "all_finite + download");
    eprintln!(
        "rk4 x5 on the MLP: {} dispatches, {} submissions",
        after.dispatches - before.dispatches,
        after.submissions - before.submissions
    );
    // Buffers are recycled: a second call creates (almost) nothing new.
    let (created, compiled) = (g.stats().pool.created, g.stats().pipelines_compiled);
    s.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
    let again = g.stats().pool.created - created;
    assert_eq!(g.stats().pipelines_compiled, compiled, "no pipeline is compiled twice");
    assert!(compiled <= pushforward::gpu::Kernel::ALL.len());
    eprintln!("second call: {again} new buffers");
    assert_eq!(again, 0, "a repeat call creates no buffers");
}

/// The CLI samples on the GPU (`--backend gpu`) what it samples on the CPU, and rejects unknown
/// backends with a message.
#[test]
fn cli_backend_gpu_matches_cpu() {
    if gpu().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pushforward-gpu-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model_path = dir.join("m.safetensors");
    std::fs::write(&model_path, pushforward::model::save(&mlp(0, 6)).unwrap()).unwrap();
    let npy = |backend: &str| {
        let out_npy = dir.join(format!("{backend}.npy"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushforward"))
            .args(["sample", "--model", model_path.to_str().unwrap(), "--n", "200", "--steps", "3"])
            .args(["--backend", backend, "--size", "32", "--out", dir.join(format!("{backend}.png")).to_str().unwrap()])
            .args(["--npy", out_npy.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{backend}: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(stdout.contains(&format!("on the {backend}")), "{stdout}");
        let bytes = std::fs::read(out_npy).unwrap();
        // .npy v1.0: 10-byte preamble + header padded to 64 bytes, then little-endian f32.
        let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        bytes[10 + header..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<f32>>()
    };
    let (g, c) = (npy("gpu"), npy("cpu"));
    assert_eq!(g.len(), 400);
    let d = max_abs_diff(&g, &c);
    eprintln!("CLI --backend gpu vs cpu: max |diff| = {d:e}");
    assert!(d <= 1e-3);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushforward"))
        .args(["sample", "--model", model_path.to_str().unwrap(), "--backend", "tpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown backend"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// SDE sampling (Euler–Maruyama, seeded per-step noise) on the GPU: the same samples as the CPU
/// (the noise is bit-identical), and a batch split by small limits gives the unsplit samples.
#[test]
fn sde_sampling_matches_cpu_and_survives_chunking() {
    let Some(g) = gpu() else { return };
    let model = mlp(0, 3);
    let o = SampleOptions { n: 50, solver: Solver::Euler, steps: 6, seed: 9, noise: 1.5, ..Default::default() };
    let go = run(g, &model, &o);
    let co = run(CpuBackend, &model, &o);
    let d = max_abs_diff(go.samples.data(), co.samples.data());
    eprintln!("SDE ε 1.5, 6 steps: max |gpu - cpu| = {d:.3e}");
    assert!(d <= 1e-3, "SDE samples differ by {d:e}");
    let ode = run(CpuBackend, &model, &SampleOptions { noise: 0.0, ..o.clone() });
    assert!(max_abs_diff(ode.samples.data(), co.samples.data()) > 1e-2, "the noise must change the samples");
    let limits = PlanLimits { max_binding_bytes: 10 << 10, max_buffer_bytes: 10 << 10, max_workgroups_per_dim: 4 };
    let Some(small) = open(&GpuOptions { limits: Some(limits), ..Default::default() }) else { return };
    let so = run(&small, &model, &o);
    let d = max_abs_diff(so.samples.data(), go.samples.data());
    eprintln!("SDE split into chunks of 10: max |split - whole| = {d:.3e}");
    assert!(d <= 1e-6, "split SDE samples differ by {d:e}");
}
