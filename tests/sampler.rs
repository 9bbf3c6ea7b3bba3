//! The sampling API: determinism, labels and guidance, progress, cancellation, trajectories,
//! and typed errors for bad options.

use pushforward::Error;
use pushforward::cpu::CpuBackend;
use pushforward::model::{ArchConfig, DataConfig, MlpConfig, Model, ModelConfig, PathConfig, UnetConfig};
use pushforward::ode::Solver;
use pushforward::sampler::{Labels, Progress, SampleOptions, Sampler};
use std::ops::ControlFlow;

fn mlp_model() -> Model {
    mlp_model_with(false)
}

/// The test MLP, as a velocity field or (`flow_map`) a flow map taking the step length too.
fn mlp_model_with(flow_map: bool) -> Model {
    Model::random(
        ModelConfig {
            format_version: 1,
            arch: ArchConfig::Mlp(MlpConfig {
                data_dim: 2,
                width: 32,
                depth: 2,
                time_embed_dim: 16,
                time_scale: 1000.0,
                flow_map,
            }),
            data: DataConfig::Points2d { range: [[-3.0, 3.0], [-3.0, 3.0]] },
            num_classes: 0,
            path: PathConfig::Linear,
            provenance: Default::default(),
            class_names: Vec::new(),
        },
        42,
    )
    .unwrap()
}

fn unet_model() -> Model {
    Model::random(
        ModelConfig {
            format_version: 1,
            arch: ArchConfig::Unet(UnetConfig {
                in_channels: 1,
                base_channels: 8,
                channel_mult: vec![1, 2],
                num_res_blocks: 1,
                groups: 4,
                time_scale: 1000.0,
            }),
            data: DataConfig::Image { channels: 1, height: 8, width: 8, range: [-1.0, 1.0] },
            num_classes: 3,
            path: PathConfig::Linear,
            provenance: Default::default(),
            class_names: Vec::new(),
        },
        7,
    )
    .unwrap()
}

fn go(s: &Sampler<CpuBackend>, o: &SampleOptions) -> pushforward::Result<pushforward::sampler::SampleOutput> {
    s.sample(o, &mut |_| ControlFlow::Continue(()))
}

#[test]
fn same_seed_is_bit_identical_and_seeds_differ() {
    let s = Sampler::new(CpuBackend, &mlp_model()).unwrap();
    for solver in Solver::ALL {
        let o = SampleOptions { n: 64, solver, steps: 4, seed: 3, ..Default::default() };
        let a = go(&s, &o).unwrap();
        let b = go(&s, &o).unwrap();
        let bits = |t: &pushforward::Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.samples), bits(&b.samples), "{solver}");
        let c = go(&s, &SampleOptions { seed: 4, ..o.clone() }).unwrap();
        assert_ne!(a.samples, c.samples, "{solver}");
        assert_eq!(a.samples.shape(), &[64, 2]);
        assert!(a.samples.data().iter().all(|v| v.is_finite()));
    }
}

