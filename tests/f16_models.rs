//! The F16 copies of the shipped models (`models/f16/`, written by `pushforward-f16`,
//! `train/export.py`): each tensor is its F32 original rounded to half precision, and the
//! samples they give, from the same noise with the same solver, stay within the stated
//! tolerance of the F32 model's. Points: 99.9% move less than a pixel of the demo's plot (0.01
//! in data units: ~6 units on 640 px) — a few points near the boundary between two modes can go
//! the other way, as they do under any perturbation — and the two sample sets are within 1e-3 in
//! sliced W2, an order below the floor between two fresh data draws (0.013–0.021, models/README).
//! Images: pixels move by at most half an 8-bit grey level on average (1/255 of the [-1, 1]
//! range) and none by more than four (8/255), at the demo's default guidance (w 1.5 while t is
//! in [0.2, 1]; guidance amplifies the weights' rounding: at w 2 over all of t one pixel of the
//! 34,500-step digit model moved 0.39 in one sample, the rest as here). The demo and the embed
//! load the F16 copies (half the download).

use pushforward::cpu::CpuBackend;
use pushforward::metrics::sliced_w2;
use pushforward::model::Model;
use pushforward::ode::Solver;
use pushforward::sampler::{Labels, SampleOptions, Sampler};
use std::ops::ControlFlow;
use std::path::PathBuf;

fn model(path: &str) -> (Model, u64) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{path}: {e}")), bytes.len() as u64)
}

#[test]
fn f16_copies_round_the_f32_weights_and_sample_within_tolerance() {
    let names = [
        "moons",
        "8gaussians",
        "checkerboard",
        "spirals",
        "moons_cosine",
        "moons_sde",
        "moons_reflow",
        "mnist",
        "mnist_reflow",
        "moons_meanflow",
        "8gaussians_meanflow",
        "checkerboard_meanflow",
        "spirals_meanflow",
        "emoji",
    ];
    for name in names {
        let ((full, full_bytes), (half, half_bytes)) =
            (model(&format!("models/{name}.safetensors")), model(&format!("models/f16/{name}.safetensors")));
        assert_eq!(full.config.arch, half.config.arch, "{name}");
        // Each weight is its original to within half precision's rounding (2^-11 relative; an
        // absolute 2^-25 floor for the subnormal range).
        assert_eq!(full.params.len(), half.params.len(), "{name}");
        for (k, w) in &full.params {
            let h = half.params.get(k).unwrap_or_else(|| panic!("{name}: {k} missing in the f16 copy"));
            assert_eq!(w.shape(), h.shape(), "{name}: {k}");
            for (&a, &b) in w.data().iter().zip(h.data()) {
                assert!((a - b).abs() <= a.abs() * 2f32.powi(-11) + 2f32.powi(-25), "{name}: {k}: {a} vs {b}");
            }
        }
        let image = matches!(full.config.data, pushforward::model::DataConfig::Image { .. });
        let reflow = name.ends_with("reflow");
        // Few-step models at their own few steps (reflow: 2 Euler steps; a flow map: its
        // default, one jump), the others at Heun 8 NFE.
        let (solver, steps) = if reflow {
            (Solver::Euler, 2)
        } else {
            let d = SampleOptions::for_model(&full.config);
            (d.solver, d.steps)
        };
        let o = SampleOptions {
            n: if image { 16 } else { 20_000 },
            solver,
            steps,
            seed: 9,
            labels: if full.config.num_classes > 0 { Labels::Cycle } else { Labels::Unconditional },
            // The demo's default guidance for image models (reflowed ones have it built in).
            guidance: if image && !reflow { 1.5 } else { 1.0 },
            guidance_interval: if image && !reflow { [0.2, 1.0] } else { [0.0, 1.0] },
            ..Default::default()
        };
        let run =
            |m: &Model| Sampler::new(CpuBackend, m).unwrap().sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
        let (a, b) = (run(&full), run(&half));
        let (a, b) = (a.samples.data(), b.samples.data());
        let mut d: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
        d.sort_by(f32::total_cmp);
        let (max, p999) = (d[d.len() - 1], d[(d.len() - 1) * 999 / 1000]);
        let mean = d.iter().map(|&x| x as f64).sum::<f64>() / d.len() as f64;
        if image {
            println!(
                "{name}: {full_bytes} → {half_bytes} bytes; pixels f16 vs f32: 99.9% within {p999:.2e} (max {max:.2e}), mean |Δ| {mean:.2e}"
            );
            assert!(mean <= 1.0 / 255.0, "{name}: pixels move by {mean} on average > 1/255");
            assert!(max <= 8.0 / 255.0, "{name}: a pixel moves by {max} > 8/255");
        } else {
            let sw2 = sliced_w2(a, b).unwrap();
            println!(
                "{name}: {full_bytes} → {half_bytes} bytes; points f16 vs f32: 99.9% within {p999:.2e} (max {max:.2e}), mean |Δ| {mean:.2e}, SW2 {sw2:.1e}"
            );
            assert!(p999 <= 0.01, "{name}: 0.1% of the points move more than {p999} > 0.01");
            assert!(sw2 <= 1e-3, "{name}: SW2 between the f16 and f32 samples {sw2} > 1e-3");
        }
    }
}

/// An ONNX file with float16 initializers (`onnx_to_f16` in train/onnx_export.py: each weight
/// stored as FLOAT16 with a Cast to FLOAT in front of its readers) loads at half the size,
/// its Casts fold away at plan time, and it samples what the F16 safetensors copy of the same
/// model samples.
#[test]
fn an_onnx_file_with_f16_initializers_samples_like_the_f16_safetensors() {
    let (onnx, onnx_bytes) = model("tests/fixtures/onnx/moons_onnx_f16.onnx");
    let (f32_onnx, f32_bytes) = model("tests/fixtures/onnx/moons_onnx.onnx");
    let (st, _) = model("models/f16/moons.safetensors");
    assert!(onnx_bytes * 10 < f32_bytes * 6, "{onnx_bytes} vs {f32_bytes} bytes");
    let o = SampleOptions { n: 4000, solver: Solver::Heun, steps: 8, seed: 4, ..Default::default() };
    let run = |m: &Model| Sampler::new(CpuBackend, m).unwrap().sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
    let (a, b, c) = (run(&onnx), run(&st), run(&f32_onnx));
    let max = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    let same = max(a.samples.data(), b.samples.data());
    let sw2 = sliced_w2(a.samples.data(), c.samples.data()).unwrap();
    println!(
        "moons_onnx_f16: {onnx_bytes} bytes (f32: {f32_bytes}); vs the f16 safetensors max |Δ| {same:.2e}; SW2 vs the f32 ONNX {sw2:.1e}"
    );
    assert!(same <= 1e-4, "{same}");
    assert!(sw2 <= 1e-3, "{sw2}");
}
