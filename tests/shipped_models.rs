//! The shipped models (`models/*.safetensors`): forward parity with PyTorch (fixtures written by
//! `train/make_fixtures.py` in float64), and sample quality by the Rust sampler against the
//! floors of the trained-models issue.

use pushforward::Tensor;
use pushforward::cpu::CpuBackend;
use pushforward::metrics::{SortedProjections, sliced_w2};
use pushforward::model::{DataConfig, Model, Network, PathConfig};
use pushforward::ode::Solver;
use pushforward::rng;
use pushforward::sampler::{SampleOptions, Sampler};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_fixture(path: &Path) -> HashMap<String, Tensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let data = match v.dtype() {
                safetensors::Dtype::F32 => {
                    v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
                }
                safetensors::Dtype::F16 => v
                    .data()
                    .chunks_exact(2)
                    .map(|c| pushforward::model::format::f16_to_f32(u16::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
                other => panic!("{name}: {other:?}"),
            };
            (name, Tensor::new(v.shape().to_vec(), data).unwrap())
        })
        .collect()
}

fn shipped_models() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("models"))
        .expect("models/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_model_loads_and_has_a_forward_fixture() {
    let models = shipped_models();
    assert!(!models.is_empty(), "no shipped models in models/");
    for p in models {
        let name = p.file_stem().unwrap().to_str().unwrap();
        let m = Model::from_bytes(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(std::fs::metadata(&p).unwrap().len() <= 4 << 20, "{name} is over 4 MB");
        assert!(m.param_count() > 0);
        let fx = root().join(format!("tests/fixtures/{name}_forward.safetensors"));
        assert!(fx.exists(), "missing parity fixture {}", fx.display());
    }
}

/// Runs every `tests/fixtures/*_forward.safetensors` against the weights it was made from
/// (`models/NAME.safetensors`, or `tests/fixtures/NAME.safetensors` for untrained
/// non-default-size models) and compares with PyTorch's float64 outputs.
#[test]
fn cpu_forward_matches_pytorch_fixtures() {
    let mut checked = 0;
    for e in std::fs::read_dir(root().join("tests/fixtures")).unwrap() {
        let path = e.unwrap().path();
        let fname = path.file_name().unwrap().to_str().unwrap().to_string();
        let Some(name) = fname.strip_suffix("_forward.safetensors") else { continue };
        let weights = [
            root().join(format!("models/{name}.safetensors")),
            root().join(format!("tests/fixtures/{name}.safetensors")),
        ]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no weights for fixture {fname}"));
        let model = Model::from_bytes(&std::fs::read(&weights).unwrap()).unwrap();
        let fx = read_fixture(&path);
        let (x, t, v) = (&fx["x"], &fx["t"], &fx["v"]);
        let b = CpuBackend;
        let net = Network::new(&b, &model).unwrap();
        let rows = x.shape()[0];
        let per = x.numel() / rows;
        let mut worst = 0f32;
        for r in 0..rows {
            let mut shape = x.shape().to_vec();
            shape[0] = 1;
            let xr = Tensor::new(shape, x.data()[r * per..(r + 1) * per].to_vec()).unwrap();
            let label = fx.get("y").map(|y| vec![y.data()[r] as u32]);
            // Flow maps' fixtures carry the step lengths of their average velocities.
            let step = fx.get("h").map_or(0.0, |h| h.data()[r]);
            let out = net.average_velocity(&b, &xr, t.data()[r], step, label.as_deref()).unwrap();
            let expect = &v.data()[r * per..(r + 1) * per];
            let scale = expect.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
            for (a, e) in out.data().iter().zip(expect) {
                // 1e-4 relative to the output's magnitude (f32 forward vs float64 reference).
                let err = (a - e).abs() / scale;
                worst = worst.max(err);
                assert!(err <= 1e-4, "{name} row {r} t={}: {a} vs {e} (rel {err:e})", t.data()[r]);
            }
        }
        println!("{name}: {rows} rows, worst relative error {worst:e}");
        checked += 1;
    }
    assert!(checked > 0, "no forward fixtures found");
}

/// A 2-D dataset's independent data draws (`tests/fixtures/{dataset}_data.safetensors`, each
/// [n, 2]) and its floor: the mean SW2 over every pair of draws.
struct DataDraws {
    draws: Vec<Tensor>,
    floor: f64,
    pairs: usize,
}

/// The noise seeds every 2-D quality score averages over.
const QUALITY_SEEDS: [u64; 4] = [2024, 2025, 2026, 2027];

impl DataDraws {
    fn load(dataset: &str) -> DataDraws {
        let fx = read_fixture(&root().join(format!("tests/fixtures/{dataset}_data.safetensors")));
        let mut names: Vec<&String> = fx.keys().collect();
        names.sort();
        let draws: Vec<Tensor> = names.iter().map(|k| fx[*k].clone()).collect();
        assert!(draws.len() >= 2, "{dataset}: need at least two data draws");
        let mut pairs = Vec::new();
        for i in 0..draws.len() {
            for j in i + 1..draws.len() {
                pairs.push(sliced_w2(draws[i].data(), draws[j].data()).unwrap());
            }
        }
        let floor = pairs.iter().sum::<f64>() / pairs.len() as f64;
        DataDraws { draws, floor, pairs: pairs.len() }
    }

    /// Points per draw (every draw and every scored sample set has this many).
    fn n(&self) -> usize {
        self.draws[0].shape()[0]
    }

    /// The score every 2-D gate uses: mean SW2 of `samples(seed)` against every data draw,
    /// over the 4 `QUALITY_SEEDS`.
    fn score(&self, mut samples: impl FnMut(u64) -> Tensor) -> f64 {
        let mut acc = Vec::new();
        for seed in QUALITY_SEEDS {
            let s = samples(seed);
            acc.extend(self.draws.iter().map(|d| sliced_w2(s.data(), d.data()).unwrap()));
        }
        acc.iter().sum::<f64>() / acc.len() as f64
    }
}

/// One quality gate of a shipped 2-D model: the best (lowest) score over `runs`
/// (solver, steps) must be ≤ `factor` × the data-vs-data floor.
struct Gate {
    what: &'static str,
    runs: Vec<(Solver, usize)>,
    factor: f64,
}

/// The gates of `shipped_2d_models_meet_the_quality_floors` for one model.
fn quality_gates(model: &Model) -> Vec<Gate> {
    if model.config.provenance.independent_coupling() || model.config.path == PathConfig::Cosine {
        // Independent coupling (shipped for the SDE sampler) and the diffusion-style cosine
        // path (shipped to be compared with the linear path) have curved paths, so the few-NFE
        // floors (the linear OT models') do not apply. They must converge: RK4 at 32 NFE within
        // 1.6× the floor (PyTorch's evaluation measured 1.50× for the cosine path).
        return vec![Gate { what: "rk4 32 NFE", runs: vec![(Solver::Rk4, 8)], factor: 1.6 }];
    }
    vec![
        Gate { what: "heun 8 NFE", runs: vec![(Solver::Heun, 4)], factor: 1.5 },
        Gate {
            what: "best 2 NFE (euler/midpoint/heun)",
            runs: vec![(Solver::Euler, 2), (Solver::Midpoint, 1), (Solver::Heun, 1)],
            factor: 3.0,
        },
    ]
}

/// Every shipped 2-D model with its name and its dataset's draws.
fn shipped_2d_models() -> Vec<(String, Model, DataDraws)> {
    let mut out = Vec::new();
    for p in shipped_models() {
        let name = p.file_stem().unwrap().to_str().unwrap().to_string();
        let model = Model::from_bytes(&std::fs::read(&p).unwrap()).unwrap();
        let DataConfig::Points2d { .. } = model.config.data else { continue };
        let dataset = model.config.provenance.dataset.clone().expect("2-D models record their dataset");
        out.push((name, model, DataDraws::load(&dataset)));
    }
    assert!(!out.is_empty(), "no 2-D models shipped");
    out
}

/// Quality floors from the trained-models issue, measured by the Rust sampler: sliced W2
/// between 10k samples and 10k fresh data points ≤ 1.5× the data-vs-data floor with Heun at
/// 8 NFE and ≤ 3× with the best solver at 2 NFE (`quality_gates`; curved-path models: RK4 at
/// 32 NFE ≤ 1.6×).
///
/// SW2 at 10k points is dominated by sampling noise (one moons draw pair gives 0.013, another
/// 0.021), so both sides are averaged: the floor over every pair of the fixture's independent
/// data draws, the model over 4 noise seeds × every data draw.
#[test]
fn shipped_2d_models_meet_the_quality_floors() {
    let mut failures = Vec::new();
    for (name, model, data) in shipped_2d_models() {
        let sampler = Sampler::new(CpuBackend, &model).unwrap();
        let mut line = format!("{name}: floor {:.4} (mean of {} pairs)", data.floor, data.pairs);
        for gate in quality_gates(&model) {
            let scores: Vec<f64> = gate
                .runs
                .iter()
                .map(|&(solver, steps)| {
                    data.score(|seed| {
                        let o = SampleOptions { n: data.n(), solver, steps, seed, ..Default::default() };
                        sampler.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap().samples
                    })
                })
                .collect();
            let best = scores.iter().cloned().fold(f64::INFINITY, f64::min);
            let each: Vec<String> = scores.iter().map(|s| format!("{s:.4}")).collect();
            line += &format!(", {} {} ({:.2}x, gate {}x)", gate.what, each.join("/"), best / data.floor, gate.factor);
            if best > gate.factor * data.floor {
                failures
                    .push(format!("{name}: {} SW2 {best:.4} > {} × floor {:.4}", gate.what, gate.factor, data.floor));
            }
        }
        println!("{line}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Points of a 2-D dataset as `train/data.py` defines it, drawn here from their definitions with
/// a generator of this test's own (SplitMix64; normals by Box–Muller in f64): data neither the
/// training nor the fixtures used, and no PyTorch.
///
/// Every point is independent, so moons's and spirals's two parts get Binomial(n, 1/2) points,
/// not exactly n/2 each as `train/data.py` generates them for training (and sklearn's
/// make_moons): a floor must come from independent draws, as a sampler's output is one; split
/// draws fluctuate less (a perfect sampler scores ~1.10× their floor on moons, 0.97× this one's).
fn dataset_points(dataset: &str, n: usize, seed: u64) -> Vec<f32> {
    let mut g = rng::SplitMix64(seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut u = move || g.next_f64();
    // Whether a point of a two-part dataset is on its first part.
    let first_part = |u: &mut dyn FnMut() -> f64| u() < 0.5;
    let normal = |u: &mut dyn FnMut() -> f64| (-2.0 * (1.0 - u()).ln()).sqrt() * (std::f64::consts::TAU * u()).cos();
    let pi = std::f64::consts::PI;
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let [x, y] = match dataset {
            // Two half circles, each point on either with probability 1/2 (an independent sample;
            // see `first_part`), noise 0.08, centred, × 1.6.
            "moons" => {
                let outer = first_part(&mut u);
                let a = pi * u();
                let [cx, cy] = if outer { [a.cos(), a.sin()] } else { [1.0 - a.cos(), 0.5 - a.sin()] };
                let (nx, ny) = (normal(&mut u), normal(&mut u));
                [(cx + 0.08 * nx - 0.5) * 1.6, (cy + 0.08 * ny - 0.25) * 1.6]
            }
            // 8 modes on a circle of radius 2, std 0.12.
            "8gaussians" => {
                let ang = std::f64::consts::TAU * ((u() * 8.0).floor().min(7.0)) / 8.0;
                [2.0 * ang.cos() + 0.12 * normal(&mut u), 2.0 * ang.sin() + 0.12 * normal(&mut u)]
            }
            // Uniform on the 8 cells (i, j) of a 4×4 board on [-2, 2]² with i + j even.
            "checkerboard" => {
                let k = (u() * 8.0).floor().min(7.0) as usize;
                let (i, j) = (k / 2, 2 * (k % 2) + (k / 2) % 2);
                [-2.0 + i as f64 + u(), -2.0 + j as f64 + u()]
            }
            // Two arms rotated by π, θ = π/2 + 3π·√u, r = 0.7θ/π, scaled by 2.2/2.45, noise 0.05.
            "spirals" => {
                let theta = 0.5 * pi + u().sqrt() * 3.0 * pi;
                let r = 0.7 * theta / pi * (2.2 / 2.45);
                let sign = if first_part(&mut u) { 1.0 } else { -1.0 };
                [sign * r * theta.cos() + 0.05 * normal(&mut u), sign * r * theta.sin() + 0.05 * normal(&mut u)]
            }
            other => panic!("no generator for dataset {other}"),
        };
        out.extend([x as f32, y as f32]);
    }
    out
}

/// The cells (i, j) that `dataset_points` draws for checkerboard are exactly the board's 8
/// black ones (i + j even), each once.
#[test]
fn checkerboard_cells_are_the_black_ones() {
    let mut cells: Vec<(usize, usize)> = (0..8).map(|k| (k / 2, 2 * (k % 2) + (k / 2) % 2)).collect();
    cells.sort();
    let want: Vec<(usize, usize)> =
        (0..4).flat_map(|i| (0..4).map(move |j| (i, j))).filter(|(i, j)| (i + j) % 2 == 0).collect();
    assert_eq!(cells, want);
}

/// Issue #18's 2-D targets by its protocol: SW2 of 20,000 samples (× 8 noise seeds) against
/// fresh independent 20,000-point data draws (8, drawn here), over the floor = the mean SW2 of
/// the 28 pairs of those draws: the linear-path minibatch-OT models ≤ 1.25× at Heun 8 NFE and
/// ≤ 1.15× converged (RK4 32 NFE); the curved-path ones (cosine path, independent coupling)
/// converged only. (PyTorch's `evaluate.py --protocol-20k-only` measures the same with 12
/// draws.) Every shipped 2-D model is asserted.
///
/// One-step flow maps (`*_meanflow`) are held to #18's one-step targets: their own jumps
/// (Euler) ≤ 1.5× at 1 NFE and ≤ 1.25× at 2 NFE (their Heun and RK4 rows, the instantaneous
/// velocity, are printed only).
///
/// The draws must be independent (`dataset_points`): with moons split exactly in half, as
/// training's generator draws them, the moons family measured 1.29–1.44× here, and so would a
/// perfect sampler have measured ~1.10×.
#[test]
fn shipped_2d_models_meet_the_20k_floor_protocol() {
    const N: usize = 20_000;
    const DRAWS: u64 = 8;
    // Eight noise seeds, not four: at 20,000 points one seed's SW2 on moons ranged over
    // 0.92–2.24× the floor (32 seeds, PyTorch, split draws; independent data draws scored the
    // same way against independent ones reach 1.60×), so four left the mean ±0.1 to chance.
    const P20K_SEEDS: [u64; 8] = [2024, 2025, 2026, 2027, 2028, 2029, 2030, 2031];
    let mut failures = Vec::new();
    for (name, model, _) in shipped_2d_models() {
        let dataset = model.config.provenance.dataset.clone().unwrap();
        let draws: Vec<SortedProjections> =
            (0..DRAWS).map(|k| SortedProjections::new(&dataset_points(&dataset, N, 1_000 + k))).collect();
        let mut pairs = Vec::new();
        for i in 0..draws.len() {
            for j in i + 1..draws.len() {
                pairs.push(draws[i].sliced_w2(&draws[j]));
            }
        }
        let floor = pairs.iter().sum::<f64>() / pairs.len() as f64;
        let sampler = Sampler::new(CpuBackend, &model).unwrap();
        let score = |solver: Solver, steps: usize| {
            let mut acc = Vec::new();
            for seed in P20K_SEEDS {
                let o = SampleOptions { n: N, solver, steps, seed, ..Default::default() };
                let s = SortedProjections::new(
                    sampler.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap().samples.data(),
                );
                acc.extend(draws.iter().map(|d| s.sliced_w2(d)));
            }
            acc.iter().sum::<f64>() / acc.len() as f64 / floor
        };
        let curved = model.config.provenance.independent_coupling() || model.config.path == PathConfig::Cosine;
        let mut gates = vec![("rk4 32 NFE", Solver::Rk4, 8, 1.15)];
        if !curved {
            gates.insert(0, ("heun 8 NFE", Solver::Heun, 4, 1.25));
        }
        if model.config.arch.flow_map() {
            // #18's one-step targets: the map's own jumps (Euler steps) at 1 and 2 NFE.
            gates.insert(0, ("map 2 NFE", Solver::Euler, 2, 1.25));
            gates.insert(0, ("map 1 NFE", Solver::Euler, 1, 1.5));
        }
        let map = model.config.arch.flow_map();
        let asserted = if map { "map rows asserted" } else { "asserted" };
        let mut line = format!("{name} ({asserted}): 20k floor {floor:.4} (mean of {} pairs)", pairs.len());
        for (what, solver, steps, gate) in gates {
            let ratio = score(solver, steps);
            line += &format!(", {what} {ratio:.3}x (gate {gate}x)");
            if ratio > gate && (!map || what.starts_with("map")) {
                failures.push(format!("{name}: {what} {ratio:.3}x the floor > {gate}x"));
            }
        }
        println!("{line}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The gates can fail: noise scored exactly as the samples are (`DataDraws::score`, 4 seeds ×
/// every data draw) is above every gate's threshold (factor × floor) of every shipped 2-D
/// model, by at least `MARGIN`× — both standard-normal noise (what the sampler starts from)
/// and a Gaussian matched to the data's mean and covariance (noise at the data's scale, the
/// best a sampler that ignored the data's shape could do).
#[test]
fn noise_fails_every_shipped_2d_quality_gate() {
    const MARGIN: f64 = 2.0;
    let mut failures = Vec::new();
    for (name, model, data) in shipped_2d_models() {
        let n = data.n();
        // The data's mean and covariance over every draw, and its Cholesky factor.
        let pts: Vec<[f64; 2]> =
            data.draws.iter().flat_map(|d| d.data().chunks_exact(2).map(|p| [p[0] as f64, p[1] as f64])).collect();
        let count = pts.len() as f64;
        let m = [pts.iter().map(|p| p[0]).sum::<f64>() / count, pts.iter().map(|p| p[1]).sum::<f64>() / count];
        let cov = |a: usize, b: usize| pts.iter().map(|p| (p[a] - m[a]) * (p[b] - m[b])).sum::<f64>() / (count - 1.0);
        let (l11, l21) = (cov(0, 0).sqrt(), cov(1, 0) / cov(0, 0).sqrt());
        let l22 = (cov(1, 1) - l21 * l21).sqrt();
        let normal = |seed: u64| {
            let mut z = vec![0f32; 2 * n];
            rng::fill_normal(seed, rng::STREAM_INIT, 0, &mut z);
            z
        };
        let standard = data.score(|seed| Tensor::new(vec![n, 2], normal(seed)).unwrap());
        let matched = data.score(|seed| {
            let z = normal(seed);
            let x = z
                .chunks_exact(2)
                .flat_map(|p| {
                    let (a, b) = (p[0] as f64, p[1] as f64);
                    [(m[0] + l11 * a) as f32, (m[1] + l21 * a + l22 * b) as f32]
                })
                .collect();
            Tensor::new(vec![n, 2], x).unwrap()
        });
        let mut line = format!(
            "{name}: floor {:.4}; noise N(0, I) {standard:.4}, N(data mean, data cov) {matched:.4}",
            data.floor
        );
        for gate in quality_gates(&model) {
            let threshold = gate.factor * data.floor;
            line += &format!(
                "; {} gate {threshold:.4}: noise {:.1}x / {:.1}x it",
                gate.what,
                standard / threshold,
                matched / threshold
            );
            for (kind, score) in [("N(0, I)", standard), ("data-matched Gaussian", matched)] {
                if score <= MARGIN * threshold {
                    failures.push(format!(
                        "{name}: {kind} noise scores {score:.4}, within {MARGIN}× the {} gate's threshold {threshold:.4}",
                        gate.what
                    ));
                }
            }
        }
        println!("{line}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The evaluation classifiers of `train/classifier.py` (SmallCNN: conv-relu-pool ×3, fc-relu,
/// head; 1×28×28 digits or 3×32×32 emoji), run with the crate's CPU kernels so the image checks
/// need no PyTorch. Returns (the 128-d features [n, 128], the logits [n, classes]).
fn classify_with_features(weights: &HashMap<String, Tensor>, images: &Tensor) -> (Tensor, Vec<Vec<f32>>) {
    use pushforward::Backend;
    let b = CpuBackend;
    let relu_pool = |x: Tensor| -> Tensor {
        let [n, c, h, w]: [usize; 4] = x.shape().try_into().unwrap();
        let (oh, ow) = (h / 2, w / 2);
        let mut out = vec![0f32; n * c * oh * ow];
        for p in 0..n * c {
            for y in 0..oh {
                for xx in 0..ow {
                    let at = |dy: usize, dx: usize| x.data()[(p * h + 2 * y + dy) * w + 2 * xx + dx];
                    out[(p * oh + y) * ow + xx] = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1)).max(0.0);
                }
            }
        }
        Tensor::new(vec![n, c, oh, ow], out).unwrap()
    };
    let mut h = images.clone();
    for l in ["c1", "c2", "c3"] {
        h = relu_pool(
            b.conv2d(&h, &weights[&format!("{l}.weight")], Some(&weights[&format!("{l}.bias")]), 1, 1).unwrap(),
        );
    }
    let n = h.shape()[0];
    let flat = h.clone().reshape(vec![n, h.numel() / n]).unwrap();
    let mut f =
        b.linear(&flat, &weights["fc.weight"], Some(&weights["fc.bias"]), pushforward::cpu::Activation::None).unwrap();
    f.data_mut().iter_mut().for_each(|v| *v = v.max(0.0));
    let logits =
        b.linear(&f, &weights["head.weight"], Some(&weights["head.bias"]), pushforward::cpu::Activation::None).unwrap();
    let classes = weights["head.bias"].numel();
    (f, logits.data().chunks(classes).map(|c| c.to_vec()).collect())
}

fn classify_digits(weights: &HashMap<String, Tensor>, images: &Tensor) -> Vec<Vec<f32>> {
    classify_with_features(weights, images).1
}

fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap() as u32
}

/// The classifier itself is right: on the committed held-out digits it matches its recorded
/// accuracy (a wrong Rust port would not).
#[test]
fn digit_classifier_port_is_accurate_on_held_out_digits() {
    let w = read_fixture(&root().join("train/mnist_classifier.safetensors"));
    let fx = read_fixture(&root().join("tests/fixtures/mnist_heldout.safetensors"));
    let (x, y) = (&fx["x"], &fx["y"]);
    let logits = classify_digits(&w, x);
    let correct = logits.iter().zip(y.data()).filter(|(l, y)| argmax(l) == **y as u32).count();
    let acc = correct as f64 / logits.len() as f64;
    println!("classifier on {} held-out digits: accuracy {acc:.4}", logits.len());
    assert!(acc >= 0.98, "held-out accuracy {acc}");
}

/// mnist samples from the Rust sampler are the requested digits: 20 per class, Heun 10 steps
/// (20 NFE), guidance 2, classified by the exported classifier.
#[test]
fn mnist_samples_are_the_requested_class() {
    let p = root().join("models/mnist.safetensors");
    let model = Model::from_bytes(&std::fs::read(&p).unwrap()).unwrap();
    let w = read_fixture(&root().join("train/mnist_classifier.safetensors"));
    let sampler = Sampler::new(CpuBackend, &model).unwrap();
    let o = SampleOptions {
        n: 200,
        solver: Solver::Heun,
        steps: 10,
        seed: 7,
        labels: pushforward::sampler::Labels::Cycle,
        guidance: 2.0,
        ..Default::default()
    };
    let out = sampler.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
    let logits = classify_digits(&w, &out.samples);
    let hits = logits.iter().zip(&out.labels).filter(|(l, y)| argmax(l) == **y).count();
    let share = hits as f64 / out.labels.len() as f64;
    println!(
        "mnist: {hits}/{} samples classified as the requested digit ({:.1}%), {} NFE",
        out.labels.len(),
        100.0 * share,
        out.stats.nfe
    );
    assert!(share >= 0.95, "only {share:.3} of samples are the requested class");
}

/// The emoji classifier's Rust port computes what PyTorch computes (float64) on emoji it never
/// saw: every feature and logit within 1e-5 of the largest magnitude (measured 2e-7), and the same class for
/// every image.
#[test]
fn emoji_classifier_port_matches_pytorch() {
    let w = read_fixture(&root().join("train/emoji_classifier.safetensors"));
    let fx = read_fixture(&root().join("tests/fixtures/emoji_classifier_check.safetensors"));
    let (features, logits) = classify_with_features(&w, &fx["x"]);
    let flat: Vec<f32> = logits.iter().flatten().copied().collect();
    for (what, got, want) in
        [("features", features.data(), fx["features"].data()), ("logits", &flat[..], fx["logits"].data())]
    {
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max_abs_diff(got, want);
        println!("emoji classifier {what}: max |rust − pytorch| = {d:.2e} (max |value| {scale:.2})");
        assert!(d <= 1e-5 * scale, "{what} differ by {d}");
    }
    let want: Vec<u32> = fx["logits"].data().chunks(logits[0].len()).map(argmax).collect();
    let got: Vec<u32> = logits.iter().map(|l| argmax(l)).collect();
    assert_eq!(got, want);
    let correct = got.iter().zip(fx["y"].data()).filter(|(g, y)| **g == **y as u32).count();
    println!("emoji classifier on {} unseen train-split emoji: {correct} right", got.len());
}

/// Emoji samples from the Rust sampler are read as their requested category by the independent
/// classifier (trained only on held-out emoji; train/classifier.py) about as often as PyTorch's
/// samples are: 20 per category, Heun 4 steps (8 NFE), guidance 2: PyTorch measured a
/// per-category mean of 55.3% at these settings on 1,528 samples (models/README.md, "emoji");
/// the gate leaves 3.5 standard errors of 180 samples (0.037 each) below it. For scale: the
/// classifier reads real train-split emoji right 52.7% of the time averaged over categories
/// (70.2% in the data's proportions), and chance is 11%.
#[test]
fn emoji_samples_are_the_requested_category() {
    const EMOJI_GUIDANCE: f32 = 2.0;
    const MIN_AGREEMENT: f64 = 0.42;
    let model = Model::from_bytes(&std::fs::read(root().join("models/emoji.safetensors")).unwrap()).unwrap();
    assert_eq!(model.config.class_names.len(), 9, "the emoji model names its categories");
    let w = read_fixture(&root().join("train/emoji_classifier.safetensors"));
    let sampler = Sampler::new(CpuBackend, &model).unwrap();
    let o = SampleOptions {
        n: 180,
        solver: Solver::Heun,
        steps: 4,
        seed: 7,
        labels: pushforward::sampler::Labels::Cycle,
        guidance: EMOJI_GUIDANCE,
        ..Default::default()
    };
    let out = sampler.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
    let logits = classify_digits(&w, &out.samples);
    let mut per_class = [[0usize; 2]; 9];
    for (l, &y) in logits.iter().zip(&out.labels) {
        per_class[y as usize][0] += (argmax(l) == y) as usize;
        per_class[y as usize][1] += 1;
    }
    let shares: Vec<f64> = per_class.iter().map(|[hit, n]| *hit as f64 / *n as f64).collect();
    let mean = shares.iter().sum::<f64>() / 9.0;
    println!(
        "emoji: {:.1}% of samples read as the requested category (per category {}), {} NFE",
        100.0 * mean,
        shares
            .iter()
            .zip(&model.config.class_names)
            .map(|(s, n)| format!("{n} {:.0}%", 100.0 * s))
            .collect::<Vec<_>>()
            .join(", "),
        out.stats.nfe
    );
    assert!(mean >= MIN_AGREEMENT, "category agreement {mean:.3} < {MIN_AGREEMENT}");
}

/// Largest |a − b| over two equally long slices.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// `tests/fixtures/mnist_reference.safetensors` is an independent reference solve of
/// `models/mnist.safetensors`, written by PyTorch (`train/make_reference.py`, never by this
/// crate): one sample per class (labels 0..9), Heun 5 steps on the uniform grid, classifier-free
/// guidance 2, seed 3, computed in float64 by `train/models.py` from the stored F32 weights. Its
/// `x0` [10, 1, 28, 28] is the seeded noise drawn by `train/rng.py` (a NumPy port of `rng`), its
/// `frames` [6, 10, 1, 28, 28] the states at t = 0, 0.2, …, 1 and `samples` = the last frame.
///
/// The native CPU sampler must reproduce it: (a) `Sampler::initial_noise(10, 3)` equals `x0`
/// (≤ 1e-6; measured 0, bit-identical), (b) the samples match `samples` (≤ 1e-3 max abs;
/// measured 3.1e-5), (c) every trajectory frame matches (≤ 1e-3; measured 0, 7.2e-7, 1.1e-6,
/// 2.1e-6, 5.3e-6, 3.1e-5 at t = 0, 0.2, …, 1), and (d) the digit classifier reads every
/// sample as its requested digit. The browser test compares the wasm backends against
/// `samples` too. Regenerate with `train/.venv/bin/python train/make_reference.py`.
#[test]
fn mnist_reference_samples_are_current_and_recognisable() {
    let model = Model::from_bytes(&std::fs::read(root().join("models/mnist.safetensors")).unwrap()).unwrap();
    let sampler = Sampler::new(CpuBackend, &model).unwrap();
    let o = SampleOptions {
        n: 10,
        solver: Solver::Heun,
        steps: 5,
        seed: 3,
        labels: pushforward::sampler::Labels::Cycle,
        guidance: 2.0,
        trajectory_every: Some(1),
        ..Default::default()
    };
    let fx = read_fixture(&root().join("tests/fixtures/mnist_reference.safetensors"));
    let (x0_ref, frames_ref, samples_ref) = (&fx["x0"], &fx["frames"], &fx["samples"]);
    assert_eq!(x0_ref.shape(), [10, 1, 28, 28]);
    assert_eq!(samples_ref.shape(), [10, 1, 28, 28]);
    assert_eq!(frames_ref.shape(), [6, 10, 1, 28, 28]);

    // (a) the same initial noise
    let x0 = sampler.initial_noise(10, 3).unwrap();
    assert_eq!(x0.shape(), x0_ref.shape());
    let dx0 = max_abs_diff(x0.data(), x0_ref.data());

    let out = sampler.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(out.labels, (0..10).collect::<Vec<u32>>());
    // (b) the samples
    let ds = max_abs_diff(out.samples.data(), samples_ref.data());
    // (c) every state of the trajectory, at t = 0, 0.2, …, 1
    assert_eq!(out.frames.len(), 6, "frames at t = {:?}", out.frames.iter().map(|(t, _)| *t).collect::<Vec<_>>());
    let per = samples_ref.numel();
    let dframes: Vec<f32> = out
        .frames
        .iter()
        .enumerate()
        .map(|(k, (t, f))| {
            assert!((t - k as f32 / 5.0).abs() < 1e-6, "frame {k} at t = {t}");
            assert_eq!(f.shape(), samples_ref.shape(), "frame {k}");
            max_abs_diff(f.data(), &frames_ref.data()[k * per..(k + 1) * per])
        })
        .collect();
    let per_frame: Vec<String> = dframes.iter().map(|d| format!("{d:.1e}")).collect();
    println!(
        "mnist reference (PyTorch float64): max |x0 − x0_ref| = {dx0:.1e}, max |samples − ref| = {ds:.1e}, per frame \
         (t = 0, 0.2, …, 1) {}",
        per_frame.join(", ")
    );
    assert!(dx0 <= 1e-6, "initial noise differs from train/rng.py's by {dx0}");
    assert!(ds <= 1e-3, "native samples differ from the PyTorch reference by {ds}");
    for (k, d) in dframes.iter().enumerate() {
        assert!(*d <= 1e-3, "frame {k} (t = {}) differs from the PyTorch reference by {d}", k as f32 / 5.0);
    }
    // (d) recognisable digits, both the reference's and ours
    let w = read_fixture(&root().join("train/mnist_classifier.safetensors"));
    for (who, images) in [("PyTorch reference", samples_ref), ("native", &out.samples)] {
        let classes: Vec<u32> = classify_digits(&w, images).iter().map(|l| argmax(l)).collect();
        assert_eq!(classes, (0..10).collect::<Vec<u32>>(), "{who} samples");
    }
}

/// Few-step generation: `moons_reflow` (rectified flow's second stage on pairs (x0, ODE_moons(x0)),
/// `train/configs/moons_reflow.toml`) reaches in 1 and 2 NFE the sample quality that the base
/// `moons` reaches with Heun at 8 NFE (SW2 on the same data draws and seeds, within 10%).
#[test]
fn reflow_model_reaches_the_base_models_8_step_quality_in_2_steps() {
    let load = |name: &str| {
        Model::from_bytes(&std::fs::read(root().join(format!("models/{name}.safetensors"))).unwrap()).unwrap()
    };
    let (base, reflow) = (load("moons"), load("moons_reflow"));
    let fx = read_fixture(&root().join("tests/fixtures/moons_data.safetensors"));
    let mut names: Vec<&String> = fx.keys().collect();
    names.sort();
    let draws: Vec<&Tensor> = names.iter().map(|k| &fx[*k]).collect();
    let n = draws[0].shape()[0];
    let sw = |model: &Model, solver: Solver, steps: usize| {
        let sampler = Sampler::new(CpuBackend, model).unwrap();
        let mut acc = Vec::new();
        for seed in [31, 32, 33] {
            let o = SampleOptions { n, solver, steps, seed, ..Default::default() };
            let out = sampler.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
            acc.extend(draws.iter().map(|d| sliced_w2(out.samples.data(), d.data()).unwrap()));
        }
        acc.iter().sum::<f64>() / acc.len() as f64
    };
    let base8 = sw(&base, Solver::Heun, 4);
    let base2 = sw(&base, Solver::Midpoint, 1);
    let one = sw(&reflow, Solver::Euler, 1);
    let two = sw(&reflow, Solver::Midpoint, 1).min(sw(&reflow, Solver::Euler, 2));
    println!(
        "moons Heun 8 NFE {base8:.4}, midpoint 2 NFE {base2:.4}; moons_reflow 1 NFE {one:.4} ({:.2}× base@8), 2 NFE {two:.4} ({:.2}×)",
        one / base8,
        two / base8
    );
    assert!(two <= 1.1 * base8, "reflow at 2 NFE {two:.4} vs base at 8 NFE {base8:.4}");
}

/// Few-step mnist: `mnist_reflow` (guided reflow of `mnist`: pairs x0 → teacher Heun 20 NFE at
/// guidance 2, `train/configs/mnist_reflow.toml`) sampled with 2 NFE and no guidance pass makes
/// the requested digits as reliably as the base model with Heun at 8 NFE and guidance 2
/// (200 samples each, 20 per class, classified by the exported classifier).
#[test]
fn mnist_reflow_at_2_nfe_matches_the_base_at_8() {
    let load = |name: &str| {
        Model::from_bytes(&std::fs::read(root().join(format!("models/{name}.safetensors"))).unwrap()).unwrap()
    };
    let w = read_fixture(&root().join("train/mnist_classifier.safetensors"));
    let share = |model: &Model, solver: Solver, steps: usize, guidance: f32| {
        let sampler = Sampler::new(CpuBackend, model).unwrap();
        let o = SampleOptions {
            n: 200,
            solver,
            steps,
            seed: 11,
            labels: pushforward::sampler::Labels::Cycle,
            guidance,
            ..Default::default()
        };
        let out = sampler.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
        let logits = classify_digits(&w, &out.samples);
        let hits = logits.iter().zip(&out.labels).filter(|(l, y)| argmax(l) == **y).count();
        (hits as f64 / out.labels.len() as f64, out.stats.nfe)
    };
    let (base8, nfe8) = share(&load("mnist"), Solver::Heun, 4, 2.0);
    let (two, nfe2) = share(&load("mnist_reflow"), Solver::Euler, 2, 1.0);
    let (one, _) = share(&load("mnist_reflow"), Solver::Euler, 1, 1.0);
    println!(
        "requested digit: base Heun {nfe8} NFE w 2 {:.1}%; reflow Euler {nfe2} NFE {:.1}%, 1 NFE {:.1}%",
        100.0 * base8,
        100.0 * two,
        100.0 * one
    );
    assert!(two >= base8 - 0.02 && two >= 0.95, "reflow at 2 NFE: {two:.3} vs base at 8 NFE {base8:.3}");
}

/// The multistep solver on the shipped digit model (issue #18 item 3): at 8 NFE, Adams–Bashforth
/// 2 (8 steps) lands far closer to the converged solve (RK4, 64 NFE) than Heun (4 steps), with
/// the demo's guidance (w 1.5 from t = 0.2); its samples are the requested digits. The Fréchet
/// distances of the same comparison (2,000 samples, `train/guidance_table.py --solver ab2`):
/// 1.96× the floor against Heun's 5.40× (`models/README.md`).
#[test]
fn ab2_at_8_nfe_is_closer_to_the_converged_digits_than_heun() {
    let model = Model::from_bytes(&std::fs::read(root().join("models/mnist.safetensors")).unwrap()).unwrap();
    let w = read_fixture(&root().join("train/mnist_classifier.safetensors"));
    let sampler = Sampler::new(CpuBackend, &model).unwrap();
    let solve = |solver: Solver, steps: usize| {
        let o = SampleOptions {
            n: 40,
            solver,
            steps,
            seed: 21,
            labels: pushforward::sampler::Labels::Cycle,
            guidance: 1.5,
            guidance_interval: [0.2, 1.0],
            ..Default::default()
        };
        sampler.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap()
    };
    let exact = solve(Solver::Rk4, 16);
    let rms = |x: &pushforward::Tensor| {
        let d = x.data().iter().zip(exact.samples.data()).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>();
        (d / x.data().len() as f64).sqrt()
    };
    let (heun, ab2) = (solve(Solver::Heun, 4), solve(Solver::Ab2, 8));
    assert_eq!((heun.stats.nfe, ab2.stats.nfe), (8, 8));
    let (e_heun, e_ab2) = (rms(&heun.samples), rms(&ab2.samples));
    let logits = classify_digits(&w, &ab2.samples);
    let hits = logits.iter().zip(&ab2.labels).filter(|(l, y)| argmax(l) == **y).count();
    println!(
        "8 NFE vs RK4 64 NFE, RMS per pixel: heun {e_heun:.4}, ab2 {e_ab2:.4} ({:.2}×); ab2 requested digit {hits}/40",
        e_ab2 / e_heun
    );
    assert!(e_ab2 <= 0.6 * e_heun, "ab2 {e_ab2:.4} vs heun {e_heun:.4}");
    assert!(hits >= 38, "ab2 samples of the requested digit: {hits}/40");
}

/// The library's defaults per shipped model: images sample with Adams–Bashforth 2 at 8 steps
/// (8 NFE; the test above and `models/README.md`), 2-D models with Heun at 8 steps, flow maps
/// with one jump.
#[test]
fn default_solver_per_model_kind() {
    let defaults = |name: &str| {
        let m = Model::from_bytes(&std::fs::read(root().join(format!("models/{name}.safetensors"))).unwrap()).unwrap();
        let d = SampleOptions::for_model(&m.config);
        (d.solver, d.steps)
    };
    assert_eq!(defaults("mnist"), (Solver::Ab2, 8));
    assert_eq!(defaults("emoji"), (Solver::Ab2, 8));
    assert_eq!(defaults("moons"), (Solver::Heun, 8));
    assert_eq!(defaults("moons_meanflow"), (Solver::Euler, 1));
}

/// Eigenvalues and eigenvectors of a symmetric n×n matrix (row-major) by cyclic Jacobi
/// rotations: (values, vectors as the columns of a row-major n×n matrix).
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .filter(|(i, j)| i != j)
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        let diag: f64 = (0..n).map(|i| a[i * n + i].powi(2)).sum();
        if off <= 1e-24 * diag {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes a[p][q] (Numerical Recipes' form, stable for any θ).
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = if theta >= 0.0 { 1.0 } else { -1.0 } / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (kp, kq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * kp - s * kq;
                    a[k * n + q] = s * kp + c * kq;
                }
                for k in 0..n {
                    let (pk, qk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * pk - s * qk;
                    a[q * n + k] = s * pk + c * qk;
                }
                for k in 0..n {
                    let (kp, kq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * kp - s * kq;
                    v[k * n + q] = s * kp + c * kq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// Row-major n×n product.
fn matmul_square(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                out[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    out
}

/// The Gaussian of a feature set ([n, d]): its mean, unbiased covariance and the covariance's
/// symmetric square root, computed once and compared with every reference.
struct FeatureGaussian {
    d: usize,
    mu: Vec<f64>,
    cov: Vec<f64>,
    root: Vec<f64>,
}

impl FeatureGaussian {
    fn of(features: &Tensor) -> FeatureGaussian {
        let (n, d) = (features.shape()[0], features.shape()[1]);
        let x = features.data();
        let mu: Vec<f64> = (0..d).map(|j| (0..n).map(|i| x[i * d + j] as f64).sum::<f64>() / n as f64).collect();
        let mut cov = vec![0.0; d * d];
        for i in 0..n {
            let row: Vec<f64> = (0..d).map(|j| x[i * d + j] as f64 - mu[j]).collect();
            for a in 0..d {
                for b in 0..d {
                    cov[a * d + b] += row[a] * row[b];
                }
            }
        }
        cov.iter_mut().for_each(|v| *v /= (n - 1) as f64);
        let (w, v) = symmetric_eigen(cov.clone(), d);
        let mut root = vec![0.0; d * d];
        for a in 0..d {
            for b in 0..d {
                root[a * d + b] = (0..d).map(|k| v[a * d + k] * w[k].max(0.0).sqrt() * v[b * d + k]).sum();
            }
        }
        FeatureGaussian { d, mu, cov, root }
    }

    /// The Fréchet distance to a reference Gaussian (mean [d], covariance [d, d]), as
    /// `train/evaluate.py` `frechet` computes it: |μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr √(√Σ₁ Σ₂ √Σ₁).
    fn frechet_to(&self, mean: &[f32], cov: &[f32]) -> f64 {
        let d = self.d;
        let s2: Vec<f64> = cov.iter().map(|&v| v as f64).collect();
        let m = matmul_square(&matmul_square(&self.root, &s2, d), &self.root, d);
        let sym: Vec<f64> = (0..d * d).map(|i| 0.5 * (m[i] + m[(i % d) * d + i / d])).collect();
        let tr_sqrt: f64 = symmetric_eigen(sym, d).0.iter().map(|&e| e.max(0.0).sqrt()).sum();
        let dmu: f64 = self.mu.iter().zip(mean).map(|(a, &b)| (a - b as f64).powi(2)).sum();
        let tr = |s: &[f64]| (0..d).map(|i| s[i * d + i]).sum::<f64>();
        dmu + tr(&self.cov) + tr(&s2) - 2.0 * tr_sqrt
    }
}

/// The 2,000-sample digit protocol of `train/evaluate.py` (#18), computed here from the crate's
/// own samples: the requested class's agreement with the classifier, and the Fréchet distance in
/// its features averaged over the protocol's five 4,000-digit references (their statistics:
/// `tests/fixtures/mnist_fd_reference.safetensors`), over the mean floor of its ten disjoint
/// real 2,000-digit sets (1.875).
struct DigitProtocol {
    classifier: HashMap<String, Tensor>,
    reference: HashMap<String, Tensor>,
}

struct DigitScore {
    agreement: f64,
    fd: f64,
    floor: f64,
    nfe: usize,
}

impl DigitScore {
    fn ratio(&self) -> f64 {
        self.fd / self.floor
    }
}

impl DigitProtocol {
    /// Loads the fixtures and checks the Rust FD against numpy's on the 250 held-out digits of
    /// `mnist_heldout` (vs reference 0).
    fn load() -> DigitProtocol {
        let p = DigitProtocol {
            classifier: read_fixture(&root().join("train/mnist_classifier.safetensors")),
            reference: read_fixture(&root().join("tests/fixtures/mnist_fd_reference.safetensors")),
        };
        let held = read_fixture(&root().join("tests/fixtures/mnist_heldout.safetensors"));
        let check = p.fd_to(0, &FeatureGaussian::of(&classify_with_features(&p.classifier, &held["x"]).0));
        let want = p.reference["check_fd_heldout250_ref0"].data()[0] as f64;
        assert!((check - want).abs() <= 1e-3 * want, "the Rust FD {check} differs from numpy's {want}");
        p
    }

    fn fd_to(&self, k: usize, samples: &FeatureGaussian) -> f64 {
        let (mean, cov) = (&self.reference["mean"], &self.reference["cov"]);
        let d = mean.shape()[1];
        samples.frechet_to(&mean.data()[k * d..][..d], &cov.data()[k * d * d..][..d * d])
    }

    /// 2,000 class-balanced samples (labels cycling 0..9) of `model` with `o`, clamped to
    /// [-1, 1] as the evaluation does, scored.
    fn score(&self, model: &Model, o: SampleOptions) -> DigitScore {
        let o = SampleOptions { n: 2000, labels: pushforward::sampler::Labels::Cycle, ..o };
        let mut out = Sampler::new(CpuBackend, model).unwrap().sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
        out.samples.data_mut().iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0));
        let (features, logits) = classify_with_features(&self.classifier, &out.samples);
        let hits = logits.iter().zip(&out.labels).filter(|(l, y)| argmax(l) == **y).count();
        let refs = self.reference["mean"].shape()[0];
        let gaussian = FeatureGaussian::of(&features);
        let fd = (0..refs).map(|k| self.fd_to(k, &gaussian)).sum::<f64>() / refs as f64;
        DigitScore {
            agreement: hits as f64 / out.labels.len() as f64,
            fd,
            floor: self.reference["floor_mean"].data()[0] as f64,
            nfe: out.stats.nfe,
        }
    }
}

fn load_model(name: &str) -> Model {
    Model::from_bytes(&std::fs::read(root().join(format!("models/{name}.safetensors"))).unwrap()).unwrap()
}

/// #18 item 3, digits at the floor, re-measured with the crate's own sampler and an independent
/// port of the evaluation (`DigitProtocol`): `models/mnist.safetensors` at 8 NFE with its
/// defaults (ab2, 8 steps) and guidance GUIDANCE on t in [0.2, 1], a noise seed none of the
/// PyTorch-side tables used. Target: ≤ 2× the floor with ≥ 99% class agreement.
#[test]
fn mnist_at_8_nfe_is_within_twice_the_fd_floor() {
    const GUIDANCE: f32 = 1.5;
    let protocol = DigitProtocol::load();
    let model = load_model("mnist");
    let o = SampleOptions {
        seed: 2027,
        guidance: GUIDANCE,
        guidance_interval: [0.2, 1.0],
        ..SampleOptions::for_model(&model.config)
    };
    assert_eq!((o.solver, o.steps), (Solver::Ab2, 8), "the digit model's defaults");
    let s = protocol.score(&model, o);
    println!(
        "mnist, {} NFE (ab2), w {GUIDANCE} on [0.2, 1]: class agreement {:.2}%, FD {:.3} = {:.2}× the floor {:.3}",
        s.nfe,
        100.0 * s.agreement,
        s.fd,
        s.ratio(),
        s.floor
    );
    assert_eq!(s.nfe, 8);
    assert!(s.agreement >= 0.99, "class agreement {:.4} < 99%", s.agreement);
    assert!(s.ratio() <= 2.0, "FD {:.3} is {:.2}× the floor, over 2×", s.fd, s.ratio());
}

/// #18 item 2 for the digits, by the same protocol: `mnist_reflow` at 1 NFE (one Euler step,
/// no guidance pass: the guidance is built in) makes the requested digit ≥ 99% of the time at a
/// Fréchet distance within 1.2× of the base model's at Heun 8 NFE with guidance 2.
#[test]
fn mnist_reflow_at_1_nfe_is_within_1_2x_of_the_base_at_8() {
    let protocol = DigitProtocol::load();
    let base = protocol.score(
        &load_model("mnist"),
        SampleOptions { solver: Solver::Heun, steps: 4, seed: 2028, guidance: 2.0, ..Default::default() },
    );
    let one = protocol.score(
        &load_model("mnist_reflow"),
        SampleOptions { solver: Solver::Euler, steps: 1, seed: 2028, ..Default::default() },
    );
    println!(
        "base Heun {} NFE w 2: {:.2}%, FD {:.3} ({:.2}× floor); mnist_reflow {} NFE: {:.2}%, FD {:.3} ({:.2}× floor, {:.2}× the base)",
        base.nfe,
        100.0 * base.agreement,
        base.fd,
        base.ratio(),
        one.nfe,
        100.0 * one.agreement,
        one.fd,
        one.ratio(),
        one.fd / base.fd
    );
    assert_eq!((base.nfe, one.nfe), (8, 1));
    assert!(one.agreement >= 0.99, "one-step class agreement {:.4} < 99%", one.agreement);
    assert!(one.fd <= 1.2 * base.fd, "one-step FD {:.3} > 1.2× the base's {:.3}", one.fd, base.fd);
}
