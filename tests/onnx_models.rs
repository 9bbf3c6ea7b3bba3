//! Users' own velocity networks from their ONNX exports (issue #14): each fixture in
//! `tests/fixtures/onnx/` (made by `train/make_onnx_fixtures.py` with PyTorch and onnxruntime)
//! is loaded from its `.onnx` bytes, and on the Rust CPU kernels and on the GPU (lavapipe):
//! - the raw graph output matches onnxruntime's at batch 1 and at a ragged batch of 7 (rows at
//!   different times) and each of its prefixes (one plan per batch size, sharing the uploaded
//!   weights), to 1e-4 relative to the output's largest magnitude;
//! - the declared velocity (time direction and scale, x1/noise prediction converted) matches
//!   PyTorch's float64 conversion;
//! - a Heun 4-step solve from the sampler's own x0 (seed 11) matches a float64 PyTorch solve of
//!   the same declared velocity to 1e-3;
//! - for flow maps (a second time input declared as `step` or `end`), the raw output with rows
//!   jumping different lengths, the declared average velocity, and 1- and 2-jump samples.

mod gpu_common;

use gpu_common::gpu;
use pushforward::cpu::CpuBackend;
use pushforward::model::Model;
use pushforward::ode::Solver;
use pushforward::sampler::{Labels, SampleOptions, Sampler};
use pushforward::{Backend, Error, Tensor};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn read_fixture(name: &str) -> HashMap<String, Tensor> {
    let bytes = std::fs::read(dir().join(format!("{name}_expected.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            let data: Vec<f32> =
                v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            (k, Tensor::new(v.shape().to_vec(), data).unwrap())
        })
        .collect()
}

fn model(name: &str) -> Model {
    Model::from_bytes(&std::fs::read(dir().join(format!("{name}.onnx"))).unwrap()).unwrap()
}

/// max |a − b| / max(max |b|, 1e-6).
fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, &v| m.max(v.abs() as f64)).max(1e-6);
    a.iter().zip(b).fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs())) / scale
}

fn max_abs(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()))
}

/// Class ids stored as F32.
fn label_ids(t: &Tensor) -> Vec<u32> {
    t.data().iter().map(|&v| v as u32).collect()
}

fn labels(fx: &HashMap<String, Tensor>, key: &str) -> Option<Vec<u32>> {
    fx.get(key).map(label_ids)
}

/// All checks of one fixture on one backend; returns (raw b1, raw b7, velocity, solve) errors.
fn check<B: Backend>(backend: B, name: &str) -> (f64, f64, f64, f64) {
    let m = model(name);
    let fx = read_fixture(name);
    let sampler = Sampler::new(backend, &m).unwrap();
    let b = sampler.backend();
    let net = sampler.network();
    let graph = net.graph().expect("an ONNX model runs through its graph");
    // The first `rows` rows of fixture batch `bx` (a tensor without a batch axis is shared).
    let rows_of = |key: &str, rows: usize| -> Option<Tensor> {
        let t = fx.get(key)?;
        let full = t.shape().first().copied().unwrap_or(1);
        if full > 1 && rows < full {
            let per = t.numel() / full;
            let mut shape = t.shape().to_vec();
            shape[0] = rows;
            Some(Tensor::new(shape, t.data()[..rows * per].to_vec()).unwrap())
        } else {
            Some(t.clone())
        }
    };
    let raw = |bx: &str, rows: usize| {
        let key = |k: &str| format!("{k}_{bx}");
        let x = b.upload(&rows_of(&key("x"), rows).unwrap()).unwrap();
        let jump = rows_of(&key("jump"), rows);
        let y = rows_of(&key("y"), rows).as_ref().map(label_ids);
        let out = graph
            .forward_raw(
                b,
                &x,
                rows_of(&key("t"), rows).unwrap().data(),
                jump.as_ref().map_or(&[][..], |j| j.data()),
                y.as_deref(),
            )
            .unwrap();
        let out = pollster::block_on(b.download(&out)).unwrap();
        rel(out.data(), rows_of(&key("out"), rows).unwrap().data())
    };
    // Batch 1, then every prefix of the ragged batch of 7: each batch size has its own plan,
    // and all of them share the runner's uploaded weights.
    let r1 = raw("b1", 1);
    let r7 = (2..=7).map(|k| raw("b7", k)).fold(0f64, f64::max);
    // The declared velocity at batch 1 (one time per call, as the sampler calls it; for a flow
    // map the average velocity of the jump from t to t + h).
    let x = b.upload(&fx["x_b1"]).unwrap();
    let t = fx["time_b1"].data()[0];
    let h = fx.get("h_b1").map_or(0.0, |h| h.data()[0]);
    assert_eq!(h != 0.0, m.config.arch.flow_map(), "{name}: a flow map's fixture has jumps");
    let v = net.average_velocity(b, &x, t, h, labels(&fx, "y_b1").as_deref()).unwrap();
    let v = pollster::block_on(b.download(&v)).unwrap();
    let rv = rel(v.data(), fx["v_b1"].data());
    // The solve.
    let x0 = sampler.initial_noise(5, 11).unwrap();
    assert_eq!(max_abs(x0.data(), fx["x0"].data()), 0.0, "{name}: the sampler's x0 is PyTorch's");
    let conditional = m.config.num_classes > 0;
    let o = SampleOptions {
        n: 5,
        solver: Solver::Heun,
        steps: 4,
        seed: 11,
        labels: if conditional { Labels::Cycle } else { Labels::Unconditional },
        guidance: if conditional { 2.0 } else { 1.0 },
        ..Default::default()
    };
    let out = sampler.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
    let mut rs = max_abs(out.samples.data(), fx["samples_heun4"].data());
    // A flow map's own jumps: Euler on a flow map jumps x + h·u(x, t, h).
    for k in [1, 2] {
        if let Some(want) = fx.get(&format!("samples_map{k}")) {
            let o = SampleOptions { solver: Solver::Euler, steps: k, ..o.clone() };
            let got = sampler.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
            rs = rs.max(max_abs(got.samples.data(), want.data()));
        }
    }
    (r1, r7, rv, rs)
}

