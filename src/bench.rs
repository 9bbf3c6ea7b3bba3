//! `pushforward bench`: throughput of the CPU kernels and of whole sampling calls on this
//! machine. Peer comparisons (the `gemm` crate) live in `benches/cpu_kernels.rs`, which can use
//! dev-dependencies; this one ships in the binary and needs none.

use crate::cpu::{Activation, CpuBackend, conv2d, matmul};
use crate::gpu::tuning::{ConvVariant, LinearClass, LinearVariant, WallTimer};
use crate::model::{Model, ModelConfig};
use crate::ode::Solver;
use crate::sampler::{Labels, SampleOptions, Sampler};
use std::ops::ControlFlow;
use std::time::Instant;

/// Median seconds of `reps` runs of `f` after one warm-up run.
pub fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run_cpu(quick: bool) {
    let reps = if quick { 3 } else { 7 };
    println!("CPU kernels, single thread (median of {reps})");
    println!("{:<34} {:>10} {:>10}", "kernel", "ms", "GFLOP/s");
    let sizes: &[usize] = if quick { &[128, 256] } else { &[256, 512, 1024] };
    for &s in sizes {
        let (a, w) = (crate::rng::test_values(s * s, 1), crate::rng::test_values(s * s, 2));
        let mut out = vec![0.0; s * s];
        let t = median_secs(reps, || matmul::linear(&a, &w, None, Activation::None, s, s, s, &mut out));
        println!(
            "{:<34} {:>10.2} {:>10.1}",
            format!("linear {s}x{s}x{s}"),
            t * 1e3,
            2.0 * (s * s * s) as f64 / t / 1e9
        );
    }
    let shape = if quick {
        conv2d::Conv2dShape { batch: 2, c_in: 32, h: 16, w: 16, c_out: 32, kh: 3, kw: 3, stride: 1, pad: 1 }
    } else {
        conv2d::Conv2dShape { batch: 16, c_in: 64, h: 32, w: 32, c_out: 64, kh: 3, kw: 3, stride: 1, pad: 1 }
    };
    let x = crate::rng::test_values(shape.batch * shape.c_in * shape.h * shape.w, 3);
    let wt = crate::rng::test_values(shape.c_out * shape.c_in * 9, 4);
    let mut out = vec![0.0; shape.out_len()];
    let t = median_secs(reps, || conv2d::conv2d(&x, &wt, None, &shape, &mut out));
    println!(
        "{:<34} {:>10.2} {:>10.1}",
        format!("conv3x3 {}x{}x{}x{}", shape.batch, shape.c_in, shape.h, shape.w),
        t * 1e3,
        shape.flops() / t / 1e9
    );

    println!("\nSampling on the cpu backend (random weights of the shipped sizes)");
    println!("{:<44} {:>8} {:>6} {:>10}", "workload", "solver", "NFE", "ms");
    let (mlp, unet) = bench_configs();
    let n_points = if quick { 1024 } else { 4096 };
    let n_images = if quick { 2 } else { 16 };
    let cases = [
        (&mlp, format!("MLP 34-256x3-2, {n_points} points"), n_points, Solver::Heun, 8, Labels::Unconditional, 1.0),
        (
            &unet,
            format!("U-Net 32x[1,2,2], {n_images} images, w=2"),
            n_images,
            Solver::Heun,
            if quick { 2 } else { 10 },
            Labels::Cycle,
            2.0,
        ),
    ];
    for (cfg, name, n, solver, steps, labels, guidance) in cases {
        let model = Model::random(cfg.clone(), 0).expect("valid bench config");
        let sampler = Sampler::new(CpuBackend, &model).expect("cpu sampler");
        let opts = SampleOptions { n, solver, steps, labels, guidance, ..Default::default() };
        let mut nfe = 0;
        let t = median_secs(if quick { 1 } else { 3 }, || {
            nfe = sampler.sample(&opts, &mut |_| ControlFlow::Continue(())).expect("bench sample").stats.nfe;
        });
        println!("{:<44} {:>8} {:>6} {:>10.1}", name, solver.to_string(), nfe, t * 1e3);
    }
}

fn once_secs(f: &mut dyn FnMut()) -> f64 {
    let s = Instant::now();
    f();
    s.elapsed().as_secs_f64()
}

/// One sampling workload of the GPU benchmark.
struct Workload {
    name: String,
    /// "full" (the size the issue names) or "scaled" (sized so a software adapter takes seconds).
    size: &'static str,
    model: Model,
    opts: SampleOptions,
    cpu: bool,
}

