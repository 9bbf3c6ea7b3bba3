//! Fast CPU kernels against their naive f64 oracles (property tests over ragged shapes, every
//! kernel variant this CPU can run), plus small cases whose answers are written out by hand.
//!
//! Tolerance: |fast − naive| ≤ ATOL·√k + RTOL·|naive| with ATOL = RTOL = 1e-4, k the number of
//! products summed per output. Inputs are in [-1, 1], so an f32 sum of k products carries a
//! rounding error that grows roughly like √k·ε; 1e-4·√k leaves a wide margin while still catching
//! any wrong index (which produces O(1) errors).

use proptest::prelude::*;
use pushforward::cpu::conv2d::{self, Conv2dShape};
use pushforward::cpu::matmul::{self, Isa, Workspace};
use pushforward::cpu::{Activation, elementwise, norm, silu};

const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-4;

fn assert_close(fast: &[f32], oracle: &[f32], k: usize, what: &str) {
    assert_eq!(fast.len(), oracle.len(), "{what}: length");
    let atol = ATOL * (k.max(1) as f32).sqrt();
    for (i, (&a, &b)) in fast.iter().zip(oracle).enumerate() {
        assert!((a - b).abs() <= atol + RTOL * b.abs(), "{what}: element {i}: fast {a} vs naive {b} (k = {k})");
    }
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 + 1e-5 * b.abs()
}

fn assert_exact_ish(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(close(g, w), "{what}: element {i}: got {g}, want {w}");
    }
}

use pushforward::rng::test_values as values;

fn act_strategy() -> impl Strategy<Value = Activation> {
    prop_oneof![Just(Activation::None), Just(Activation::Silu)]
}

fn check_linear(n: usize, k: usize, m: usize, with_bias: bool, act: Activation, seed: u64) {
    let x = values(n * k, seed);
    let w = values(m * k, seed + 1);
    let bias = values(m, seed + 2);
    let bias = with_bias.then_some(&bias[..]);
    let mut want = vec![0.0; n * m];
    matmul::naive::linear(&x, &w, bias, act, n, k, m, &mut want);
    let mut ws = Workspace::new();
    for isa in Isa::available() {
        let mut got = vec![f32::NAN; n * m];
        matmul::linear_with(isa, &mut ws, &x, &w, bias, act, n, k, m, &mut got);
        assert_close(&got, &want, k, &format!("linear {isa:?} n={n} k={k} m={m} bias={with_bias} {act:?}"));
    }
    let mut got = vec![f32::NAN; n * m];
    matmul::linear(&x, &w, bias, act, n, k, m, &mut got);
    assert_close(&got, &want, k, "linear (dispatched)");
}

fn check_matmul(n: usize, k: usize, m: usize, seed: u64) {
    let a = values(n * k, seed);
    let b = values(k * m, seed + 1);
    let mut want = vec![0.0; n * m];
    matmul::naive::matmul(&a, &b, n, k, m, &mut want);
    let mut ws = Workspace::new();
    for isa in Isa::available() {
        let mut got = vec![f32::NAN; n * m];
        matmul::matmul_with(isa, &mut ws, &a, &b, n, k, m, &mut got);
        assert_close(&got, &want, k, &format!("matmul {isa:?} n={n} k={k} m={m}"));
    }
    let mut got = vec![f32::NAN; n * m];
    matmul::matmul(&a, &b, n, k, m, &mut got);
    assert_close(&got, &want, k, "matmul (dispatched)");
}

