//! Every GPU kernel against its CPU kernel (the CPU kernels are tested against their naive
//! oracles in cpu_kernels.rs), on the shapes the shipped models use and on ragged shapes that
//! are not multiples of any tile. Tolerances are `|gpu - cpu| <= atol + rtol·|cpu|`, stated per
//! test; the measured maximum error is printed (`cargo test -- --nocapture`).
//!
//! Runs on whatever Vulkan adapter wgpu finds (lavapipe in CI). No adapter fails the tests with
//! instructions, unless PUSHFORWARD_SKIP_GPU_TESTS=1.

mod gpu_common;

use gpu_common::{assert_close, gpu, host, mlp_config, open, rand_vec};
use pushforward::cpu::{Activation, CpuBackend};
use pushforward::gpu::tuning::{ConvVariant, LapTimer, LinearClass, LinearVariant, Tuning, WallTimer};
use pushforward::gpu::{GpuBackend, GpuOptions, PlanLimits};
use pushforward::model::{Model, ModelConfig, Network};
use pushforward::{Backend, Tensor, rng};

fn t(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(shape.to_vec(), rand_vec(n, seed)).unwrap()
}

/// Linear layers: sums of k products of O(1) values; f32 reassociation error grows like
/// sqrt(k)·eps, so atol 1e-5 + rtol 1e-4 leaves ~10× headroom at k = 256. Every variant is
/// forced in turn (the tuner must not be able to hide a broken one).
#[test]
fn linear_matches_cpu() {
    let Some(g) = open(&GpuOptions::default()) else { return };
    let cpu = CpuBackend;
    // (n, k, m): MLP layers (34→256, 256→256, 256→2), U-Net time MLP (32→128) and ragged shapes
    // (register blocking: k % 4 == 0 reads vec4s, otherwise scalars; tiling: 64×64 output
    // tiles staged 16 along k and 128×128 tiles staged 8 along k in vec4s where k % 4 == 0, so
    // sizes that divide neither, k < 16, k = 16 + 1, and k % 8 == 4 across two 128 tiles).
    let cases = [
        (37, 34, 256),
        (64, 256, 256),
        (33, 256, 2),
        (6, 32, 128),
        (1, 1, 1),
        (5, 3, 7),
        (130, 36, 47),
        (31, 17, 33),
        (2, 128, 64),
        (129, 65, 130),
        (200, 16, 64),
        (300, 260, 140),
    ];
    for variant in LinearVariant::ALL {
        g.force_linear(Some(variant));
        for (i, &(n, k, m)) in cases.iter().enumerate() {
            let x = t(&[n, k], 10 + i as u64);
            let w = t(&[m, k], 20 + i as u64);
            let b = t(&[m], 30 + i as u64);
            for (bias, act) in [(true, Activation::Silu), (false, Activation::None), (true, Activation::None)] {
                let want = cpu.linear(&x, &w, bias.then_some(&b), act).unwrap();
                let (gx, gw, gb) = (g.upload(&x).unwrap(), g.upload(&w).unwrap(), g.upload(&b).unwrap());
                let got = host(&g, &g.linear(&gx, &gw, bias.then_some(&gb), act).unwrap());
                assert_eq!(got.shape(), want.shape());
                let what = format!("linear {} n{n} k{k} m{m} bias {bias} {act:?}", variant.name());
                assert_close(&what, got.data(), want.data(), 1e-5, 1e-4);
            }
        }
    }
}

/// A timer that reports scripted times: the tuner must keep, per class, the variant the timer
/// says is fastest, and the layers of that class must then run it (and still be right).
struct ScriptedTimer(fn(LinearClass, &str) -> f64);

impl LapTimer for ScriptedTimer {
    fn lap(&mut self, class: LinearClass, variant: &str, _wall_ms: f64) -> f64 {
        (self.0)(class, variant)
    }
}

#[test]
fn the_tuner_keeps_the_fastest_variant_per_shape_class() {
    let Some(g) = open(&GpuOptions::default()) else { return };
    let cpu = CpuBackend;
    let shapes = [(300, 36, 70), (40, 128, 128), (300, 36, 70)];
    // Tiled wins the first class, registers the second.
    let mut timer = ScriptedTimer(|c, v| match (c.k_log2, v) {
        (6, "tiled64") | (7, "registers4x4") => 1.0,
        _ => 2.0,
    });
    let tuned = pollster::block_on(g.tune_linear(&shapes, 10_000.0, &mut timer)).unwrap();
    assert_eq!(tuned, 2, "one measurement per class");
    let tuning = g.tuning();
    assert_eq!(tuning.linear(300, 36, 70), LinearVariant::Tiled);
    assert_eq!(tuning.linear(40, 128, 128), LinearVariant::Registers);
    for (_, choice) in tuning.choices() {
        assert_eq!(choice.us.len(), LinearVariant::ALL.len());
        assert!(choice.us.iter().any(|&(v, us)| v == choice.variant && us == 1000), "{choice:?}");
    }
    // Tuned classes are not measured again; the stored text brings the same choices back.
    assert_eq!(pollster::block_on(g.tune_linear(&shapes, 10_000.0, &mut timer)).unwrap(), 0);
    let back = Tuning::from_text(&tuning.to_text(), g.context().is_software()).unwrap();
    assert_eq!(back, tuning);
    let x = t(&[300, 36], 1);
    let w = t(&[70, 36], 2);
    let want = cpu.linear(&x, &w, None, Activation::Silu).unwrap();
    let got = host(&g, &g.linear(&g.upload(&x).unwrap(), &g.upload(&w).unwrap(), None, Activation::Silu).unwrap());
    assert_close("linear of a tuned class", got.data(), want.data(), 1e-5, 1e-4);
    // A zero budget starts no class.
    let fresh = open(&GpuOptions::default()).unwrap();
    assert_eq!(pollster::block_on(fresh.tune_linear(&shapes, -1.0, &mut timer)).unwrap(), 0);
}