fn assert_matches(name: &str, engine: &str, (r1, r7, rv, rs): (f64, f64, f64, f64)) {
    println!(
        "{name} on {engine}: raw b1 {r1:.2e}, raw b7 {r7:.2e} (relative), velocity {rv:.2e}, Heun-4 solve {rs:.2e} (max abs)"
    );
    assert!(r1 <= 1e-4 && r7 <= 1e-4, "{name} on {engine}: output differs from onnxruntime by {r1:e} / {r7:e}");
    assert!(rv <= 1e-4, "{name} on {engine}: declared velocity differs by {rv:e}");
    assert!(rs <= 1e-3, "{name} on {engine}: the solve differs from PyTorch's by {rs:e}");
}

const SUPPORTED: [&str; 13] = [
    "mlp_selu_raw_t",
    "mlp_fourier_gelu",
    "moons_onnx",
    "mnist_onnx",
    "unet_attn",
    "dit_small",
    // Concat on H and W, Pad, Where, BatchNorm, reductions, Split, Softmax on axis 1, layer norm
    // by hand; and the decomposed LayerNormalization of opset 13.
    "op_zoo",
    "mlp_opset13",
    // Depthwise and dilated convs, average and max pooling, ConvTranspose (k 4 and k 3 with
    // output_padding); bilinear 2× Resize.
    "unet_classic",
    "upsample_bilinear",
    // Flow maps: the step length as input h; MeanFlow's u(z, r, t) with time from data to noise.
    "meanflow_step",
    "meanflow_rt",
    // A widely used research U-Net as its package builds it (denoising_diffusion_pytorch):
    // F.normalize (ReduceL2, Clip) and einsum attention (Einsum), ε-prediction on [0, 1000].
    "ddp_unet",
];

#[test]
fn onnx_models_match_onnxruntime_and_pytorch_on_the_cpu() {
    for name in SUPPORTED {
        assert_matches(name, "cpu", check(CpuBackend, name));
    }
}

#[test]
fn onnx_models_match_onnxruntime_and_pytorch_on_the_gpu() {
    let Some(g) = gpu() else { return };
    for name in SUPPORTED {
        assert_matches(name, "gpu", check(g, name));
    }
}