fn check_conv(s: Conv2dShape, with_bias: bool, seed: u64) {
    let x = values(s.batch * s.c_in * s.h * s.w, seed);
    let w = values(s.c_out * s.c_in * s.kh * s.kw, seed + 1);
    let bias = values(s.c_out, seed + 2);
    let bias = with_bias.then_some(&bias[..]);
    let mut want = vec![0.0; s.out_len()];
    conv2d::naive::conv2d(&x, &w, bias, &s, &mut want);
    let mut ws = Workspace::new();
    for isa in Isa::available() {
        let mut got = vec![f32::NAN; s.out_len()];
        conv2d::conv2d_with(isa, &mut ws, &x, &w, bias, &s, &mut got);
        assert_close(&got, &want, s.c_in * s.kh * s.kw, &format!("conv2d {isa:?} {s:?} bias={with_bias}"));
    }
    let mut got = vec![f32::NAN; s.out_len()];
    conv2d::conv2d(&x, &w, bias, &s, &mut got);
    assert_close(&got, &want, s.c_in * s.kh * s.kw, "conv2d (dispatched)");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn linear_matches_naive(n in 1usize..=70, k in 1usize..=70, m in 1usize..=70, bias: bool,
                            act in act_strategy(), seed: u64) {
        check_linear(n, k, m, bias, act, seed);
    }

    #[test]
    fn matmul_matches_naive(n in 1usize..=70, k in 1usize..=70, m in 1usize..=70, seed: u64) {
        check_matmul(n, k, m, seed);
    }

    #[test]
    fn conv2d_matches_naive(batch in 1usize..=2, c_in in 1usize..=9, c_out in 1usize..=9,
                            h in 1usize..=13, w in 1usize..=13, k3: bool, stride in 1usize..=2,
                            pad in 0usize..=1, bias: bool, seed: u64) {
        let kk = if k3 { 3 } else { 1 };
        prop_assume!(h + 2 * pad >= kk && w + 2 * pad >= kk);
        check_conv(Conv2dShape { batch, c_in, h, w, c_out, kh: kk, kw: kk, stride, pad }, bias, seed);
    }

    #[test]
    fn group_norm_matches_naive(n in 1usize..=3, groups in 1usize..=4, per_group in 1usize..=4,
                                hw in 1usize..=40, offset in -10.0f32..10.0, act in act_strategy(),
                                seed: u64) {
        let c = groups * per_group;
        let x: Vec<f32> = values(n * c * hw, seed).iter().map(|v| v * 3.0 + offset).collect();
        let gamma = values(c, seed + 1);
        let beta = values(c, seed + 2);
        let mut want = vec![0.0; x.len()];
        let mut got = vec![f32::NAN; x.len()];
        norm::naive::group_norm(&x, n, c, hw, groups, &gamma, &beta, 1e-5, act, &mut want);
        norm::group_norm(&x, n, c, hw, groups, &gamma, &beta, 1e-5, act, &mut got);
        assert_close(&got, &want, 1, "group_norm");
    }
}

/// Sizes that cross the cache blocks (depth > KC = 256, rows > MC = 144, cols > NC = 2048),
/// which the small property-test shapes never reach.
#[test]
fn products_crossing_cache_blocks() {
    check_matmul(150, 300, 37, 11);
    check_matmul(3, 5, 2100, 12);
    check_matmul(1, 520, 1, 13);
    check_linear(150, 513, 33, true, Activation::Silu, 14);
    check_linear(2, 7, 2050, true, Activation::None, 15);
}

#[test]
fn conv2d_unet_like_shapes() {
    let s = |c_in, c_out, h, k, stride, pad| Conv2dShape { batch: 2, c_in, h, w: h, c_out, kh: k, kw: k, stride, pad };
    check_conv(s(1, 32, 28, 3, 1, 1), true, 21); // conv_in
    check_conv(s(32, 32, 28, 3, 2, 1), true, 22); // downsample
    check_conv(s(96, 64, 14, 1, 1, 0), true, 23); // skip 1×1
    check_conv(s(64, 64, 7, 3, 1, 1), false, 24);
    check_conv(s(5, 3, 6, 3, 2, 0), true, 25);
    // Stride 1, packed from the padded image without an im2col matrix: a non-square kernel
    // over a non-square image, depth 20·3·5 = 300 across the KC = 256 block boundary.
    let wide = Conv2dShape { batch: 2, c_in: 20, h: 9, w: 13, c_out: 5, kh: 3, kw: 5, stride: 1, pad: 2 };
    check_conv(wide, true, 26);
    check_conv(Conv2dShape { pad: 0, ..wide }, false, 27);
}