/// Convolutions are tuned per class too: a scripted timer makes the implicit GEMM win one
/// class and direct the other; convolutions of each class then run their winner, still right,
/// and the stored text brings both families back.
#[test]
fn the_tuner_keeps_the_fastest_convolution_per_shape_class() {
    let Some(g) = open(&GpuOptions::default()) else { return };
    let cpu = CpuBackend;
    // (n, c_in, h, w, c_out): classes with k = c_in·9 of 2^5 (c_in 3) and 2^8 (c_in 24).
    let cases = [(2, 3, 12, 10, 40), (1, 24, 9, 9, 48)];
    let inputs: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, &(n, cin, h, w, cout))| (t(&[n, cin, h, w], 100 + i as u64), t(&[cout, cin, 3, 3], 110 + i as u64)))
        .collect();
    let run =
        |x: &Tensor, w: &Tensor| host(&g, &g.conv2d(&g.upload(x).unwrap(), &g.upload(w).unwrap(), None, 1, 1).unwrap());
    assert_eq!(g.tuning().untuned_conv().len(), 0);
    for (x, w) in &inputs {
        run(x, w);
    }
    let shapes = g.tuning().untuned_conv();
    assert_eq!(shapes.len(), 2, "each class that ran is noted once: {shapes:?}");
    assert!(shapes.iter().all(|s| g.tuning().conv(s) == ConvVariant::Direct), "untuned: direct");
    let mut timer = ScriptedTimer(|c, v| match (c.k_log2, v) {
        (5, "implicit_gemm") | (8, "direct") => 1.0,
        _ => 2.0,
    });
    assert_eq!(pollster::block_on(g.tune_conv(&shapes, 10_000.0, &mut timer)).unwrap(), 2);
    let tuning = g.tuning();
    assert_eq!(tuning.conv(&shapes[0]), ConvVariant::Gemm);
    assert_eq!(tuning.conv(&shapes[1]), ConvVariant::Direct);
    assert!(tuning.untuned_conv().is_empty());
    for (_, choice) in tuning.conv_choices() {
        assert_eq!(choice.us.len(), ConvVariant::ALL.len());
        assert!(choice.us.iter().any(|&(v, us)| v == choice.variant && us == 1000), "{choice:?}");
    }
    assert_eq!(pollster::block_on(g.tune_conv(&shapes, 10_000.0, &mut timer)).unwrap(), 0, "tuned classes stay");
    let back = Tuning::from_text(&tuning.to_text(), g.context().is_software()).unwrap();
    assert_eq!(back.conv_choices().collect::<Vec<_>>(), tuning.conv_choices().collect::<Vec<_>>());
    assert_eq!(back.to_text(), tuning.to_text());
    for (i, (x, w)) in inputs.iter().enumerate() {
        let want = cpu.conv2d(x, w, None, 1, 1).unwrap();
        assert_close(&format!("convolution of tuned class {i}"), run(x, w).data(), want.data(), 1e-5, 1e-4);
    }
}