fn bench_configs() -> (ModelConfig, ModelConfig) {
    (ModelConfig::mlp_preset(256, 3), ModelConfig::mnist_unet_preset())
}

/// The shipped moons and mnist models when run from the repository (`models/`), else random
/// weights of the preset sizes; with a short label for the table.
fn bench_models() -> ((Model, String), (Model, String)) {
    let (mlp, unet) = bench_configs();
    let load = |path: &str, fallback: ModelConfig, label: &str| match std::fs::read(path)
        .ok()
        .and_then(|b| Model::from_bytes(&b).ok())
    {
        Some(m) => (m, format!("{label} ({path})")),
        None => (Model::random(fallback, 0).expect("valid preset"), format!("{label} (random weights)")),
    };
    (load("models/moons.safetensors", mlp, "moons MLP"), load("models/mnist.safetensors", unet, "mnist U-Net"))
}

/// `pushforward bench gpu`: whole sample calls on the GPU backend next to the CPU backend,
/// the GPU time per kernel family (timestamp queries), the cost of the parameter arena vs a
/// fresh uniform buffer per dispatch, and Dopri5's per-step readback.
pub fn run_gpu(quick: bool) -> Result<(), String> {
    use crate::gpu::{Family, GpuBackend, GpuOptions};
    let gpu = GpuBackend::new(&GpuOptions { timestamps: true, ..Default::default() }).map_err(|e| e.to_string())?;
    let ctx = gpu.context();
    println!("GPU adapter: {}", ctx.describe());
    let t = Instant::now();
    gpu.warm_up().map_err(|e| e.to_string())?;
    println!(
        "creating all {} pipelines: {:.2} s (once per device; a driver that compiles lazily, like lavapipe, does it in the untimed warm-up call)",
        gpu.stats().pipelines_compiled,
        t.elapsed().as_secs_f64()
    );
    if !ctx.timestamps {
        println!("this adapter has no TIMESTAMP_QUERY: no per-kernel-family breakdown");
    }

    let ((mlp, mlp_name), (unet, unet_name)) = bench_models();
    kernel_throughput(&gpu, &unet)?;
    let mut cases = Vec::new();
    let heun = |n, steps, labels, guidance| SampleOptions {
        n,
        solver: Solver::Heun,
        steps,
        labels,
        guidance,
        ..Default::default()
    };
    // Scaled rows first: they also warm the pipelines and the buffer pool for the full rows.
    let n_small = if quick { 1024 } else { 4096 };
    cases.push(Workload {
        name: format!("{mlp_name}, {n_small} points, heun 8"),
        size: "scaled",
        model: mlp.clone(),
        opts: heun(n_small, 8, Labels::Unconditional, 1.0),
        cpu: true,
    });
    let (n_img, steps_img) = if quick { (2, 2) } else { (4, 10) };
    cases.push(Workload {
        name: format!("{unet_name}, {n_img} images, w=2, heun {steps_img}"),
        size: "scaled",
        model: unet.clone(),
        opts: heun(n_img, steps_img, Labels::Cycle, 2.0),
        cpu: true,
    });
    if !quick {
        cases.push(Workload {
            name: format!("{mlp_name}, 65536 points, heun 8"),
            size: "full",
            model: mlp.clone(),
            opts: heun(65536, 8, Labels::Unconditional, 1.0),
            cpu: true,
        });
        cases.push(Workload {
            name: format!("{unet_name}, 16 images, w=2, heun 10"),
            size: "full",
            model: unet.clone(),
            opts: heun(16, 10, Labels::Cycle, 2.0),
            cpu: true,
        });
    }
    let reps = if quick { 1 } else { 3 };
    let mut rows = Vec::new();
    println!("\n| workload | size | NFE | cpu ms | gpu ms | gpu/cpu | GPU time by kernel family |");
    println!("|---|---|---:|---:|---:|---:|---|");
    for w in &cases {
        let model = &w.model;
        let gs = Sampler::new(&gpu, model).map_err(|e| e.to_string())?;
        let mut nfe = 0;
        let mut err = None;
        // Scaled rows: median of `reps` after a warm-up call; full rows: one timed call, after
        // a warm-up call on the GPU (its first call at a new batch size creates and zero-fills
        // that size's buffers: the H200's one cold 16-image call took 165 ms, 8.3 ms per NFE),
        // but not on the CPU (seconds a call there, and nothing to warm).
        let time = |f: &mut dyn FnMut()| if w.size == "full" { once_secs(f) } else { median_secs(reps, f) };
        let g_time = |f: &mut dyn FnMut()| median_secs(if w.size == "full" { 1 } else { reps }, f);
        let g_secs = g_time(&mut || match gs.sample(&w.opts, &mut |_| ControlFlow::Continue(())) {
            Ok(o) => nfe = o.stats.nfe,
            Err(e) => err = Some(e.to_string()),
        });
        if let Some(e) = err {
            return Err(e);
        }
        let c_secs = if w.cpu {
            let cs = Sampler::new(CpuBackend, model).map_err(|e| e.to_string())?;
            time(&mut || {
                cs.sample(&w.opts, &mut |_| ControlFlow::Continue(())).expect("cpu bench sample");
            })
        } else {
            f64::NAN
        };
        // Per-family shares from a separate, profiled call (timestamps cost a readback per
        // submission, so the timed calls above run without them).
        let shares = if ctx.timestamps {
            gpu.set_profiling(true).map_err(|e| e.to_string())?;
            gs.sample(&w.opts, &mut |_| ControlFlow::Continue(())).map_err(|e| e.to_string())?;
            let p = gpu.profile().map_err(|e| e.to_string())?.unwrap_or_default();
            gpu.set_profiling(false).map_err(|e| e.to_string())?;
            let total: f64 = p.secs.values().sum();
            let mut v: Vec<(Family, f64)> = p.secs.iter().map(|(f, s)| (*f, *s)).collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1));
            let parts: Vec<String> = v
                .iter()
                .filter(|(_, s)| *s / total >= 0.005)
                .map(|(f, s)| format!("{} {:.0}%", f.name(), 100.0 * s / total))
                .collect();
            format!("{} (sum {:.0} ms)", parts.join(", "), total * 1e3)
        } else {
            "n/a (no timestamp queries)".into()
        };
        let row = format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {} |",
            w.name,
            w.size,
            nfe,
            c_secs * 1e3,
            g_secs * 1e3,
            g_secs / c_secs,
            shares
        );
        println!("{row}");
        rows.push(row);
    }

    // Parameter arena vs a fresh uniform buffer per dispatch, on the small MLP (many small
    // dispatches, where per-dispatch overhead shows).
    let gs = Sampler::new(&gpu, &mlp).map_err(|e| e.to_string())?;
    let o = heun(256, 8, Labels::Unconditional, 1.0);
    let time_mode = |fresh: bool| -> Result<f64, String> {
        gpu.set_fresh_param_buffers(fresh).map_err(|e| e.to_string())?;
        let s = median_secs(if quick { 3 } else { 9 }, || {
            gs.sample(&o, &mut |_| ControlFlow::Continue(())).expect("bench sample");
        });
        Ok(s)
    };
    let d0 = gpu.stats().dispatches;
    gs.sample(&o, &mut |_| ControlFlow::Continue(())).map_err(|e| e.to_string())?;
    let per_call = gpu.stats().dispatches - d0;
    let (arena, fresh) = (time_mode(false)?, time_mode(true)?);
    gpu.set_fresh_param_buffers(false).map_err(|e| e.to_string())?;
    println!(
        "\nuniform parameters, {mlp_name}, 256 points heun 8 ({per_call} dispatches per call): arena {:.2} ms, fresh buffer per dispatch {:.2} ms",
        arena * 1e3,
        fresh * 1e3
    );

    // Dopri5: one 4-byte readback per attempted step.
    let o = SampleOptions { n: n_small, solver: Solver::Dopri5, rtol: 1e-3, atol: 1e-3, ..Default::default() };
    let before = gpu.stats();
    let t = Instant::now();
    let out = gs.sample(&o, &mut |_| ControlFlow::Continue(())).map_err(|e| e.to_string())?;
    let wall = t.elapsed().as_secs_f64();
    let after = gpu.stats();
    let readbacks = after.readbacks - before.readbacks;
    // Round trip of one scalar readback on an idle queue: the pure stall a step pays.
    let x = crate::Backend::upload(&gpu, &crate::Tensor::zeros(vec![1]).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let rt = median_secs(21, || {
        pollster::block_on(crate::Backend::all_finite(&gpu, &x)).expect("readback");
    });
    println!(
        "dopri5, MLP {n_small} points: {} steps ({} rejected), {} NFE, {readbacks} readbacks, {:.0} ms wall; \
         waiting in readbacks {:.0} ms (includes the GPU work they wait for); idle round trip {:.3} ms per readback \
         → {:.1} ms = {:.1}% of the solve",
        out.stats.accepted + out.stats.rejected,
        out.stats.rejected,
        out.stats.nfe,
        wall * 1e3,
        (after.readback_secs - before.readback_secs) * 1e3,
        rt * 1e3,
        rt * readbacks as f64 * 1e3,
        100.0 * rt * readbacks as f64 / wall
    );
    let s = gpu.stats();
    println!(
        "buffer pool: {} buffers created, {} reuses; {} submissions, {} dispatches",
        s.pool.created, s.pool.reused, s.submissions, s.dispatches
    );
    Ok(())
}

