//! The GPU painter (shaders/render.wgsl) draws the pictures of the CPU rasteriser
//! (src/render/mod.rs) from GPU buffers: points with trajectories, an interpolated state
//! between two frames, chunked batches, hostile values, and image grids split across chunks.
//! Both use the same integer accumulators and colour arithmetic, so the pictures may differ
//! only where float rounding differs (a few pixels by a level or two).

mod gpu_common;

use gpu_common::{gpu, open};
use pushforward::Backend;
use pushforward::gpu::{GpuBackend, GpuOptions, GpuTensor, PlanLimits};
use pushforward::model::{DataConfig, Model};
use pushforward::ode::Solver;
use pushforward::render::gpu::{GpuPainter, Scene};
use pushforward::render::{self, GridPlot, PointsPlot, Rgba};
use pushforward::sampler::{BackendOutput, SampleOptions, Sampler};
use pushforward::tensor::Tensor;
use std::ops::ControlFlow;

const FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// Share of pixels whose largest channel difference exceeds 2 levels, the largest difference,
/// and the share of pixels that are not background in `b`.
fn diff(a: &Rgba, b: &Rgba) -> (f64, u8, f64) {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let (mut bad, mut worst, mut drawn) = (0usize, 0u8, 0usize);
    for (p, q) in a.pixels.chunks_exact(4).zip(b.pixels.chunks_exact(4)) {
        let d = p.iter().zip(q).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
        worst = worst.max(d);
        bad += usize::from(d > 2);
        drawn += usize::from(q[..3] != render::BACKGROUND[..3]);
    }
    let n = (a.width * a.height) as f64;
    (bad as f64 / n, worst, drawn as f64 / n)
}

fn assert_same_picture(what: &str, gpu_img: &Rgba, cpu_img: &Rgba, min_drawn: f64) {
    let (bad, worst, drawn) = diff(gpu_img, cpu_img);
    eprintln!(
        "{what}: {:.4}% of pixels differ by > 2 levels (worst {worst}), {:.1}% drawn",
        100.0 * bad,
        100.0 * drawn
    );
    assert!(bad <= 1e-3, "{what}: {:.3}% of pixels differ (worst by {worst} levels)", 100.0 * bad);
    assert!(drawn >= min_drawn, "{what}: only {:.2}% of the canvas is drawn", 100.0 * drawn);
}