/// The disk cache: a fresh device of the same adapter starts with the stored choices and has
/// nothing left to measure; a file of another adapter (key line) or a damaged one is ignored.
#[test]
fn the_tuning_cache_brings_an_adapters_choices_back() {
    use pushforward::gpu::tuning_cache;
    let Some(g) = open(&GpuOptions::default()) else { return };
    let dir = std::env::temp_dir().join(format!("pushforward-tuning-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let shapes = [(300, 36, 70), (40, 128, 128)];
    // The opposite of the untuned default on each class, so that a lost choice shows.
    let mut timer = ScriptedTimer(|c, v| if (c.k_log2 == 6) == (v == "tiled64") { 1.0 } else { 2.0 });
    assert_eq!(tuning_cache::load(&g, &dir), None, "nothing stored yet");
    assert_eq!(pollster::block_on(g.tune_linear(&shapes, 10_000.0, &mut timer)).unwrap(), 2);
    let path = tuning_cache::store(&g, &dir).unwrap();
    let fresh = open(&GpuOptions::default()).unwrap();
    fresh.force_linear(Some(LinearVariant::Registers));
    assert_eq!(tuning_cache::load(&fresh, &dir), Some(2));
    assert_eq!(fresh.tuning().to_text(), g.tuning().to_text());
    assert_eq!(fresh.tuning().forced_linear, Some(LinearVariant::Registers), "a forced variant stays forced");
    fresh.force_linear(None);
    assert_eq!(fresh.linear_variant(300, 36, 70), LinearVariant::Tiled);
    assert_eq!(fresh.linear_variant(40, 128, 128), LinearVariant::Registers);
    assert_eq!(pollster::block_on(fresh.tune_linear(&shapes, 10_000.0, &mut timer)).unwrap(), 0, "nothing to measure");
    // Another adapter's or driver's entry under the same name, or a damaged file: not used.
    let text = std::fs::read_to_string(&path).unwrap();
    for bad in [text.replacen('|', "|other ", 1), text.replace("tiled64=", "tiled64=x"), String::new()] {
        std::fs::write(&path, &bad).unwrap();
        let other = open(&GpuOptions::default()).unwrap();
        assert_eq!(tuning_cache::load(&other, &dir), None, "{bad:?}");
        assert_eq!(other.tuning().choices().count(), 0);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With the wall clock, on whatever adapter this is: the choice is the fastest of what it
/// measured (printed), and the untuned default is registers on a software adapter.
#[test]
fn the_tuner_on_this_adapter_keeps_what_it_measured_fastest() {
    let Some(g) = open(&GpuOptions::default()) else { return };
    let software = g.context().is_software();
    assert_eq!(g.tuning().linear(4096, 256, 256), LinearVariant::default_for(software));
    let shapes = [(4096, 34, 256), (4096, 256, 256)];
    pollster::block_on(g.tune_linear(&shapes, 60_000.0, &mut WallTimer)).unwrap();
    let t = g.tuning();
    for (class, choice) in t.choices() {
        eprintln!(
            "{} ({}): {class:?} -> {} {:?}",
            g.context().describe(),
            if software { "software" } else { "hardware" },
            choice.variant.name(),
            choice.us
        );
        assert_eq!(Some(choice.variant), pushforward::gpu::tuning::fastest(&choice.us));
    }
    assert_eq!(t.choices().count(), 2);
}

/// Convolutions: sums of c_in·9 products (≤ 1152 here): atol 1e-5 + rtol 1e-4.
#[test]
fn conv2d_matches_cpu() {
    let Some(g) = open(&GpuOptions::default()) else { return };
    let cpu = CpuBackend;
    // (n, c_in, h, w, c_out, k, stride, pad): the U-Net's conv_in, 3×3 blocks at 28/14/7,
    // stride-2 downsamples 28→14→7, 1×1 skips, and ragged geometry: for the implicit GEMM,
    // pixel counts and channel counts that fill no whole tile (128 pixels × 32 channels), input
    // channels that fill no whole step of 8, and a 5×5 kernel with padding 2.
    let cases = [
        (2, 1, 28, 28, 32, 3, 1, 1),
        (1, 32, 28, 28, 32, 3, 1, 1),
        (2, 32, 28, 28, 32, 3, 2, 1),
        (1, 64, 14, 14, 64, 3, 2, 1),
        (2, 128, 7, 7, 64, 3, 1, 1),
        (2, 96, 14, 14, 32, 1, 1, 0),
        (1, 32, 28, 28, 1, 3, 1, 1),
        (3, 5, 9, 11, 7, 3, 2, 1),
        (1, 3, 5, 6, 6, 3, 1, 0),
        (2, 4, 6, 5, 3, 1, 1, 0),
        (1, 2, 4, 4, 5, 3, 1, 2),
        (3, 24, 28, 28, 48, 3, 1, 1),
        (2, 72, 14, 14, 24, 3, 1, 1),
        (1, 13, 10, 9, 33, 5, 1, 2),
    ];
    for variant in ConvVariant::ALL {
        g.force_conv(Some(variant));
        for (i, &(n, cin, h, w, cout, k, s, p)) in cases.iter().enumerate() {
            let x = t(&[n, cin, h, w], 40 + i as u64);
            let wt = t(&[cout, cin, k, k], 50 + i as u64);
            let b = t(&[cout], 60 + i as u64);
            for bias in [true, false] {
                let want = cpu.conv2d(&x, &wt, bias.then_some(&b), s, p).unwrap();
                let (gx, gw, gb) = (g.upload(&x).unwrap(), g.upload(&wt).unwrap(), g.upload(&b).unwrap());
                let got = host(&g, &g.conv2d(&gx, &gw, bias.then_some(&gb), s, p).unwrap());
                assert_eq!(got.shape(), want.shape());
                let what = format!("conv2d {} {n}x{cin}x{h}x{w} -> {cout} k{k} s{s} p{p} bias {bias}", variant.name());
                assert_close(&what, got.data(), want.data(), 1e-5, 1e-4);
            }
            // The residual block's epilogues (`conv2d_add`): the CPU runs them as separate ops;
            // the direct kernel adds them in its store, in one dispatch.
            // Tolerance: the convolution's own (of its magnitude, which a residual may cancel)
            // plus the adds' roundings.
            let conv = cpu.conv2d(&x, &wt, Some(&b), s, p).unwrap();
            let out_shape = conv.shape().to_vec();
            let cadd = t(&[n, cout], 65 + i as u64);
            let res = t(&out_shape, 68 + i as u64);
            for (c, r) in [(true, false), (false, true), (true, true)] {
                let (c, r) = (c.then_some(&cadd), r.then_some(&res));
                let want = cpu.conv2d_add(&x, &wt, Some(&b), s, p, c, r).unwrap();
                let up = |v: &Tensor| g.upload(v).unwrap();
                let (gc, gr) = (c.map(up), r.map(up));
                let d0 = g.stats().dispatches;
                let got = g.conv2d_add(&up(&x), &up(&wt), Some(&up(&b)), s, p, gc.as_ref(), gr.as_ref()).unwrap();
                if variant == ConvVariant::Direct {
                    assert_eq!(g.stats().dispatches - d0, 1, "the direct kernel fuses the adds");
                }
                let what = format!(
                    "conv2d_add {} case {i}: channel add {}, residual {}",
                    variant.name(),
                    c.is_some(),
                    r.is_some()
                );
                let got = host(&g, &got);
                for ((g, w), y) in got.data().iter().zip(want.data()).zip(conv.data()) {
                    let tol = 1e-5 + 1e-4 * y.abs() + 4.0 * f32::EPSILON * (w.abs() + y.abs());
                    assert!((g - w).abs() <= tol, "{what}: gpu {g} vs cpu {w} (conv {y})");
                }
            }
        }
    }
    g.force_conv(None);
    // Operands of the wrong shape are typed errors, before anything is recorded.
    let (x, wt) = (g.upload(&t(&[2, 3, 8, 8], 1)).unwrap(), g.upload(&t(&[4, 3, 3, 3], 2)).unwrap());
    let wrong_cadd = g.upload(&t(&[2, 3], 3)).unwrap();
    let wrong_res = g.upload(&t(&[2, 4, 8, 7], 4)).unwrap();
    assert!(matches!(
        g.conv2d_add(&x, &wt, None, 1, 1, Some(&wrong_cadd), None),
        Err(pushforward::Error::Shape { .. })
    ));
    assert!(matches!(g.conv2d_add(&x, &wt, None, 1, 1, None, Some(&wrong_res)), Err(pushforward::Error::Shape { .. })));
}

/// GroupNorm: f32 tree reductions vs the CPU's f64 sums; normalised outputs are O(1):
/// atol 1e-5 + rtol 1e-4.
#[test]
fn group_norm_matches_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    let cases = [(2, 32, 28, 28, 8), (3, 64, 7, 7, 8), (1, 128, 14, 14, 8), (3, 12, 5, 7, 3), (1, 4, 1, 1, 4)];
    for (i, &(n, c, h, w, groups)) in cases.iter().enumerate() {
        let mut x = t(&[n, c, h, w], 70 + i as u64);
        // An offset mean, as real activations have, to exercise the two-pass variance.
        x.data_mut().iter_mut().for_each(|v| *v = 3.0 + 2.0 * *v);
        let gamma = t(&[c], 80 + i as u64);
        let beta = t(&[c], 90 + i as u64);
        for act in [Activation::Silu, Activation::None] {
            let want = cpu.group_norm(&x, groups, &gamma, &beta, 1e-5, act).unwrap();
            let (gx, gg, gb) = (g.upload(&x).unwrap(), g.upload(&gamma).unwrap(), g.upload(&beta).unwrap());
            let got = host(g, &g.group_norm(&gx, groups, &gg, &gb, 1e-5, act).unwrap());
            assert_close(&format!("group_norm {n}x{c}x{h}x{w} g{groups} {act:?}"), got.data(), want.data(), 1e-5, 1e-4);
        }
    }
}

/// Elementwise ops are one or a few f32 operations per value: copies must be exact (atol 0),
/// arithmetic within 1e-6 + 1e-6·|cpu| (exp in SiLU may differ in the last bits).
#[test]
fn elementwise_ops_match_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    let up = |x: &Tensor| g.upload(x).unwrap();
    for (i, shape) in [[2usize, 32, 28, 28], [3, 5, 7, 9], [1, 1, 1, 1]].iter().enumerate() {
        let s = i as u64 * 100;
        let (a, b) = (t(shape, s + 1), t(shape, s + 2));
        let bias = t(&shape[..2], s + 3);
        let (ga, gb, gbias) = (up(&a), up(&b), up(&bias));
        let tol = |what: &str, got: &pushforward::gpu::GpuTensor, want: Tensor, atol: f32| {
            let got = host(g, got);
            assert_eq!(got.shape(), want.shape(), "{what}");
            assert_close(&format!("{what} {shape:?}"), got.data(), want.data(), atol, atol);
        };
        tol("silu", &g.silu(&ga).unwrap(), cpu.silu(&a).unwrap(), 1e-6);
        tol("add", &g.add(&ga, &gb).unwrap(), cpu.add(&a, &b).unwrap(), 1e-6);
        tol("silu_tangent", &g.silu_tangent(&ga, &gb).unwrap(), cpu.silu_tangent(&a, &b).unwrap(), 1e-6);
        tol(
            "add_channel_bias",
            &g.add_channel_bias(&ga, &gbias).unwrap(),
            cpu.add_channel_bias(&a, &bias).unwrap(),
            1e-6,
        );
        tol("upsample_nearest2x", &g.upsample_nearest2x(&ga).unwrap(), cpu.upsample_nearest2x(&a).unwrap(), 0.0);
        tol("repeat2", &g.repeat2(&ga).unwrap(), cpu.repeat2(&a).unwrap(), 0.0);
        let c = t(&[shape[0], 3, shape[2], shape[3]], s + 4);
        tol("concat_axis1", &g.concat_axis1(&ga, &up(&c)).unwrap(), cpu.concat_axis1(&a, &c).unwrap(), 0.0);
        let v = t(&[2 * shape[0], shape[1], shape[2], shape[3]], s + 5);
        tol("guidance_mix", &g.guidance_mix(&up(&v), 2.5).unwrap(), cpu.guidance_mix(&v, 2.5).unwrap(), 1e-6);
    }
    // Column concat of matrices (the MLP's [x, e]).
    let (a, b) = (t(&[37, 2], 7), t(&[37, 32], 8));
    let got = host(g, &g.concat_axis1(&up(&a), &up(&b)).unwrap());
    assert_close("concat_axis1 [37,2]+[37,32]", got.data(), cpu.concat_axis1(&a, &b).unwrap().data(), 0.0, 0.0);
}

/// Runge–Kutta combinations with 0..=9 terms (9 > 6 chains two dispatches): atol/rtol 1e-6.
#[test]
fn lincomb_matches_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    let shape = [333usize, 2];
    let x = t(&shape, 1);
    let ks: Vec<Tensor> = (0..9).map(|i| t(&shape, 10 + i)).collect();
    let gx = g.upload(&x).unwrap();
    let gks: Vec<_> = ks.iter().map(|k| g.upload(k).unwrap()).collect();
    let coefs = [0.1f32, -0.25, 0.3125, 1.5, -2.0, 0.7, 0.01, -0.9, 0.33];
    for nterms in [0, 1, 3, 6, 7, 9] {
        let ct: Vec<(f32, &Tensor)> = coefs.iter().zip(&ks).take(nterms).map(|(c, k)| (*c, k)).collect();
        let gt: Vec<(f32, &_)> = coefs.iter().zip(&gks).take(nterms).map(|(c, k)| (*c, k)).collect();
        let want = cpu.lincomb(&x, &ct).unwrap();
        let got = host(g, &g.lincomb(&gx, &gt).unwrap());
        assert_close(&format!("lincomb {nterms} terms"), got.data(), want.data(), 1e-6, 1e-6);
    }
}

/// The time embedding row is computed by the CPU kernel and broadcast (exact); the class
/// embedding is a gather (exact).
#[test]
fn embeddings_match_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    for (t_, n, dim) in [(0.0f32, 3usize, 32usize), (0.37, 5, 32), (1.0, 1, 128), (0.5, 7, 2)] {
        let want = cpu.time_embedding(t_, n, dim, 1000.0).unwrap();
        let got = host(g, &g.time_embedding(t_, n, dim, 1000.0).unwrap());
        assert_eq!(got.shape(), want.shape());
        assert_close(&format!("time_embedding t{t_} n{n} d{dim}"), got.data(), want.data(), 0.0, 0.0);
    }
    let table = t(&[11, 128], 5);
    let ids = [3u32, 10, 0, 0, 7, 10, 1];
    let want = cpu.embedding(&table, &ids).unwrap();
    let got = host(g, &g.embedding(&g.upload(&table).unwrap(), &ids).unwrap());
    assert_close("embedding gather", got.data(), want.data(), 0.0, 0.0);
    assert!(g.embedding(&g.upload(&table).unwrap(), &[11]).is_err(), "out-of-range id is an error");
}