#[test]
fn zero_depth_is_bias_and_activation() {
    let mut out = vec![f32::NAN; 6];
    matmul::linear(&[], &[], Some(&[1.0, -1.0, 0.0]), Activation::Silu, 2, 0, 3, &mut out);
    let want = [silu(1.0), silu(-1.0), 0.0];
    assert_exact_ish(&out, &[want, want].concat(), "linear k=0");
    matmul::matmul(&[], &[], 2, 0, 3, &mut out);
    assert_eq!(out, vec![0.0; 6]);
}

#[test]
fn linear_writes_every_value_of_a_recycled_buffer() {
    // `CpuBackend::linear` takes its output from the tensor recycler without zeroing it
    // (`Tensor::for_overwrite`): a buffer given back full of NaN must not show through, at any
    // depth (0 too), with or without bias, for wide and narrow outputs (each ≥ 4096 values,
    // the recycler's smallest).
    use pushforward::backend::Backend;
    use pushforward::cpu::CpuBackend;
    use pushforward::tensor::Tensor;
    for (n, k, m, bias) in [(37, 19, 129, true), (64, 128, 128, false), (4096, 2, 2, true), (1024, 0, 5, true)] {
        drop(Tensor::new(vec![n * m], vec![f32::NAN; n * m]).unwrap());
        let (x, w, b) = (values(n * k, 1), values(m * k, 2), values(m, 3));
        let t = |shape: Vec<usize>, v: &[f32]| Tensor::new(shape, v.to_vec()).unwrap();
        let bt = bias.then(|| t(vec![m], &b));
        let got = CpuBackend.linear(&t(vec![n, k], &x), &t(vec![m, k], &w), bt.as_ref(), Activation::None).unwrap();
        let mut want = vec![0.0; n * m];
        matmul::naive::linear(&x, &w, bias.then_some(&b[..]), Activation::None, n, k, m, &mut want);
        assert_close(got.data(), &want, k, &format!("linear {n}×{k}×{m} over a stale buffer"));
    }
}

#[test]
fn silu_epilogue_over_a_wide_range() {
    // k = 1, w = 1: the output is silu(x) itself, including where e^-x overflows or underflows.
    let x: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.25).chain([-1e4, 1e4, -88.5, 88.5]).collect();
    let mut got = vec![0.0; x.len()];
    matmul::linear(&x, &[1.0], None, Activation::Silu, x.len(), 1, 1, &mut got);
    for (&xi, &g) in x.iter().zip(&got) {
        let want = silu(xi);
        assert!((g - want).abs() <= 1e-6 + 2e-6 * want.abs(), "silu({xi}): {g} vs {want}");
    }
}

#[test]
fn linear_by_hand() {
    // x = [[1, 2], [3, 4]], w = [[1, 0], [0, 1], [1, 1]], bias = [0.5, -1, 0]
    let x = [1.0, 2.0, 3.0, 4.0];
    let w = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let b = [0.5, -1.0, 0.0];
    let mut out = [0.0; 6];
    matmul::linear(&x, &w, Some(&b), Activation::None, 2, 2, 3, &mut out);
    assert_exact_ish(&out, &[1.5, 1.0, 3.0, 3.5, 3.0, 7.0], "linear");
    // SiLU on [[1, 0, -1]]: silu(1) = 1/(1+e^-1), silu(-1) = -1/(1+e).
    let mut out = [0.0; 3];
    matmul::linear(&[1.0], &[1.0, 0.0, -1.0], None, Activation::Silu, 1, 1, 3, &mut out);
    assert_exact_ish(&out, &[0.731_058_6, 0.0, -0.268_941_43], "linear silu");
}

#[test]
fn matmul_by_hand() {
    // [[1, 2, 3], [4, 5, 6]] · [[7, 8], [9, 10], [11, 12]] = [[58, 64], [139, 154]]
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
    let mut out = [0.0; 4];
    matmul::matmul(&a, &b, 2, 3, 2, &mut out);
    assert_eq!(out, [58.0, 64.0, 139.0, 154.0]);
}