fn host(gpu: &crate::gpu::GpuBackend, t: &crate::gpu::GpuTensor) -> Result<crate::Tensor, String> {
    pollster::block_on(crate::Backend::download(gpu, t)).map_err(|e| e.to_string())
}

/// "max |Δ| vs CPU 3.1e-7": the largest difference over the largest reference value, "WRONG: …"
/// above 1e-4 (NaN included).
fn versus_cpu(got: &crate::Tensor, want: &crate::Tensor) -> String {
    let scale = want.data().iter().fold(0f32, |a, v| a.max(v.abs()));
    // Not f32::max, which would drop a NaN difference.
    let worst = |a: f32, d: f32| if d > a || d.is_nan() { d } else { a };
    let diff = got.data().iter().zip(want.data()).fold(0f32, |a, (g, c)| worst(a, (g - c).abs())) / scale;
    format!("{}max |Δ| vs CPU {diff:.1e}", if diff <= 1e-4 { "" } else { "WRONG: " })
}

/// Seconds from recording `f`'s GPU work until the device has finished it.
fn gpu_secs(gpu: &crate::gpu::GpuBackend, f: &mut dyn FnMut() -> crate::Result<()>) -> Result<f64, String> {
    let t = Instant::now();
    f().map_err(|e| e.to_string())?;
    pollster::block_on(gpu.finish()).map_err(|e| e.to_string())?;
    Ok(t.elapsed().as_secs_f64())
}