/// Reductions: the scaled RMS error within 1e-5 relative (f32 tree sums vs the CPU's f64), the
/// finiteness check exactly, on sizes from one workgroup to many partials.
#[test]
fn reductions_match_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    for (i, len) in [1usize, 255, 1000, 70_001, 600_000].into_iter().enumerate() {
        let s = 200 + 3 * i as u64;
        let (e, a, b) = (t(&[len], s), t(&[len], s + 1), t(&[len], s + 2));
        let (ge, ga, gb) = (g.upload(&e).unwrap(), g.upload(&a).unwrap(), g.upload(&b).unwrap());
        let want = pollster::block_on(cpu.scaled_rms_error(&e, &a, &b, 1e-3, 1e-4)).unwrap();
        let got = pollster::block_on(g.scaled_rms_error(&ge, &ga, &gb, 1e-3, 1e-4)).unwrap();
        assert_close(&format!("scaled_rms_error len {len}"), &[got], &[want], 0.0, 1e-5);
        assert!(pollster::block_on(g.all_finite(&ga)).unwrap());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut x = a.clone();
            x.data_mut()[len / 2] = bad;
            assert!(!pollster::block_on(g.all_finite(&g.upload(&x).unwrap())).unwrap(), "{bad} at len {len}");
        }
    }
}