#[test]
fn prefix_of_a_larger_batch_equals_the_smaller_batch() {
    // Noise is indexed by sample, so sample i does not depend on n.
    let s = Sampler::new(CpuBackend, &mlp_model()).unwrap();
    let o = SampleOptions { n: 10, steps: 3, ..Default::default() };
    let small = go(&s, &o).unwrap();
    let big = go(&s, &SampleOptions { n: 37, ..o }).unwrap();
    for (a, b) in small.samples.data().iter().zip(big.samples.data()) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

#[test]
fn progress_reports_every_step_and_nfe() {
    let s = Sampler::new(CpuBackend, &mlp_model()).unwrap();
    let mut seen: Vec<Progress> = Vec::new();
    let o = SampleOptions { n: 8, solver: Solver::Rk4, steps: 5, ..Default::default() };
    let out = s
        .sample(&o, &mut |p| {
            seen.push(p);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(seen.len(), 6);
    assert_eq!(seen.last().unwrap().nfe, 20);
    assert_eq!(out.stats.nfe, 20);
    assert!(seen.iter().enumerate().all(|(i, p)| p.step == i && p.total_steps == Some(5)));
    assert_eq!(seen.last().unwrap().t, 1.0);
}

#[test]
fn cancellation_stops_the_solve() {
    let s = Sampler::new(CpuBackend, &mlp_model()).unwrap();
    let mut calls = 0;
    let o = SampleOptions { n: 8, steps: 50, ..Default::default() };
    let r = s.sample(&o, &mut |p| {
        calls += 1;
        if p.step == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
    assert_eq!(r.unwrap_err(), Error::Cancelled);
    assert_eq!(calls, 4);
    // Still usable afterwards.
    assert!(go(&s, &o).is_ok());
}

#[test]
fn trajectories_keep_every_kth_state_from_noise_to_samples() {
    let s = Sampler::new(CpuBackend, &mlp_model()).unwrap();
    let o = SampleOptions { n: 16, steps: 8, trajectory_every: Some(2), ..Default::default() };
    let out = go(&s, &o).unwrap();
    let ts: Vec<f32> = out.frames.iter().map(|(t, _)| *t).collect();
    assert_eq!(ts, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    assert_eq!(out.frames[0].1, s.initial_noise(16, o.seed).unwrap());
    assert_eq!(out.frames.last().unwrap().1, out.samples);

    let ad = go(&s, &SampleOptions { solver: Solver::Dopri5, trajectory_every: Some(1), ..o }).unwrap();
    assert_eq!(ad.frames.first().unwrap().0, 0.0);
    assert_eq!(ad.frames.last().unwrap().0, 1.0);
    assert_eq!(ad.frames.len(), ad.stats.accepted + 1);
}

#[test]
fn guidance_batches_cond_and_uncond() {
    let s = Sampler::new(CpuBackend, &unet_model()).unwrap();
    let base = SampleOptions { n: 6, steps: 2, labels: Labels::Cycle, ..Default::default() };
    let w1 = go(&s, &base).unwrap();
    assert_eq!(w1.labels, vec![0, 1, 2, 0, 1, 2]);
    assert_eq!(w1.samples.shape(), &[6, 1, 8, 8]);
    let w0 = go(&s, &SampleOptions { guidance: 0.0, ..base.clone() }).unwrap();
    let unc = go(&s, &SampleOptions { labels: Labels::Unconditional, ..base.clone() }).unwrap();
    // w = 0 is exactly the unconditional velocity (up to the mix's rounding).
    for (a, b) in w0.samples.data().iter().zip(unc.samples.data()) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let w3 = go(&s, &SampleOptions { guidance: 3.0, ..base.clone() }).unwrap();
    assert_ne!(w3.samples, w1.samples);
    // Guidance extrapolates: w=3 moves past w=1 away from the unconditional result.
    let d = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>();
    assert!(d(w3.samples.data(), unc.samples.data()) > d(w1.samples.data(), unc.samples.data()));
}

/// Guidance applies exactly at the evaluations whose t lies in `guidance_interval`: with Euler on
/// t = 0, ¼, ½, ¾ and the interval [0.3, 0.6], only t = ½ is guided, so the states up to t = ½
/// are the unguided run's and the one at ¾ is that of the interval [0.3, 1] (guided at ½ too).
#[test]
fn guidance_interval_guides_exactly_the_evaluations_inside_it() {
    let s = Sampler::new(CpuBackend, &unet_model()).unwrap();
    let base = SampleOptions {
        n: 6,
        solver: Solver::Euler,
        steps: 4,
        labels: Labels::Cycle,
        guidance: 3.0,
        trajectory_every: Some(1),
        ..Default::default()
    };
    let with = |from: f32, to: f32| go(&s, &SampleOptions { guidance_interval: [from, to], ..base.clone() }).unwrap();
    let whole = go(&s, &base).unwrap();
    assert_eq!(with(0.0, 1.0).samples, whole.samples, "[0, 1] is plain guidance");
    let plain = go(&s, &SampleOptions { guidance: 1.0, ..base.clone() }).unwrap();
    assert_eq!(with(0.9, 1.0).samples, plain.samples, "no evaluation in [0.9, 1]: unguided");
    let middle = with(0.3, 0.6);
    let late = with(0.3, 1.0);
    let frame =
        |o: &pushforward::sampler::SampleOutput, t: f32| o.frames.iter().find(|(ft, _)| *ft == t).unwrap().1.clone();
    assert_eq!(frame(&middle, 0.5), frame(&plain, 0.5));
    assert_eq!(frame(&middle, 0.75), frame(&late, 0.75));
    assert_ne!(middle.samples, late.samples, "t = ¾ is guided in [0.3, 1] only");
    assert_ne!(middle.samples, plain.samples);
    assert_eq!(middle.stats.nfe, 4);
}

/// CFG-Zero★'s optimised scale against its formula: one Euler step from the noise x0 gives
/// x0 + v, so the conditional (w = 1) and unconditional (w = 0) runs give v_c and v_u, and the
/// guided run must give x0 + s·v_u + w·(v_c − s·v_u) with s = ⟨v_c, v_u⟩/‖v_u‖² per sample.
#[test]
fn cfg_zero_star_scales_the_unconditional_velocity_by_its_projection() {
    let s = Sampler::new(CpuBackend, &unet_model()).unwrap();
    let base = SampleOptions { n: 6, solver: Solver::Euler, steps: 1, labels: Labels::Cycle, ..Default::default() };
    let run = |w: f32, star: bool| go(&s, &SampleOptions { guidance: w, cfg_zero_star: star, ..base.clone() }).unwrap();
    let x0 = s.initial_noise(6, base.seed).unwrap();
    let (cond, uncond, star) = (run(1.0, false), run(0.0, false), run(3.0, true));
    let len = 64;
    let mut worst = 0f64;
    let mut scales = Vec::new();
    for i in 0..6 {
        let r = i * len..(i + 1) * len;
        let x = &x0.data()[r.clone()];
        let vc: Vec<f64> = cond.samples.data()[r.clone()].iter().zip(x).map(|(a, b)| (a - b) as f64).collect();
        let vu: Vec<f64> = uncond.samples.data()[r.clone()].iter().zip(x).map(|(a, b)| (a - b) as f64).collect();
        let sc = vc.iter().zip(&vu).map(|(a, b)| a * b).sum::<f64>() / vu.iter().map(|b| b * b).sum::<f64>();
        scales.push(sc);
        for j in 0..len {
            let want = x[j] as f64 + sc * vu[j] + 3.0 * (vc[j] - sc * vu[j]);
            worst = worst.max((star.samples.data()[r.start + j] as f64 - want).abs() / (1.0 + want.abs()));
        }
    }
    eprintln!("CFG-Zero* scales {scales:.3?}; worst relative difference {worst:.2e}");
    assert!(worst < 1e-4, "{worst}");
    // The projection matters here: the scales are not all 1 (else this would test plain CFG).
    assert!(scales.iter().any(|s| (s - 1.0).abs() > 1e-3), "{scales:?}");
    assert_ne!(star.samples, run(3.0, false).samples);
}

/// Zero-init keeps the noise for the first k steps: the first kept state, at t = k/steps, is
/// x0, and only steps − k steps are taken.
#[test]
fn zero_init_keeps_the_noise_for_the_first_steps() {
    let s = Sampler::new(CpuBackend, &mlp_model()).unwrap();
    let o = SampleOptions {
        n: 16,
        solver: Solver::Heun,
        steps: 4,
        zero_init_steps: 1,
        trajectory_every: Some(1),
        ..Default::default()
    };
    let out = go(&s, &o).unwrap();
    assert_eq!(out.frames[0].0, 0.25);
    assert_eq!(out.frames[0].1, s.initial_noise(16, 0).unwrap());
    assert_eq!(out.frames.len(), 4);
    assert_eq!(out.stats.nfe, 6);
    assert_ne!(out.samples, go(&s, &SampleOptions { zero_init_steps: 0, ..o.clone() }).unwrap().samples);
}

/// A flow map's Euler steps are the map's own jumps: each evaluation is told the length of its
/// step, x_{k+1} = x_k + h·u(x_k, t_k, h); every other solver sees the instantaneous velocity
/// (step 0), so it integrates the flow as for any velocity field.
#[test]
fn flow_map_models_jump_their_euler_steps_and_give_other_solvers_the_velocity() {
    use pushforward::backend::Backend;
    let model = mlp_model_with(true);
    assert!(model.config.arch.flow_map());
    assert_eq!(model.params["layers.0.weight"].shape(), &[32, 2 + 16 + 16]);
    let s = Sampler::new(CpuBackend, &model).unwrap();
    let (b, net) = (CpuBackend, s.network());
    let n = 16;
    let x0 = s.initial_noise(n, 5).unwrap();
    let max_diff = |a: &pushforward::Tensor, e: &pushforward::Tensor| {
        a.data().iter().zip(e.data()).map(|(a, e)| (a - e).abs()).fold(0f32, f32::max)
    };
    // Euler, 1 and 2 steps, by hand from the network.
    let jump = |x: &pushforward::Tensor, t: f32, h: f32| {
        let u = net.average_velocity(&b, x, t, h, None).unwrap();
        b.lincomb(x, &[(h, &u)]).unwrap()
    };
    let one = jump(&x0, 0.0, 1.0);
    let two = jump(&jump(&x0, 0.0, 0.5), 0.5, 0.5);
    for (steps, want) in [(1, &one), (2, &two)] {
        let got = go(&s, &SampleOptions { n, solver: Solver::Euler, steps, seed: 5, ..Default::default() }).unwrap();
        assert_eq!(max_diff(&got.samples, want), 0.0, "euler {steps}");
    }
    // The step input changes the output: the jumps differ from Euler on the instantaneous field.
    let v0 = net.velocity(&b, &x0, 0.0, None).unwrap();
    assert!(max_diff(&one, &b.lincomb(&x0, &[(1.0, &v0)]).unwrap()) > 1e-3);
    // Heun with one step: x0 + ½(v(x0, 0) + v(x0 + v(x0, 0), 1)), instantaneous velocities.
    let k2 = net.velocity(&b, &b.lincomb(&x0, &[(1.0, &v0)]).unwrap(), 1.0, None).unwrap();
    let heun = b.lincomb(&x0, &[(0.5, &v0), (0.5, &k2)]).unwrap();
    let got = go(&s, &SampleOptions { n, solver: Solver::Heun, steps: 1, seed: 5, ..Default::default() }).unwrap();
    assert!(max_diff(&got.samples, &heun) < 1e-6);
    // A velocity field has no step input: asking it for one is a typed error.
    let plain = Sampler::new(CpuBackend, &mlp_model()).unwrap();
    let err = plain.network().average_velocity(&b, &x0, 0.0, 0.5, None).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { option: "step", .. }), "{err}");
    // The flag travels through the weights format.
    let back = Model::from_bytes(&pushforward::model::save(&model).unwrap()).unwrap();
    assert_eq!(back, model);
    assert!(back.config.to_json().contains("\"flow_map\":true"));
    assert!(!mlp_model().config.to_json().contains("flow_map"));
}

#[test]
fn bad_options_are_typed_errors() {
    let s = Sampler::new(CpuBackend, &mlp_model()).unwrap();
    let u = Sampler::new(CpuBackend, &unet_model()).unwrap();
    let ok = SampleOptions { n: 4, steps: 2, ..Default::default() };
    let opt = |e: Error| match e {
        Error::InvalidOption { option, .. } => option,
        other => panic!("expected InvalidOption, got {other}"),
    };
    assert_eq!(opt(go(&s, &SampleOptions { n: 0, ..ok.clone() }).unwrap_err()), "n");
    assert_eq!(opt(go(&s, &SampleOptions { n: usize::MAX, ..ok.clone() }).unwrap_err()), "n");
    assert_eq!(opt(go(&s, &SampleOptions { n: 1 << 30, ..ok.clone() }).unwrap_err()), "n");
    assert_eq!(opt(go(&s, &SampleOptions { steps: 0, ..ok.clone() }).unwrap_err()), "steps");
    assert_eq!(opt(go(&s, &SampleOptions { steps: 10_000_000, ..ok.clone() }).unwrap_err()), "steps");
    assert_eq!(opt(go(&s, &SampleOptions { labels: Labels::Class(1), ..ok.clone() }).unwrap_err()), "label");
    assert_eq!(
        opt(go(&s, &SampleOptions { trajectory_every: Some(0), ..ok.clone() }).unwrap_err()),
        "trajectory_every"
    );
    for g in [f32::NAN, -1.0, f32::INFINITY, 1e6] {
        assert_eq!(opt(go(&u, &SampleOptions { guidance: g, ..ok.clone() }).unwrap_err()), "guidance");
    }
    assert_eq!(opt(go(&u, &SampleOptions { labels: Labels::Class(4), ..ok.clone() }).unwrap_err()), "label");
    assert_eq!(
        opt(go(&u, &SampleOptions { labels: Labels::PerSample(vec![0, 1]), ..ok.clone() }).unwrap_err()),
        "label"
    );
    assert!(go(&u, &SampleOptions { labels: Labels::Class(3), ..ok.clone() }).is_ok(), "null class is valid");
    for interval in [[0.6, 0.3], [-0.1, 0.5], [0.5, 1.5], [f32::NAN, 1.0]] {
        let e = go(&u, &SampleOptions { guidance_interval: interval, ..ok.clone() }).unwrap_err();
        assert_eq!(opt(e), "guidanceFrom, guidanceTo", "{interval:?}");
    }
    assert_eq!(opt(go(&s, &SampleOptions { zero_init_steps: 2, ..ok.clone() }).unwrap_err()), "zeroInitSteps");
    let adaptive = SampleOptions { solver: Solver::Dopri5, zero_init_steps: 1, ..ok.clone() };
    assert_eq!(opt(go(&s, &adaptive).unwrap_err()), "zeroInitSteps");
    for (rtol, atol) in [(0.0, 1e-3), (-1.0, 1e-3), (f32::NAN, 1e-3), (1e-3, 0.0)] {
        let e = go(&s, &SampleOptions { solver: Solver::Dopri5, rtol, atol, ..ok.clone() }).unwrap_err();
        assert!(matches!(e, Error::InvalidOption { .. }), "rtol {rtol} atol {atol}: {e}");
    }
}

#[test]
fn cpu_normal_noise_is_rng_fill_normal_and_batches_are_unbounded() {
    use pushforward::{Backend, rng};
    let cpu = CpuBackend;
    for (seed, stream, start) in [(0u64, rng::STREAM_INIT, 0u64), (9, rng::STREAM_SDE, 3), (u64::MAX, 5, (1 << 40) + 1)]
    {
        let t = cpu.normal_noise(seed, stream, start, &[3, 7]).unwrap();
        assert_eq!(t.shape(), [3, 7]);
        let mut want = vec![0.0; 21];
        rng::fill_normal(seed, stream, start, &mut want);
        assert_eq!(t.data(), &want[..], "the CPU noise is exactly rng::fill_normal");
    }
    // The sampler's noise is the backend's: row i of x0 starts at element i·len.
    let model = mlp_model();
    let sampler = Sampler::new(CpuBackend, &model).unwrap();
    let x0 = sampler.initial_noise(5, 11).unwrap();
    assert_eq!(cpu.normal_noise(11, rng::STREAM_INIT, 4, &[3, 2]).unwrap().data(), &x0.data()[4..10]);
}

/// `map_row_blocks` stacks the blocks' results into x's shape: a block whose result has another
/// shape is a typed error (not a panic), and one that keeps its rows gives back their values.
#[test]
fn row_blocks_stack_rows_and_refuse_a_block_of_another_shape() {
    use pushforward::Backend;
    use pushforward::tensor::Tensor;
    // 3,000 rows of 128 values per row: blocks of 1,024, 1,024 and 952.
    let x = Tensor::new(vec![3000, 2], (0..6000).map(|i| i as f32).collect()).unwrap();
    let same = |x: &Tensor, _: Option<&[u32]>| -> pushforward::Result<Tensor> {
        Tensor::new(x.shape().to_vec(), x.data().iter().map(|v| 2.0 * v).collect())
    };
    let y = CpuBackend.map_row_blocks(&x, None, 128, &same).unwrap();
    assert_eq!(y.shape(), &[3000, 2]);
    assert!(y.data().iter().enumerate().all(|(i, &v)| v == 2.0 * i as f32));
    let narrower = |x: &Tensor, _: Option<&[u32]>| Tensor::new(vec![x.shape()[0], 1], vec![0.0; x.shape()[0]]);
    let err = CpuBackend.map_row_blocks(&x, None, 128, &narrower).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

/// The CPU backend runs every network in blocks of rows (`map_row_blocks`, so that activations
/// stay in cache): every row's velocity is the same bits as when that row is
/// evaluated in a call of its own that is one block or less, with labels, across ragged blocks.
#[test]
fn row_blocks_give_every_row_the_values_of_an_unblocked_call() {
    use pushforward::model::Network;
    use pushforward::tensor::Tensor;
    let check = |model: Model, n: usize, cuts: &[usize]| {
        let net = Network::new(&CpuBackend, &model).unwrap();
        let len = model.config.sample_len();
        let mut shape = vec![n];
        shape.extend(model.config.sample_shape());
        let x: Vec<f32> = (0..n * len).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let classes = model.config.num_classes as u32;
        let labels: Option<Vec<u32>> = (classes > 0).then(|| (0..n as u32).map(|i| i % (classes + 1)).collect());
        let whole =
            net.velocity(&CpuBackend, &Tensor::new(shape.clone(), x.clone()).unwrap(), 0.3, labels.as_deref()).unwrap();
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let mut part_shape = shape.clone();
            part_shape[0] = b - a;
            let part = Tensor::new(part_shape, x[a * len..b * len].to_vec()).unwrap();
            let v = net.velocity(&CpuBackend, &part, 0.3, labels.as_ref().map(|l| &l[a..b])).unwrap();
            assert_eq!(v.data(), &whole.data()[a * len..b * len], "rows {a}..{b}");
        }
    };
    // MLP 128 wide: blocks of 1,024 rows (512 KiB); 3,333 rows are 3 whole blocks and 261 more.
    let mut mlp = ModelConfig::mlp_preset(128, 3);
    mlp.num_classes = 3;
    if let ArchConfig::Mlp(c) = &mut mlp.arch {
        c.time_embed_dim = 16;
    }
    check(Model::random(mlp, 5).unwrap(), 3333, &[0, 700, 1700, 2600, 3333]);
    // The test U-Net (8×8 images, 3 classes): blocks of 85 images (its largest tensor is ~1,540
    // values an image).
    check(unet_model(), 300, &[0, 60, 140, 220, 300]);
}