/// The host's share of one call of `f`, the median of 9 after a warm-up: seconds to record its
/// dispatches, seconds to submit them (`GpuBackend::flush`), and their count. Back to back, a
/// forward can go no faster than this, whatever the GPU: it tells a launch-bound network whether
/// the CPU or the GPU sets the pace.
fn host_costs(
    gpu: &crate::gpu::GpuBackend,
    f: &mut dyn FnMut() -> crate::Result<()>,
) -> Result<(f64, f64, u64), String> {
    let mut samples = Vec::new();
    for i in 0..10 {
        let d0 = gpu.stats().dispatches;
        let t = Instant::now();
        f().map_err(|e| e.to_string())?;
        let record = t.elapsed().as_secs_f64();
        gpu.flush().map_err(|e| e.to_string())?;
        let submit = t.elapsed().as_secs_f64() - record;
        pollster::block_on(gpu.finish()).map_err(|e| e.to_string())?;
        if i > 0 {
            samples.push((record, submit, gpu.stats().dispatches - d0));
        }
    }
    samples.sort_by(|a, b| (a.0 + a.1).total_cmp(&(b.0 + b.1)));
    Ok(samples[samples.len() / 2])
}

/// Seconds per call of `f` (one unit of GPU work), repeated (doubling) until a batch of calls
/// takes `min_secs`, after one untimed call (pipelines, buffers).
fn secs_per_call(
    gpu: &crate::gpu::GpuBackend,
    min_secs: f64,
    f: &mut dyn FnMut() -> crate::Result<()>,
) -> Result<f64, String> {
    gpu_secs(gpu, f)?;
    let mut reps = 1usize;
    loop {
        let secs = gpu_secs(gpu, &mut || (0..reps).try_for_each(|_| f()))?;
        if secs >= min_secs || reps >= 1 << 12 {
            return Ok(secs / reps as f64);
        }
        reps *= 2;
    }
}