/// Philox words must be bit-identical to rng.rs. So must the normals on software adapters:
/// rng.rs and rng.wgsl compute ln, sin and cos with the same f32 formulas, operation for
/// operation, and lavapipe and SwiftShader round + − × ÷ sqrt as IEEE 754 does without fusing
/// multiply-adds. A hardware compiler may contract a·b+c into one FMA (WGSL allows it), so
/// there the normals must agree to 1e-6·(1+|x|): the NVIDIA H200 (driver 580) measured 5.4e-8
/// at most, a 1858-ulp difference only where cos(θ) ≈ 0 cancels to 2.9e-4.
#[test]
fn rng_matches_cpu() {
    let Some(g) = gpu() else { return };
    for (seed, stream, first_block) in
        [(0u64, 0u32, 0u64), (0xDEAD_BEEF_1234_5678, 1, (1u64 << 32) - 3), (42, 7, 12345)]
    {
        let words = pollster::block_on(g.philox_words(seed, stream, first_block, 1000)).unwrap();
        for (j, w) in words.chunks_exact(4).enumerate() {
            let b = first_block + j as u64;
            let want = rng::philox4x32_10([b as u32, (b >> 32) as u32, stream, 0], [seed as u32, (seed >> 32) as u32]);
            assert_eq!(w, want, "philox block {b} of seed {seed:#x}, stream {stream}");
        }
    }
    let mut max_ulps = 0i64;
    let mut max_abs = 0.0f32;
    for (seed, start, len) in [(7u64, 0u64, 100_000usize), (9, 3, 1001), (11, (1u64 << 34) + 2, 517)] {
        let got = host(g, &g.normal_noise(seed, rng::STREAM_INIT, start, &[len]).unwrap());
        let mut want = vec![0.0; len];
        rng::fill_normal(seed, rng::STREAM_INIT, start, &mut want);
        for (i, (a, b)) in got.data().iter().zip(&want).enumerate() {
            let ulps = (a.to_bits() as i64 - b.to_bits() as i64).abs();
            let abs = (a - b).abs();
            let what = format!("normal {} of seed {seed}: gpu {a} vs cpu {b} ({ulps} ulps)", start + i as u64);
            if g.context().is_software() {
                assert_eq!(a.to_bits(), b.to_bits(), "{what}");
            } else {
                assert!(abs <= 1e-6 * (1.0 + b.abs()), "{what}");
            }
            max_ulps = max_ulps.max(ulps);
            max_abs = max_abs.max(abs);
        }
    }
    eprintln!("normal_noise: max difference {max_ulps} ulps, {max_abs:.3e} absolute");
}

/// A tiny per-dimension workgroup limit forces every kernel onto a folded 2-D grid; results
/// must match the CPU exactly as with the real limits.
#[test]
fn two_d_dispatch_grids_match_cpu() {
    let limits = PlanLimits { max_binding_bytes: u64::MAX, max_buffer_bytes: u64::MAX, max_workgroups_per_dim: 8 };
    let Some(g) = open(&GpuOptions { limits: Some(limits), ..Default::default() }) else { return };
    let cpu = CpuBackend;
    let x = t(&[300, 36], 1);
    let w = t(&[70, 36], 2);
    let want = cpu.linear(&x, &w, None, Activation::Silu).unwrap();
    let got = host(&g, &g.linear(&g.upload(&x).unwrap(), &g.upload(&w).unwrap(), None, Activation::Silu).unwrap());
    assert_close("linear on a 8-wide grid", got.data(), want.data(), 1e-5, 1e-4);
    let xi = t(&[3, 8, 13, 13], 3);
    let wi = t(&[16, 8, 3, 3], 4);
    let want = cpu.conv2d(&xi, &wi, None, 1, 1).unwrap();
    let got = host(&g, &g.conv2d(&g.upload(&xi).unwrap(), &g.upload(&wi).unwrap(), None, 1, 1).unwrap());
    assert_close("conv2d on a 8-wide grid", got.data(), want.data(), 1e-5, 1e-4);
    let gx = g.upload(&xi).unwrap();
    let want = cpu.add(&xi, &xi).unwrap();
    assert_close("add on a 8-wide grid", host(&g, &g.add(&gx, &gx).unwrap()).data(), want.data(), 1e-6, 1e-6);
    let gam = t(&[8], 5);
    let want = cpu.group_norm(&xi, 2, &gam, &gam, 1e-5, Activation::None).unwrap();
    let gg = g.upload(&gam).unwrap();
    let got = host(&g, &g.group_norm(&gx, 2, &gg, &gg, 1e-5, Activation::None).unwrap());
    assert_close("group_norm on a 8-wide grid", got.data(), want.data(), 1e-5, 1e-4);
    let got = host(&g, &g.normal_noise(5, 0, 0, &[4000]).unwrap());
    let mut want = vec![0.0; 4000];
    rng::fill_normal(5, 0, 0, &mut want);
    assert_close("normal_noise on a 8-wide grid", got.data(), &want, 4e-6, 2e-6);
    let e = t(&[5000], 6);
    let ge = g.upload(&e).unwrap();
    let want = pollster::block_on(cpu.scaled_rms_error(&e, &e, &e, 1e-3, 1e-3)).unwrap();
    let got = pollster::block_on(g.scaled_rms_error(&ge, &ge, &ge, 1e-3, 1e-3)).unwrap();
    assert_close("scaled_rms_error with 8 partials", &[got], &[want], 0.0, 1e-5);
}

pub fn unet_config() -> ModelConfig {
    ModelConfig::mnist_unet_preset()
}

/// Relative error max|gpu - cpu| / max|cpu| of one velocity evaluation.
fn forward_rel_error(g: &GpuBackend, model: &Model, x: &Tensor, t_: f32, labels: Option<&[u32]>) -> f32 {
    let cpu = CpuBackend;
    let cnet = Network::new(&cpu, model).unwrap();
    let gnet = Network::new(g, model).unwrap();
    let want = cnet.velocity(&cpu, x, t_, labels).unwrap();
    let got = host(g, &gnet.velocity(g, &g.upload(x).unwrap(), t_, labels).unwrap());
    let scale = want.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = got.data().iter().zip(want.data()).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    err / scale
}

/// Whole forwards of random-weight models of the shipped sizes: ≤ 1e-4 relative to the largest
/// output magnitude.
#[test]
fn model_forwards_match_cpu() {
    let Some(g) = gpu() else { return };
    let mlp = Model::random(mlp_config(0, false), 1).unwrap();
    let x = t(&[45, 2], 9);
    for t_ in [0.0f32, 0.37, 1.0] {
        let rel = forward_rel_error(g, &mlp, &x, t_, None);
        eprintln!("MLP forward t = {t_}: relative error {rel:.3e}");
        assert!(rel <= 1e-4, "MLP forward at t = {t_}: relative error {rel:e} > 1e-4");
    }
    let cond = Model::random(mlp_config(4, false), 2).unwrap();
    let labels = (0..45u32).map(|i| i % 5).collect::<Vec<_>>();
    let rel = forward_rel_error(g, &cond, &x, 0.6, Some(&labels));
    eprintln!("conditional MLP forward: relative error {rel:.3e}");
    assert!(rel <= 1e-4, "conditional MLP forward: relative error {rel:e} > 1e-4");

    let unet = Model::random(unet_config(), 3).unwrap();
    let x = t(&[3, 1, 28, 28], 10);
    let rel = forward_rel_error(g, &unet, &x, 0.42, Some(&[0, 9, 10]));
    eprintln!("U-Net forward: relative error {rel:.3e}");
    assert!(rel <= 1e-4, "U-Net forward: relative error {rel:e} > 1e-4");
}