/// The shipped one-step moons flow map, exported to ONNX in two conventions (the step length as
/// input; MeanFlow's jump end with time from data to noise), samples what its `.safetensors`
/// file samples: by its own 1, 2 and 4 jumps and by Heun on its instantaneous velocity.
#[test]
fn an_onnx_flow_map_samples_the_same_as_the_shipped_one() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let st = Model::from_bytes(&std::fs::read(root.join("models/moons_meanflow.safetensors")).unwrap()).unwrap();
    for name in ["meanflow_step", "meanflow_rt"] {
        let ox = model(name);
        assert!(ox.config.arch.flow_map(), "{name} is declared a flow map");
        // Its defaults are the flow map's: one jump.
        assert_eq!(SampleOptions::for_model(&ox.config), SampleOptions::for_model(&st.config));
        for (solver, steps) in [(Solver::Euler, 1), (Solver::Euler, 2), (Solver::Euler, 4), (Solver::Heun, 8)] {
            let o = SampleOptions { n: 2000, solver, steps, seed: 5, ..Default::default() };
            let run = |m: &Model| {
                Sampler::new(CpuBackend, m).unwrap().sample(&o, &mut |_| ControlFlow::Continue(())).unwrap()
            };
            let (a, b) = (run(&st), run(&ox));
            let d = max_abs(a.samples.data(), b.samples.data());
            println!("{name}: .safetensors vs .onnx, 2000 points {solver:?} {steps}: max |Δ| = {d:.2e}");
            // meanflow_rt's graph computes 1 − (1 − t) and τ − r in f32: a few ulps of t.
            assert!(d <= 1e-4, "{name} {solver:?} {steps}: {d}");
        }
    }
}

/// The shipped moons model exported to ONNX samples what its `.safetensors` file samples.
#[test]
fn the_shipped_moons_model_samples_the_same_from_onnx() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let st = Model::from_bytes(&std::fs::read(root.join("models/moons.safetensors")).unwrap()).unwrap();
    let ox = model("moons_onnx");
    let o = SampleOptions { n: 2000, solver: Solver::Heun, steps: 8, seed: 3, ..Default::default() };
    let run = |m: &Model| Sampler::new(CpuBackend, m).unwrap().sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
    let (a, b) = (run(&st), run(&ox));
    let d = max_abs(a.samples.data(), b.samples.data());
    println!("moons: .safetensors vs .onnx samples, 2000 points Heun 8 steps: max |Δ| = {d:.2e}");
    assert!(d <= 1e-4, "{d}");
}

/// An op outside the supported set is a load-time error naming the node and the op — never a
/// wrong answer: the fixture's `Selu` renamed to an op no executor knows.
#[test]
fn an_unsupported_op_is_refused_at_load_naming_the_node() {
    let mut bytes = std::fs::read(dir().join("mlp_selu_raw_t.onnx")).unwrap();
    // NodeProto.op_type is field 4: tag 0x22, length 4, then the name.
    let at = bytes.windows(6).position(|w| w == b"\x22\x04Selu").expect("the op type is in the file") + 2;
    bytes[at..at + 4].copy_from_slice(b"Selv");
    let e = Model::from_bytes(&bytes).expect_err("refused");
    println!("{e}");
    assert!(matches!(e, Error::WeightsFormat(_)), "{e:?}");
    assert!(e.to_string().contains("op `Selv` is not supported") && e.to_string().contains("node"), "{e}");
}