fn moons() -> Model {
    Model::from_bytes(&std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/moons.safetensors")).unwrap())
        .unwrap()
}

fn range(model: &Model) -> [[f32; 2]; 2] {
    match model.config.data {
        DataConfig::Points2d { range } => range,
        _ => panic!("a points model"),
    }
}

fn solve(b: &GpuBackend, model: &Model, o: &SampleOptions) -> BackendOutput<GpuTensor> {
    let s = Sampler::new(b, model).unwrap();
    pollster::block_on(s.sample_on_backend(o, &mut |_| ControlFlow::Continue(()))).unwrap()
}

fn host(b: &GpuBackend, t: &GpuTensor) -> Vec<f32> {
    pollster::block_on(b.download(t)).unwrap().into_data()
}

/// The picture of every chunk's final samples and trajectories, painted on the GPU, against
/// the CPU rasteriser on the downloaded values.
fn points_vs_cpu(b: &GpuBackend, out: &BackendOutput<GpuTensor>, plot: PointsPlot, max_paths: usize) -> (Rgba, Rgba) {
    let scene = Scene::Points {
        plot,
        states: out.chunks.iter().map(|c| &c.samples).collect(),
        first_row: out.chunks.iter().map(|c| c.rows.start).collect(),
        paths: out.chunks.iter().map(|c| c.frames.iter().map(|(_, f)| f).collect()).collect(),
        max_paths,
        heat: None,
    };
    let painter = GpuPainter::new(b, FORMAT);
    let g = pollster::block_on(painter.paint_to_rgba(b, &scene, plot.width as u32, plot.height as u32)).unwrap();
    let samples: Vec<f32> = out.chunks.iter().flat_map(|c| host(b, &c.samples)).collect();
    let nframes = out.chunks[0].frames.len();
    let frames: Vec<Vec<f32>> =
        (0..nframes).map(|k| out.chunks.iter().flat_map(|c| host(b, &c.frames[k].1)).collect()).collect();
    let c = render::density_plot(&samples, plot.range, plot.width, plot.height, &frames, max_paths, None);
    (g, c)
}

#[test]
fn points_and_trajectories_match_the_cpu_picture() {
    let Some(b) = gpu() else { return };
    let model = moons();
    let o = SampleOptions {
        n: 3000,
        solver: Solver::Heun,
        steps: 4,
        seed: 3,
        trajectory_every: Some(1),
        ..Default::default()
    };
    let out = solve(b, &model, &o);
    // A non-square canvas whose size divides neither the workgroup nor 400 (radius 2 splats).
    let plot = PointsPlot { width: 517, height: 403, range: range(&model) };
    let (g, c) = points_vs_cpu(b, &out, plot, 300);
    assert_same_picture("moons 3000 points + 300 paths, 517×403", &g, &c, 0.05);
}

#[test]
fn chunked_batches_draw_the_picture_of_one_batch() {
    let Some(small) = open(&GpuOptions {
        limits: Some(PlanLimits { max_binding_bytes: 64 << 10, max_buffer_bytes: 1 << 30, max_workgroups_per_dim: 7 }),
        ..Default::default()
    }) else {
        return;
    };
    let model = moons();
    let o = SampleOptions {
        n: 2500,
        solver: Solver::Euler,
        steps: 3,
        seed: 9,
        trajectory_every: Some(1),
        ..Default::default()
    };
    let out = solve(&small, &model, &o);
    assert!(out.chunks.len() >= 3, "the limits should split the batch ({} chunks)", out.chunks.len());
    let plot = PointsPlot { width: 300, height: 300, range: range(&model) };
    // Paths of the first 700 samples: they span several chunks.
    let (g, c) = points_vs_cpu(&small, &out, plot, 700);
    assert_same_picture(&format!("{} chunks, 7 workgroups per dimension", out.chunks.len()), &g, &c, 0.05);
}

/// `drawAt(t)` between two kept frames: mixed on the GPU (`lincomb`), interpolated on the CPU.
#[test]
fn interpolated_state_matches_the_cpu_picture() {
    let Some(b) = gpu() else { return };
    let model = moons();
    let o = SampleOptions { n: 2000, solver: Solver::Midpoint, steps: 2, seed: 4, ..Default::default() };
    let out = solve(b, &model, &o);
    let s = Sampler::new(b, &model).unwrap();
    let x0 = s.noise_on_backend(o.seed, 0, o.n).unwrap();
    let x1 = &out.chunks[0].samples;
    let plot = PointsPlot { width: 256, height: 200, range: range(&model) };
    let mixed_gpu = b.lincomb(&x0, &[(-0.3, &x0), (0.3, x1)]).unwrap();
    let scene =
        Scene::Points { plot, states: vec![&mixed_gpu], first_row: vec![], paths: vec![], max_paths: 0, heat: None };
    let g = pollster::block_on(GpuPainter::new(b, FORMAT).paint_to_rgba(b, &scene, 256, 200)).unwrap();
    let (a, bb) = (host(b, &x0), host(b, x1));
    let mixed: Vec<f32> = a.iter().zip(&bb).map(|(x, y)| x + (y - x) * 0.3).collect();
    let c = render::density_plot(&mixed, plot.range, 256, 200, &[], 0, None);
    assert_same_picture("t = 0.3 between noise and samples", &g, &c, 0.05);
}

/// NaN, ±inf and far-away points are dropped by both rasterisers (and cost nothing).
#[test]
fn hostile_points_are_dropped() {
    let Some(b) = gpu() else { return };
    let mut pts = pushforward::rng::test_values(2 * 500, 11);
    for (i, v) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, f32::MAX, 3.0e9].iter().enumerate() {
        pts[2 * i] = *v;
        pts[2 * i + 51] = *v;
    }
    let t = b.upload(&Tensor::new(vec![500, 2], pts.clone()).unwrap()).unwrap();
    let plot = PointsPlot { width: 800, height: 640, range: [[-1.0, 1.0], [-1.0, 1.0]] };
    let scene = Scene::Points {
        plot,
        states: vec![&t],
        first_row: vec![0],
        paths: vec![vec![&t, &t]],
        max_paths: 500,
        heat: None,
    };
    let g = pollster::block_on(GpuPainter::new(b, FORMAT).paint_to_rgba(b, &scene, 800, 640)).unwrap();
    let c = render::density_plot(&pts, plot.range, 800, 640, &[pts.clone(), pts.clone()], 500, None);
    assert_same_picture("points with NaN/inf/1e30, radius-3 splats", &g, &c, 0.01);
}