/// Shape errors are typed errors, not panics or GPU validation failures.
#[test]
fn bad_shapes_are_errors() {
    let Some(g) = gpu() else { return };
    let a = g.upload(&t(&[3, 4], 1)).unwrap();
    let b = g.upload(&t(&[4, 3], 2)).unwrap();
    assert!(g.add(&a, &b).is_err());
    assert!(g.linear(&a, &a, None, Activation::None).is_ok());
    assert!(g.linear(&a, &b, None, Activation::None).is_err());
    assert!(g.guidance_mix(&g.upload(&t(&[3, 2], 3)).unwrap(), 2.0).is_err());
    assert!(g.conv2d(&a, &b, None, 1, 1).is_err());
    pollster::block_on(g.download(&a)).unwrap();
    g.context().check().unwrap();
}

/// Ops that record several dispatches (the two-stage reductions) must work when the pending
/// work reaches the forced-submission threshold between their dispatches.
#[test]
fn multi_dispatch_ops_across_the_submission_threshold() {
    let Some(g) = open(&GpuOptions::default()) else { return };
    let cpu = CpuBackend;
    let x = t(&[1000], 3);
    let gx = g.upload(&x).unwrap();
    let want = pollster::block_on(cpu.scaled_rms_error(&x, &x, &x, 1e-3, 1e-3)).unwrap();
    for pre in 250..260 {
        let mut acc = g.add(&gx, &gx).unwrap();
        for _ in 1..pre {
            acc = g.add(&acc, &gx).unwrap();
        }
        let got = pollster::block_on(g.scaled_rms_error(&gx, &gx, &gx, 1e-3, 1e-3)).unwrap();
        assert_close(&format!("scaled_rms_error after {pre} dispatches"), &[got], &[want], 0.0, 1e-5);
        let sum = host(&g, &acc);
        let expect: Vec<f32> = x.data().iter().map(|v| v * (pre as f32 + 1.0)).collect();
        assert_close(&format!("{pre} chained adds"), sum.data(), &expect, 1e-5, 1e-5);
    }
    g.context().check().unwrap();
}

/// Every shipped model (`models/*.safetensors`, trained weights): GPU forward vs CPU forward
/// ≤ 1e-4 relative, at the ends and the middle of the time range, with the null class included
/// for the conditional model.
#[test]
fn shipped_model_forwards_match_cpu() {
    let Some(g) = gpu() else { return };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut checked = 0;
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    for p in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "safetensors")) {
        let model = Model::from_bytes(&std::fs::read(&p).unwrap()).unwrap();
        let batch = if model.config.sample_len() > 100 { 3 } else { 37 };
        let mut shape = vec![batch];
        shape.extend(model.config.sample_shape());
        let x = t(&shape, 40 + checked);
        let k = model.config.num_classes as u32;
        let labels: Option<Vec<u32>> = (k > 0).then(|| (0..batch as u32).map(|i| (i * 4) % (k + 1)).collect());
        for t_ in [0.0f32, 0.5, 1.0] {
            let rel = forward_rel_error(g, &model, &x, t_, labels.as_deref());
            eprintln!("{}: t = {t_}: relative error {rel:.3e}", p.display());
            assert!(rel <= 1e-4, "{}: t = {t_}: relative error {rel:e} > 1e-4", p.display());
        }
        checked += 1;
    }
    assert!(checked >= 6, "expected the six shipped models, found {checked}");
}

/// Tensors dropped while the work that reads them is still pending (recorded, not submitted)
/// beyond the pool's idle cap: their buffers must outlive that work (destroying them at once
/// made the next submission a validation error).
#[test]
fn tensors_dropped_while_their_work_is_pending() {
    let Some(g) = open(&GpuOptions::default()) else { return };
    let x = t(&[3, 4], 1);
    let gx = g.upload(&x).unwrap();
    let mut acc = g.add(&gx, &gx).unwrap();
    for i in 0..100 {
        // A fresh upload per term, dropped right after its add is recorded.
        let term = g.upload(&t(&[3, 4], 100 + i)).unwrap();
        acc = g.add(&acc, &term).unwrap();
    }
    let got = host(&g, &acc);
    let mut want = x.data().iter().map(|v| 2.0 * v).collect::<Vec<f32>>();
    for i in 0..100 {
        for (w, v) in want.iter_mut().zip(t(&[3, 4], 100 + i).data()) {
            *w += v;
        }
    }
    assert_close("100 adds of dropped uploads", got.data(), &want, 1e-5, 1e-5);
    g.context().check().unwrap();
}