/// The adapter's measured fp32 peak (FMA chains, `shaders/peak.wgsl`) and the GFLOP/s of the
/// kernels against it: the linear layer at the two shapes issue #17 names and the whole U-Net
/// forward at 64 images: every linear variant forced in turn, then the one the tuner chose on
/// this adapter (`gpu/tuning.rs`), which the U-Net's own linear layers run.
fn kernel_throughput(gpu: &crate::gpu::GpuBackend, unet: &Model) -> Result<(), String> {
    use crate::Backend;
    let err = |e: crate::Error| e.to_string();
    // Peak: 2²⁰ invocations of 8 vec4 FMA chains, lengthened until one dispatch takes 0.2 s.
    let len = 1 << 20;
    gpu_secs(gpu, &mut || gpu.fma_peak(len, 1).map(drop))?;
    let mut iters = 16u32;
    let peak = loop {
        let secs = gpu_secs(gpu, &mut || gpu.fma_peak(len, iters).map(drop))?;
        if secs >= 0.2 || iters >= 1 << 24 {
            break 64.0 * len as f64 * iters as f64 / secs / 1e9;
        }
        iters *= 2;
    };
    println!("\nfp32 peak (2^20 invocations x 8 vec4 FMA chains x {iters} steps): {peak:.1} GFLOP/s");
    println!("\n| kernel | shape | variant | ms per call | GFLOP/s | of peak |");
    println!("|---|---|---|---:|---:|---:|");
    let row = |kernel: &str, shape: String, variant: &str, secs: f64, flops: f64| {
        let g = flops / secs / 1e9;
        println!("| {kernel} | {shape} | {variant} | {:.2} | {g:.1} | {:.1}% |", secs * 1e3, 100.0 * g / peak);
    };
    for (n, k, m) in [(65536usize, 256usize, 256usize), (4096, 1024, 1024)] {
        let up = |shape: Vec<usize>, seed| {
            let len = shape.iter().product();
            gpu.upload(&crate::Tensor::new(shape, crate::rng::test_values(len, seed))?)
        };
        let (x, w, b) =
            (up(vec![n, k], 1).map_err(err)?, up(vec![m, k], 2).map_err(err)?, up(vec![m], 3).map_err(err)?);
        // Each variant's output against the CPU kernel's, so that a fast wrong kernel cannot pass
        // for a fast one.
        let cpu = CpuBackend
            .linear(&host(gpu, &x)?, &host(gpu, &w)?, Some(&host(gpu, &b)?), Activation::Silu)
            .map_err(err)?;
        for variant in LinearVariant::ALL {
            gpu.force_linear(Some(variant));
            let check = versus_cpu(&host(gpu, &gpu.linear(&x, &w, Some(&b), Activation::Silu).map_err(err)?)?, &cpu);
            let secs = secs_per_call(gpu, 0.3, &mut || gpu.linear(&x, &w, Some(&b), Activation::Silu).map(drop))?;
            let name = format!("{} ({check})", variant.name());
            row("linear + bias + SiLU", format!("{n}x{k}x{m}"), &name, secs, 2.0 * (n * k * m) as f64);
        }
        gpu.force_linear(None);
    }
    // The mnist U-Net's two most common convolutions at 64 images and a wider one (128 channels
    // at 32×32, as in a CIFAR-sized U-Net), each variant forced.
    for (n, c, hw) in [(64usize, 24usize, 28usize), (64, 48, 14), (16, 128, 32)] {
        let up = |shape: Vec<usize>, seed| {
            let len = shape.iter().product();
            gpu.upload(&crate::Tensor::new(shape, crate::rng::test_values(len, seed))?)
        };
        let (x, w, b) = (
            up(vec![n, c, hw, hw], 5).map_err(err)?,
            up(vec![c, c, 3, 3], 6).map_err(err)?,
            up(vec![c], 7).map_err(err)?,
        );
        let cpu = CpuBackend.conv2d(&host(gpu, &x)?, &host(gpu, &w)?, Some(&host(gpu, &b)?), 1, 1).map_err(err)?;
        for variant in ConvVariant::ALL {
            gpu.force_conv(Some(variant));
            let check = versus_cpu(&host(gpu, &gpu.conv2d(&x, &w, Some(&b), 1, 1).map_err(err)?)?, &cpu);
            let secs = secs_per_call(gpu, 0.3, &mut || gpu.conv2d(&x, &w, Some(&b), 1, 1).map(drop))?;
            let name = format!("{} ({check})", variant.name());
            let flops = 2.0 * (n * hw * hw * c * c * 9) as f64;
            row("conv 3x3 + bias", format!("{n}x{c}x{hw}x{hw} -> {c}"), &name, secs, flops);
        }
        gpu.force_conv(None);
    }
    let images = 64;
    let shape: Vec<usize> = std::iter::once(images).chain(unet.config.sample_shape()).collect();
    let values = shape.iter().product();
    let x = gpu.upload(&crate::Tensor::new(shape, crate::rng::test_values(values, 4)).map_err(err)?).map_err(err)?;
    let labels: Vec<u32> = (0..images as u32).map(|i| i % unet.config.num_classes.max(1) as u32).collect();
    let labels = (unet.config.num_classes > 0).then_some(&labels[..]);
    let sampler = Sampler::new(gpu, unet).map_err(err)?;
    let net = sampler.network();
    // One forward first: the tuner measures the shape classes it ran (besides the two above).
    // Each variant's forward is checked against the CPU backend's on the same input.
    host(gpu, &net.velocity(&gpu, &x, 0.5, labels).map_err(err)?)?;
    let cpu_sampler = Sampler::new(CpuBackend, unet).map_err(err)?;
    let want = cpu_sampler.network().velocity(&CpuBackend, &host(gpu, &x)?, 0.5, labels).map_err(err)?;
    let mut shapes = vec![(65536, 256, 256), (4096, 1024, 1024)];
    shapes.extend(gpu.tuning().untuned());
    let started = Instant::now();
    pollster::block_on(gpu.tune_linear(&shapes, f64::INFINITY, &mut WallTimer)).map_err(err)?;
    pollster::block_on(gpu.tune_conv(&gpu.tuning().untuned_conv(), f64::INFINITY, &mut WallTimer)).map_err(err)?;
    println!(
        "
tuner ({:.0} ms): ",
        started.elapsed().as_secs_f64() * 1e3
    );
    let tuning = gpu.tuning();
    let print = |family: &str, class: &LinearClass, winner: &str, times: Vec<String>| {
        println!(
            "- {family} n≤2^{} k≤2^{} m≤2^{}: {winner} ({})",
            class.n_log2,
            class.k_log2,
            class.m_log2,
            times.join(", ")
        );
    };
    for (class, c) in tuning.choices() {
        print("linear", class, c.variant.name(), c.us.iter().map(|(v, us)| format!("{} {us} µs", v.name())).collect());
    }
    for (class, c) in tuning.conv_choices() {
        print("conv", class, c.variant.name(), c.us.iter().map(|(v, us)| format!("{} {us} µs", v.name())).collect());
    }
    let flops = unet.config.flops_per_sample().unwrap_or(f64::NAN) * images as f64;
    for variant in ConvVariant::ALL.map(Some).into_iter().chain([None]) {
        gpu.force_conv(variant);
        let got = host(gpu, &net.velocity(&gpu, &x, 0.5, labels).map_err(err)?)?;
        let check = versus_cpu(&got, &want);
        let secs = secs_per_call(gpu, 0.3, &mut || net.velocity(&gpu, &x, 0.5, labels).map(drop))?;
        let conv = variant.map_or("tuned", |v| v.name());
        let name = format!("conv {conv}, group_norm, tuned linear ({check})");
        row("U-Net forward", format!("{images} images"), &name, secs, flops);
    }
    gpu.force_conv(None);
    // Smaller batches, tuned: back to back (throughput, as `secs_per_call`) and one call waited
    // for alone (latency: recording, submission and the GPU's work without overlap).
    for images in [8usize, 32] {
        let shape: Vec<usize> = std::iter::once(images).chain(unet.config.sample_shape()).collect();
        let values = shape.iter().product();
        let x =
            gpu.upload(&crate::Tensor::new(shape, crate::rng::test_values(values, 5)).map_err(err)?).map_err(err)?;
        let labels: Vec<u32> = (0..images as u32).map(|i| i % unet.config.num_classes.max(1) as u32).collect();
        let labels = (unet.config.num_classes > 0).then_some(&labels[..]);
        let secs = secs_per_call(gpu, 0.3, &mut || net.velocity(&gpu, &x, 0.5, labels).map(drop))?;
        let flops = unet.config.flops_per_sample().unwrap_or(f64::NAN) * images as f64;
        let alone = median_secs(9, || {
            gpu_secs(gpu, &mut || net.velocity(&gpu, &x, 0.5, labels).map(drop)).expect("forward");
        });
        let (record, submit, dispatches) = host_costs(gpu, &mut || net.velocity(&gpu, &x, 0.5, labels).map(drop))?;
        let name = format!(
            "tuned, back to back ({:.2} ms waited for alone; on the host, {dispatches} dispatches: record {:.2} ms + submit {:.2} ms = {:.1} µs a dispatch)",
            alone * 1e3,
            record * 1e3,
            submit * 1e3,
            (record + submit) * 1e6 / dispatches as f64
        );
        row("U-Net forward", format!("{images} images"), &name, secs, flops);
    }
    Ok(())
}