/// Images split over two chunks, values past the range (clamped), centred on a wider canvas.
#[test]
fn image_grid_matches_the_cpu_grid() {
    let Some(b) = gpu() else { return };
    let (n, c, h, w) = (13, 3, 9, 7);
    let values: Vec<f32> = pushforward::rng::test_values(n * c * h * w, 5).iter().map(|v| v * 1.3).collect();
    let split = 8 * c * h * w;
    let first = b.upload(&Tensor::new(vec![8, c, h, w], values[..split].to_vec()).unwrap()).unwrap();
    let second = b.upload(&Tensor::new(vec![5, c, h, w], values[split..].to_vec()).unwrap()).unwrap();
    let grid = GridPlot { n, channels: c, height: h, width: w, range: [-1.0, 1.0], cols: 5, scale: 1 }.fit_width(333);
    let (cw, ch) = (333, 260);
    let scene = Scene::Images { grid, chunks: vec![(0, &first), (8, &second)] };
    let g = pollster::block_on(GpuPainter::new(b, FORMAT).paint_to_rgba(b, &scene, cw, ch)).unwrap();
    let cpu = render::centred(&render::image_grid(&values, &grid), cw as usize, ch as usize);
    let (bad, worst, drawn) = diff(&g, &cpu);
    eprintln!(
        "13 RGB images in 2 chunks, scale {}: {} pixels differ (worst {worst}), {:.1}% drawn",
        grid.scale,
        bad,
        100.0 * drawn
    );
    assert!(worst <= 1, "image grid differs by up to {worst} levels");
    assert!(drawn > 0.3);
}

/// The log-density layer under the samples: the GPU's nearest-cell lookup and blend give the
/// CPU's pixels (a grid whose size divides neither canvas side).
#[test]
fn log_density_layer_matches_the_cpu_picture() {
    let Some(b) = gpu() else { return };
    let (hw, hh) = (37, 23);
    let log_p: Vec<f32> = pushforward::rng::test_values(hw * hh, 21).iter().map(|v| 6.0 * v - 3.0).collect();
    let heat = render::HeatLayer::from_log_density(hw, hh, &log_p);
    let pts = pushforward::rng::test_values(2 * 400, 22);
    let t = b.upload(&Tensor::new(vec![400, 2], pts.clone()).unwrap()).unwrap();
    let plot = PointsPlot { width: 301, height: 211, range: [[-1.0, 1.0], [-1.0, 1.0]] };
    let scene =
        Scene::Points { plot, states: vec![&t], first_row: vec![0], paths: vec![], max_paths: 0, heat: Some(&heat) };
    let g = pollster::block_on(GpuPainter::new(b, FORMAT).paint_to_rgba(b, &scene, 301, 211)).unwrap();
    let c = render::density_plot(&pts, plot.range, 301, 211, &[], 0, Some(&heat));
    assert_same_picture("400 points over a 37×23 log-density layer", &g, &c, 0.5);
}