/// The pointwise ops of graph networks (src/pointwise.rs, shaders/pointwise.wgsl): every unary
/// function and every broadcasting binary operator against the CPU, on ragged sizes and
/// broadcast patterns of up to 6 dimensions; sin/cos at time-embedding arguments up to 1000 rad
/// match the CPU's libm to 1e-5 (device sin/cos are only specified to 2^-11).
#[test]
fn pointwise_ops_match_cpu() {
    use pushforward::pointwise::{BinaryOp, UnaryOp};
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    let x = t(&[7, 33], 5);
    let unary = [
        (UnaryOp::Neg, 0.0),
        (UnaryOp::Abs, 0.0),
        (UnaryOp::Exp, 1e-5),
        (UnaryOp::Tanh, 1e-5),
        (UnaryOp::Erf, 1e-6),
        (UnaryOp::Sigmoid, 1e-6),
        (UnaryOp::Relu, 0.0),
        (UnaryOp::LeakyRelu(0.2), 0.0),
        (UnaryOp::Elu(1.0), 1e-6),
        (UnaryOp::Selu, 1e-6),
        (UnaryOp::Gelu, 1e-6),
        (UnaryOp::GeluTanh, 1e-5),
        (UnaryOp::Softplus, 1e-6),
        (UnaryOp::Silu, 1e-6),
        (UnaryOp::Clip(-0.3, 0.4), 0.0),
        (UnaryOp::PowConst(2.0), 1e-6),
        (UnaryOp::Sin, 1e-6),
        (UnaryOp::Cos, 1e-6),
    ];
    for (op, tol) in unary {
        let want = cpu.unary(&x, op).unwrap();
        let got = host(g, &g.unary(&g.upload(&x).unwrap(), op).unwrap());
        assert_close(&format!("{op:?}"), got.data(), want.data(), tol, 1e-5);
    }
    // Positive inputs for sqrt, log, reciprocal.
    let pos = Tensor::new(vec![3, 11], (0..33).map(|i| 0.05 + i as f32 * 0.37).collect()).unwrap();
    for op in [UnaryOp::Sqrt, UnaryOp::Log, UnaryOp::Reciprocal] {
        let want = cpu.unary(&pos, op).unwrap();
        let got = host(g, &g.unary(&g.upload(&pos).unwrap(), op).unwrap());
        assert_close(&format!("{op:?}"), got.data(), want.data(), 1e-6, 1e-5);
    }
    // Time-embedding arguments: sin/cos of up to 1000 rad.
    let big = Tensor::new(vec![1, 4001], (0..4001).map(|i| -1000.0 + i as f32 * 0.5 + 0.123).collect()).unwrap();
    for op in [UnaryOp::Sin, UnaryOp::Cos] {
        let want = cpu.unary(&big, op).unwrap();
        let got = host(g, &g.unary(&g.upload(&big).unwrap(), op).unwrap());
        let worst = got.data().iter().zip(want.data()).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!("{op:?} over [-1000, 1000] rad: max |gpu − cpu| = {worst:e}");
        assert!(worst <= 1e-5, "{op:?}: {worst}");
    }
    let shapes: [(&[usize], &[usize]); 7] = [
        (&[7, 33], &[7, 33]),
        (&[7, 33], &[33]),
        (&[7, 33], &[7, 1]),
        (&[7, 1], &[1, 33]),
        (&[2, 3, 5, 1, 4, 3], &[3, 1, 6, 1, 1]),
        (&[5], &[]),
        (&[1, 1, 257], &[3, 1, 1]),
    ];
    for (i, (sa, sb)) in shapes.iter().enumerate() {
        let (a, b) = (t(sa, 10 + i as u64), t(sb, 20 + i as u64));
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min] {
            let want = cpu.binary(&a, &b, op).unwrap();
            let got = g.binary(&g.upload(&a).unwrap(), &g.upload(&b).unwrap(), op).unwrap();
            assert_eq!(g.shape(&got), want.shape());
            assert_close(&format!("{op:?} {sa:?}∘{sb:?}"), host(g, &got).data(), want.data(), 1e-6, 1e-5);
        }
    }
    let r = g.reshape(&g.upload(&x).unwrap(), &[33, 7]).unwrap();
    assert_eq!(g.shape(&r), [33, 7]);
    assert_eq!(host(g, &r).data(), x.data());
    assert!(g.binary(&g.upload(&t(&[3], 1)).unwrap(), &g.upload(&t(&[4], 2)).unwrap(), BinaryOp::Add).is_err());
}

/// Graph networks' layout and attention kernels (shaders/graph.wgsl) against the CPU's
/// (kernels/src/graph.rs), and the CPU's against the host folder's independent f64 evaluation:
/// transposes and slices as strided copies, batched matmul with broadcast batch dims (ragged
/// m, k, n), softmax and layer norm over rows of awkward lengths.
#[test]
fn graph_ops_match_cpu_and_the_host_reference() {
    use pushforward::onnx::fold;
    use pushforward::onnx::graph::{HostTensor, Op};
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    let host_eval = |op: Op, ins: &[&Tensor]| -> Vec<f32> {
        let hs: Vec<HostTensor> = ins.iter().map(|t| HostTensor::f32(t.shape().to_vec(), t.data().to_vec())).collect();
        let refs: Vec<Option<&HostTensor>> = hs.iter().map(Some).collect();
        fold::eval(&op, &refs, 1).unwrap().remove(0).as_f32()
    };
    // Transpose [2, 3, 5, 7] by (2, 0, 3, 1) as a strided copy.
    let x = t(&[2, 3, 5, 7], 31);
    let (shape, strides) = (vec![5, 2, 7, 3], vec![7, 105, 1, 35]);
    let want = cpu.strided_copy(&x, &shape, 0, &strides).unwrap();
    assert_eq!(want.data(), &host_eval(Op::Transpose { perm: Some(vec![2, 0, 3, 1]) }, &[&x])[..]);
    let got = host(g, &g.strided_copy(&g.upload(&x).unwrap(), &shape, 0, &strides).unwrap());
    assert_eq!(got.data(), want.data());
    // A slice x[:, 1:3, ::2, 4:] from offset 1·35 + 4.
    let (shape, strides) = (vec![2, 2, 3, 3], vec![105, 35, 14, 1]);
    let want = cpu.strided_copy(&x, &shape, 39, &strides).unwrap();
    let got = host(g, &g.strided_copy(&g.upload(&x).unwrap(), &shape, 39, &strides).unwrap());
    assert_eq!(got.data(), want.data());
    assert!(cpu.strided_copy(&x, &[3, 1], 0, &[105, 1]).is_err(), "reads past the end");
    // Batched products: attention-like [b, h, m, k] × [b, h, k, n], and a broadcast batch.
    for (sa, sb) in
        [(vec![2, 3, 17, 8], vec![2, 3, 8, 19]), (vec![4, 1, 5, 33], vec![3, 33, 6]), (vec![1, 1], vec![1, 1])]
    {
        let (a, b) = (t(&sa, 40), t(&sb, 41));
        let want = cpu.matmul(&a, &b).unwrap();
        let reference = host_eval(Op::MatMul, &[&a, &b]);
        assert_close(&format!("cpu matmul {sa:?}×{sb:?} vs f64"), want.data(), &reference, 1e-5, 1e-5);
        let got = host(g, &g.matmul(&g.upload(&a).unwrap(), &g.upload(&b).unwrap()).unwrap());
        assert_close(&format!("matmul {sa:?}×{sb:?}"), got.data(), want.data(), 1e-5, 1e-4);
    }
    // Softmax and layer norm over rows of 1, 37 and 300 values.
    for inner in [1usize, 37, 300] {
        let x = t(&[3, 5, inner], 50 + inner as u64);
        let want = cpu.softmax(&x).unwrap();
        assert_close("cpu softmax vs f64", want.data(), &host_eval(Op::Softmax { axis: -1 }, &[&x]), 1e-6, 1e-5);
        assert_close(
            &format!("softmax rows of {inner}"),
            host(g, &g.softmax(&g.upload(&x).unwrap()).unwrap()).data(),
            want.data(),
            1e-6,
            1e-5,
        );
        let (gamma, beta) = (t(&[inner], 60), t(&[inner], 61));
        let want = cpu.layer_norm(&x, &gamma, &beta, 1e-5).unwrap();
        let reference = host_eval(Op::LayerNorm { axis: -1, eps: 1e-5 }, &[&x, &gamma, &beta]);
        assert_close("cpu layer norm vs f64", want.data(), &reference, 1e-5, 1e-4);
        let got =
            g.layer_norm(&g.upload(&x).unwrap(), &g.upload(&gamma).unwrap(), &g.upload(&beta).unwrap(), 1e-5).unwrap();
        assert_close(&format!("layer norm rows of {inner}"), host(g, &got).data(), want.data(), 1e-5, 1e-4);
    }
}

