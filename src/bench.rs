//! `pushforward bench`: throughput of the CPU kernels and of whole sampling calls on this
//! machine. Peer comparisons (the `gemm` crate) live in `benches/cpu_kernels.rs`, which can use
//! dev-dependencies; this one ships in the binary and needs none.

use crate::cpu::{Activation, CpuBackend, conv2d, matmul};
use crate::model::{ArchConfig, DataConfig, MlpConfig, Model, ModelConfig, PathConfig, UnetConfig};
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

fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1 << 24) as f32 - 0.5
        })
        .collect()
}

pub fn run_cpu(quick: bool) {
    let reps = if quick { 3 } else { 7 };
    println!("CPU kernels, single thread (median of {reps})");
    println!("{:<34} {:>10} {:>10}", "kernel", "ms", "GFLOP/s");
    let sizes: &[usize] = if quick { &[128, 256] } else { &[256, 512, 1024] };
    for &s in sizes {
        let (a, w) = (pseudo_random(s * s, 1), pseudo_random(s * s, 2));
        let mut out = vec![0.0; s * s];
        let t = median_secs(reps, || matmul::linear(&a, &w, None, Activation::None, s, s, s, &mut out));
        println!("{:<34} {:>10.2} {:>10.1}", format!("linear {s}x{s}x{s}"), t * 1e3, 2.0 * (s * s * s) as f64 / t / 1e9);
    }
    let shape = if quick {
        conv2d::Conv2dShape { batch: 2, c_in: 32, h: 16, w: 16, c_out: 32, kh: 3, kw: 3, stride: 1, pad: 1 }
    } else {
        conv2d::Conv2dShape { batch: 16, c_in: 64, h: 32, w: 32, c_out: 64, kh: 3, kw: 3, stride: 1, pad: 1 }
    };
    let x = pseudo_random(shape.batch * shape.c_in * shape.h * shape.w, 3);
    let wt = pseudo_random(shape.c_out * shape.c_in * 9, 4);
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
    let mlp = ModelConfig {
        format_version: 1,
        arch: ArchConfig::Mlp(MlpConfig { data_dim: 2, width: 256, depth: 3, time_embed_dim: 32, time_scale: 1000.0 }),
        data: DataConfig::Points2d { range: [[-3.0, 3.0], [-3.0, 3.0]] },
        num_classes: 0,
        path: PathConfig::Linear,
        provenance: Default::default(),
    };
    let unet = ModelConfig {
        format_version: 1,
        arch: ArchConfig::Unet(UnetConfig {
            in_channels: 1,
            base_channels: 32,
            channel_mult: vec![1, 2, 2],
            num_res_blocks: 1,
            groups: 8,
            time_scale: 1000.0,
        }),
        data: DataConfig::Image { channels: 1, height: 28, width: 28, range: [-1.0, 1.0] },
        num_classes: 10,
        path: PathConfig::Linear,
        provenance: Default::default(),
    };
    let n_points = if quick { 1024 } else { 4096 };
    let n_images = if quick { 2 } else { 16 };
    let cases = [
        (&mlp, format!("MLP 34-256x3-2, {n_points} points"), n_points, Solver::Heun, 8, Labels::Unconditional, 1.0),
        (&unet, format!("U-Net 32x[1,2,2], {n_images} images, w=2"), n_images, Solver::Heun, if quick { 2 } else { 10 }, Labels::Cycle, 2.0),
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