/// Einsum is read as a batched matrix product; any other equation is refused at load, naming
/// the node and the equation.
#[test]
fn an_einsum_other_than_a_batched_product_is_refused_naming_it() {
    let mut bytes = std::fs::read(dir().join("ddp_unet.onnx")).unwrap();
    let eq = b"b h i j, b h j d -> b h i d";
    let at = bytes.windows(eq.len()).position(|w| w == eq).expect("the equation is in the file");
    // A trace (i twice) is not a matrix product.
    bytes[at..at + eq.len()].copy_from_slice(b"b h i i, b h j d -> b h i d");
    let e = Model::from_bytes(&bytes).expect_err("refused");
    println!("{e}");
    assert!(matches!(e, Error::WeightsFormat(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("(Einsum)") && msg.contains("`b h i i, b h j d -> b h i d` is not supported"), "{msg}");
}

/// A file without a declaration says how to add one; a declaration that names a missing input
/// is refused naming the field.
#[test]
fn missing_or_inconsistent_declarations_are_clear_errors() {
    let bytes = std::fs::read(dir().join("mlp_selu_raw_t.onnx")).unwrap();
    let bad =
        r#"{"format_version":1,"inputs":{"x":"x","t":"time"},"data":{"kind":"points2d","range":[[-3,3],[-3,3]]}}"#;
    let e = pushforward::onnx::load(&bytes, Some(bad)).expect_err("refused");
    println!("{e}");
    assert!(e.to_string().contains("declaration.inputs.t") && e.to_string().contains("no input `time`"), "{e}");
    let typo = r#"{"format_version":1,"inputs":{"x":"x","t":"t"},"outptu":"velocity","data":{"kind":"points2d","range":[[-3,3],[-3,3]]}}"#;
    let e = pushforward::onnx::load(&bytes, Some(typo)).expect_err("refused");
    println!("{e}");
    assert!(e.to_string().contains("outptu"), "{e}");
    // The same file loads with a correct declaration passed beside it.
    let good = r#"{"format_version":1,"inputs":{"x":"x","t":"t"},"data":{"kind":"points2d","range":[[-3,3],[-3,3]]}}"#;
    assert!(pushforward::onnx::load(&bytes, Some(good)).is_ok());
    // Flow maps: the second time input must be declared, once, on a velocity output.
    let fm = std::fs::read(dir().join("meanflow_step.onnx")).unwrap();
    let points = r#""data":{"kind":"points2d","range":[[-3,3],[-3,3]]}"#;
    for (inputs, output, want) in [
        (r#""x":"x","t":"t""#, "velocity", "graph input `h` is not declared"),
        (r#""x":"x","t":"t","step":"h","end":"h""#, "velocity", "step or end, not both"),
        (r#""x":"x","t":"t","step":"t""#, "velocity", "must be distinct"),
        (r#""x":"x","t":"t","end":"r""#, "velocity", "declaration.inputs.end"),
        (r#""x":"x","t":"t","step":"h""#, "data", "average velocity"),
    ] {
        let d = format!(r#"{{"format_version":1,"inputs":{{{inputs}}},"output":"{output}",{points}}}"#);
        let e = pushforward::onnx::load(&fm, Some(&d)).expect_err("refused");
        println!("{e}");
        assert!(e.to_string().contains(want), "{d}: {e}");
    }
    let d = format!(r#"{{"format_version":1,"inputs":{{"x":"x","t":"t","step":"h"}},{points}}}"#);
    assert!(pushforward::onnx::load(&fm, Some(&d)).unwrap().config.arch.flow_map());
}

/// Log-densities of 2-D ONNX models use a central-difference divergence (no forward-mode
/// tangents through an arbitrary graph): on moons exported to ONNX, the log-density on a 32²
/// grid (RK4, 16 steps) is compared with the exact-divergence one of the same network's
/// `.safetensors`.
#[test]
fn onnx_log_density_matches_the_exact_divergence() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exact = Sampler::new(
        CpuBackend,
        &Model::from_bytes(&std::fs::read(root.join("models/moons.safetensors")).unwrap()).unwrap(),
    )
    .unwrap();
    let fd = Sampler::new(CpuBackend, &model("moons_onnx")).unwrap();
    let range = [[-3.0, 3.0], [-3.0, 3.0]];
    let a = pollster::block_on(exact.log_density_grid(range, 32, 32, 16)).unwrap();
    let b = pollster::block_on(fd.log_density_grid(range, 32, 32, 16)).unwrap();
    // Where the density is not negligible (log p > −6), compare log p and p.
    let (mut worst_log, mut worst_p) = (0f64, 0f64);
    for (x, y) in a.iter().zip(&b) {
        if *x > -6.0 {
            worst_log = worst_log.max((x - y).abs() as f64);
            worst_p = worst_p.max(((*x as f64).exp() - (*y as f64).exp()).abs());
        }
    }
    println!(
        "moons log-density, central differences vs exact divergence: max |Δ log p| = {worst_log:.2e}, max |Δ p| = {worst_p:.2e} (log p > −6)"
    );
    assert!(worst_log <= 1e-2, "{worst_log}");
}

/// The exporters' GroupNorm (x viewed as [n, groups, L], InstanceNormalization with unit scale,
/// viewed back, then Mul γ and Add β per channel) and the SiLU after it (x·sigmoid(x)) plan as
/// one fused group norm step: for the U-Net exported from our class, one step per norm (15),
/// no separate activation or affine left, and a chain of reshapes is one. The parity tests above check that the fused
/// plan still matches onnxruntime.
#[test]
fn the_exported_group_norm_and_silu_fuse_into_one_step() {
    let (m, b) = (model("mnist_onnx"), CpuBackend);
    let net = pushforward::model::Network::new(&b, &m).unwrap();
    let steps = net.graph().expect("an ONNX model").plan_summary(4).unwrap();
    let count = |k: &str| steps.iter().filter(|s| *s == k).count();
    println!("mnist_onnx plan at batch 4: {} steps: {steps:?}", steps.len());
    assert_eq!(count("GroupNorm+Silu"), 15, "{steps:?}");
    assert_eq!(count("GroupNorm"), 0, "{steps:?}");
    for gone in ["Sigmoid", "Mul"] {
        assert_eq!(count(gone), 0, "{gone} left in {steps:?}");
    }
    // One reshape per residual block's time projection ([n, c] → [n, c, 1, 1]), none in norms.
    assert_eq!(count("Reshape"), count("Linear"), "{steps:?}");
    assert_eq!(count("Conv"), 24, "{steps:?}");
}