/// The benchmark's peak kernel computes what it claims (so its flop count is real work): each
/// of 8 chains per lane, a ← a·m + c from a₀ = s + j, is m^K(a₀ − L) + L with L = c/(1 − m),
/// summed over the 8 chains and 4 lanes; sizes that do not divide the workgroup.
#[test]
fn fma_peak_matches_the_closed_form() {
    let Some(g) = gpu() else { return };
    let (m, c) = ([0.999f64, 0.998, 0.997, 0.996], [1e-3f64, 2e-3, 3e-3, 4e-3]);
    for (len, iters) in [(1000usize, 0u32), (257, 7), (1000, 1000)] {
        let got = host(g, &g.fma_peak(len, iters).unwrap());
        let want: Vec<f32> = (0..len)
            .map(|i| {
                let s = (i % 1024) as f64 / 1024.0;
                let mut total = 0.0;
                for j in 0..8 {
                    for l in 0..4 {
                        let l_inf = c[l] / (1.0 - m[l]);
                        total += m[l].powi(iters as i32) * (s + j as f64 - l_inf) + l_inf;
                    }
                }
                total as f32
            })
            .collect();
        assert_close(&format!("fma_peak len {len} iters {iters}"), got.data(), &want, 1e-3, 1e-4);
    }
}

/// Dispatches share one compute pass until a copy or a submission ends it (gpu/recorder.rs):
/// a chain that interleaves dispatches with the copies of `reshape` and `slice_rows`, and one
/// of 300 dependent dispatches (past the 256 that force a submission with a pass open), all
/// recorded before a single readback, give the CPU's values: each step reads the one before.
#[test]
fn dispatches_and_copies_interleaved_in_one_submission() {
    use pushforward::pointwise::{BinaryOp, UnaryOp};
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend;
    let x = t(&[6, 35], 71);
    let want = {
        let y = cpu.unary(&x, UnaryOp::Tanh).unwrap();
        let r = cpu.reshape(&y, &[35, 6]).unwrap();
        let z = cpu.binary(&r, &r, BinaryOp::Mul).unwrap();
        let s = cpu.slice_rows(&z, 3..20).unwrap();
        cpu.binary(&s, &cpu.unary(&s, UnaryOp::Neg).unwrap(), BinaryOp::Sub).unwrap()
    };
    let d0 = g.stats().submissions;
    let y = g.unary(&g.upload(&x).unwrap(), UnaryOp::Tanh).unwrap();
    let r = g.reshape(&y, &[35, 6]).unwrap();
    let z = g.binary(&r, &r, BinaryOp::Mul).unwrap();
    let s = g.slice_rows(&z, 3..20).unwrap();
    let got = g.binary(&s, &g.unary(&s, UnaryOp::Neg).unwrap(), BinaryOp::Sub).unwrap();
    assert_eq!(g.stats().submissions, d0, "recorded without submitting");
    assert_close("dispatch, copy, dispatch, copy, dispatches", host(g, &got).data(), want.data(), 1e-6, 1e-6);

    // 300 dependent adds of 1 in one recording: x + 300, with a submission forced midway.
    let one = g.upload(&Tensor::new(vec![6, 35], vec![1.0; 210]).unwrap()).unwrap();
    let (d0, s0) = (g.stats().dispatches, g.stats().submissions);
    let mut acc = g.upload(&x).unwrap();
    for _ in 0..300 {
        acc = g.binary(&acc, &one, BinaryOp::Add).unwrap();
    }
    assert!(g.stats().submissions > s0, "256 pending dispatches force a submission");
    assert_eq!(g.stats().dispatches - d0, 300);
    let want: Vec<f32> = x.data().iter().map(|v| (0..300).fold(*v, |a, _| a + 1.0)).collect();
    assert_eq!(host(g, &acc).data(), &want[..]);
}

/// Profiling gives every dispatch a pass of its own with timestamps (gpu/recorder.rs), between
/// the passes that unprofiled dispatches share: each dispatch is counted once under its family,
/// with a finite, non-negative time, and the results are the CPU's. lavapipe has timestamp
/// queries; an adapter without them says so and is checked for the unprofiled results only.
#[test]
fn profiling_times_every_dispatch_and_keeps_results() {
    use pushforward::pointwise::{BinaryOp, UnaryOp};
    let Some(g) = open(&GpuOptions { timestamps: true, ..Default::default() }) else { return };
    let cpu = CpuBackend;
    let x = t(&[5, 19], 81);
    let want = cpu.binary(&cpu.unary(&x, UnaryOp::Tanh).unwrap(), &x, BinaryOp::Mul).unwrap();
    let run = || {
        let gx = g.upload(&x).unwrap();
        let y = g.unary(&gx, UnaryOp::Tanh).unwrap();
        let r = g.reshape(&y, &[5, 19]).unwrap();
        g.binary(&r, &gx, BinaryOp::Mul).unwrap()
    };
    // Unprofiled first: the shared pass is open when profiling starts.
    let before = run();
    let profiling = g.set_profiling(true).unwrap();
    let d0 = g.stats().dispatches;
    let got = run();
    assert_close("profiled", host(&g, &got).data(), want.data(), 1e-6, 1e-6);
    assert_close("unprofiled", host(&g, &before).data(), want.data(), 1e-6, 1e-6);
    if !profiling {
        eprintln!("this adapter has no timestamp queries: profiling is off");
        return;
    }
    let p = g.profile().unwrap().expect("profiling is on");
    let counted: u64 = p.dispatches.values().sum();
    assert_eq!(counted, g.stats().dispatches - d0, "every profiled dispatch counted once");
    assert!(p.secs.values().all(|s| s.is_finite() && *s >= 0.0), "{:?}", p.secs);
    assert!(g.set_profiling(false).unwrap());
    assert!(g.profile().unwrap().is_none());
}
