//! Log-densities by the instantaneous change of variables (`density.rs`): the Gaussian→Gaussian
//! flow's log p_1 matches the closed form; the MLP's exact divergence (forward-mode tangents)
//! matches central finite differences, and the GPU's matches the CPU's; the checkerboard
//! model's density integrates to ≈ 1 over its box and is far higher on the data squares.

mod gpu_common;

use pushforward::Backend;
use pushforward::cpu::CpuBackend;
use pushforward::density::log_density_with;
use pushforward::model::{DataConfig, Model, Network};
use pushforward::ode::Solver;
use pushforward::sampler::Sampler;
use pushforward::{Result, Tensor};

const MU: [f32; 2] = [1.0, -2.0];
const SIGMA: f32 = 0.5;

fn model(name: &str) -> Model {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("models/{name}.safetensors"));
    Model::from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

/// N(0, I) → N(μ, σ²I) on the linear path (independent coupling): v = μ + a(t)(x − tμ) with
/// a = s_t'/s_t, s_t² = (1−t)² + t²σ², so div v = 2·a(t).
fn gaussian(x: &Tensor, t: f32) -> Result<(Tensor, Tensor)> {
    let s2 = (1.0 - t).powi(2) + t * t * SIGMA * SIGMA;
    let a = (-(1.0 - t) + t * SIGMA * SIGMA) / s2;
    let n = x.shape()[0];
    let v = x
        .data()
        .chunks_exact(2)
        .flat_map(|p| [MU[0] + a * (p[0] - t * MU[0]), MU[1] + a * (p[1] - t * MU[1])])
        .collect();
    Ok((Tensor::new(vec![n, 2], v)?, Tensor::new(vec![n, 1], vec![2.0 * a; n])?))
}

#[test]
fn gaussian_flow_log_density_matches_the_closed_form() {
    let pts: Vec<f32> =
        pushforward::rng::test_values(2 * 200, 3).iter().enumerate().map(|(i, v)| MU[i % 2] + 1.5 * v).collect();
    let x = Tensor::new(vec![200, 2], pts.clone()).unwrap();
    let mut worst = 0.0f64;
    for (solver, steps, tol) in [(Solver::Rk4, 32, 1e-4), (Solver::Heun, 64, 2e-3)] {
        let got = pollster::block_on(log_density_with(&CpuBackend, &x, solver, steps, &mut gaussian)).unwrap();
        for (p, g) in pts.chunks_exact(2).zip(&got) {
            let q = ((p[0] - MU[0]).powi(2) + (p[1] - MU[1]).powi(2)) as f64;
            let want = -q / (2.0 * (SIGMA * SIGMA) as f64) - (2.0 * std::f64::consts::PI * (SIGMA * SIGMA) as f64).ln();
            let err = (*g as f64 - want).abs();
            worst = worst.max(err);
            assert!(err < tol, "{solver} {steps}: log p at {p:?} = {g}, closed form {want}");
        }
        println!("{solver} {steps} steps: worst |log p − closed form| = {worst:.2e}");
    }
}

/// Central differences of the network's velocity in f32 (h = 1e-2): the exact divergence
/// agrees to the differences' own truncation and rounding error.
#[test]
fn mlp_divergence_matches_finite_differences_and_gpu_matches_cpu() {
    let m = model("moons");
    let b = CpuBackend;
    let net = Network::new(&b, &m).unwrap();
    let n = 64;
    let pts: Vec<f32> = pushforward::rng::test_values(2 * n, 9).iter().map(|v| 2.5 * v).collect();
    let x = Tensor::new(vec![n, 2], pts.clone()).unwrap();
    let h = 1e-2f32;
    let mut worst = 0.0f32;
    for t in [0.0, 0.3, 0.9, 1.0] {
        let (_, div) = net.velocity_and_divergence(&b, &x, t).unwrap();
        let mut fd = vec![0.0f32; n];
        for j in 0..2 {
            let shift = |s: f32| {
                let d: Vec<f32> = pts.iter().enumerate().map(|(i, v)| if i % 2 == j { v + s } else { *v }).collect();
                net.velocity(&b, &Tensor::new(vec![n, 2], d).unwrap(), t, None).unwrap()
            };
            let (plus, minus) = (shift(h), shift(-h));
            for (r, f) in fd.iter_mut().enumerate() {
                *f += (plus.data()[2 * r + j] - minus.data()[2 * r + j]) / (2.0 * h);
            }
        }
        for (e, f) in div.data().iter().zip(&fd) {
            let err = (e - f).abs() / (1.0 + f.abs());
            worst = worst.max(err);
            assert!(err < 2e-2, "t {t}: divergence {e} vs finite differences {f}");
        }
    }
    println!("moons divergence vs central differences: worst relative error {worst:.2e}");

    let Some(g) = gpu_common::gpu() else { return };
    let gnet = Network::new(g, &m).unwrap();
    let (gv, gdiv) = gnet.velocity_and_divergence(g, &g.upload(&x).unwrap(), 0.4).unwrap();
    let (cv, cdiv) = net.velocity_and_divergence(&b, &x, 0.4).unwrap();
    let host = |t| pollster::block_on(g.download(t)).unwrap();
    let (gv, gdiv) = (host(&gv), host(&gdiv));
    let d = |a: &Tensor, c: &Tensor| a.data().iter().zip(c.data()).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    println!("GPU vs CPU: velocity {:.2e}, divergence {:.2e}", d(&gv, &cv), d(&gdiv, &cdiv));
    assert!(d(&gv, &cv) < 1e-4 && d(&gdiv, &cdiv) < 1e-3);
}

#[test]
fn checkerboard_density_integrates_to_one_and_sits_on_the_data_squares() {
    let m = model("checkerboard");
    let DataConfig::Points2d { range } = m.config.data else { panic!() };
    let s = Sampler::new(CpuBackend, &m).unwrap();
    let (w, h) = (60, 60);
    let logp = pollster::block_on(s.log_density_grid(range, w, h, 16)).unwrap();
    let cell = ((range[0][1] - range[0][0]) / w as f32) * ((range[1][1] - range[1][0]) / h as f32);
    let total: f64 = logp.iter().map(|l| (l.exp() * cell) as f64).sum();
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for r in 0..h {
        let y = range[1][1] - (range[1][1] - range[1][0]) * (r as f32 + 0.5) / h as f32;
        for c in 0..w {
            let x = range[0][0] + (range[0][1] - range[0][0]) * (c as f32 + 0.5) / w as f32;
            // Data: uniform on the squares (i, j) of [-2, 2]² with i + j even (train/data.py).
            if x.abs() >= 1.9
                || y.abs() >= 1.9
                || ((x + 2.0).fract() - 0.5).abs() > 0.4
                || ((y + 2.0).fract() - 0.5).abs() > 0.4
            {
                continue; // near a square's edge the learned density ramps
            }
            let (i, j) = ((x + 2.0).floor() as i32, (y + 2.0).floor() as i32);
            let p = logp[r * w + c].exp() as f64;
            if (i + j) % 2 == 0 { on.push(p) } else { off.push(p) }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "checkerboard: ∫p over the box = {total:.3}; mean p on data squares {:.4} (uniform: 0.125), off {:.5}",
        mean(&on),
        mean(&off)
    );
    assert!((total - 1.0).abs() < 0.1, "the density integrates to {total}");
    assert!(mean(&on) > 20.0 * mean(&off), "on {} vs off {}", mean(&on), mean(&off));
    assert!((mean(&on) - 0.125).abs() < 0.04, "on-square density {}", mean(&on));
}