#[test]
fn conv2d_by_hand() {
    // Input 1..9 as a 3×3 image, all-ones 3×3 kernel, pad 1: each output is the sum of its
    // in-bounds 3×3 neighbourhood.
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let w = [1.0; 9];
    let s = Conv2dShape { batch: 1, c_in: 1, h: 3, w: 3, c_out: 1, kh: 3, kw: 3, stride: 1, pad: 1 };
    let mut out = vec![0.0; 9];
    conv2d::conv2d(&x, &w, None, &s, &mut out);
    assert_eq!(out, [12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0]);
    // Stride 2 keeps the four corners; bias 1 is added.
    let s2 = Conv2dShape { stride: 2, ..s };
    let mut out = vec![0.0; 4];
    conv2d::conv2d(&x, &w, Some(&[1.0]), &s2, &mut out);
    assert_eq!(out, [13.0, 17.0, 25.0, 29.0]);
    // 1×1, two channels in and out: pixel (a, b) → (a + 2b, 3a − b) + bias (0, 10).
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // channel 0 = [1, 2, 3], channel 1 = [4, 5, 6]
    let w = [1.0, 2.0, 3.0, -1.0];
    let s = Conv2dShape { batch: 1, c_in: 2, h: 1, w: 3, c_out: 2, kh: 1, kw: 1, stride: 1, pad: 0 };
    let mut out = vec![0.0; 6];
    conv2d::conv2d(&x, &w, Some(&[0.0, 10.0]), &s, &mut out);
    assert_eq!(out, [9.0, 12.0, 15.0, 9.0, 11.0, 13.0]);
}

#[test]
fn group_norm_by_hand() {
    // One group over [1, 2, 3, 4]: mean 2.5, variance 1.25, so (x − 2.5)/√1.25; channel 1 then
    // gets gamma 2, beta 1.
    let x = [1.0, 2.0, 3.0, 4.0];
    let mut out = [0.0; 4];
    norm::group_norm(&x, 1, 2, 2, 1, &[1.0, 2.0], &[0.0, 1.0], 0.0, Activation::None, &mut out);
    assert_exact_ish(&out, &[-1.341_640_8, -0.447_213_6, 1.894_427_2, 3.683_281_6], "group_norm");
    // Two groups of one channel each: each normalised on its own to ±1.
    norm::group_norm(&x, 1, 2, 2, 2, &[1.0, 1.0], &[0.0, 0.0], 0.0, Activation::None, &mut out);
    assert_exact_ish(&out, &[-1.0, 1.0, -1.0, 1.0], "group_norm 2 groups");
}

#[test]
fn elementwise_by_hand() {
    let mut up = [0.0; 16];
    elementwise::upsample_nearest2x(&[1.0, 2.0, 3.0, 4.0], 1, 2, 2, &mut up);
    assert_eq!(up, [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0]);

    let mut cat = [0.0; 8];
    elementwise::concat_axis1(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 2, 1, 1, 2, &mut cat);
    assert_eq!(cat, [1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 8.0]);

    let mut lc = [0.0; 2];
    elementwise::lincomb(&[1.0, 2.0], &[(2.0, &[1.0, 1.0]), (0.5, &[2.0, 4.0]), (0.0, &[f32::NAN, 1.0])], &mut lc);
    assert_eq!(lc, [4.0, 6.0]);

    // cond rows [1, 2], uncond rows [3, 5], w = 2: u + 2(c − u).
    let mut g = [0.0; 2];
    elementwise::guidance_mix(&[1.0, 2.0, 3.0, 5.0], 2.0, &mut g);
    assert_eq!(g, [-1.0, -1.0]);

    // scales 1 + 1·max(|old|, |new|) = [2, 4], errors [1, 2] → ratios 0.5, 0.5 → rms 0.5.
    let e = elementwise::scaled_rms_error(&[1.0, 2.0], &[0.0, 0.0], &[1.0, -3.0], 1.0, 1.0);
    assert!(close(e, 0.5), "scaled_rms_error {e}");
    assert_eq!(elementwise::scaled_rms_error(&[], &[], &[], 1e-3, 1e-3), 0.0);
}
