//! Exports for tests/browser/wasm_kernels.test.mjs: each check runs the fast kernels on
//! pseudo-random shapes and data and returns the worst error against the f64 oracles.

use pushforward_kernels::conv2d::{self, Conv2dShape};
use pushforward_kernels::{Activation, elementwise, matmul};

/// A 64-bit LCG (Knuth's MMIX constants): the same cases wherever it runs.
struct Lcg(u64);

impl Lcg {
    fn step(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0
    }
    /// Uniform in [-1, 1).
    fn value(&mut self) -> f32 {
        (self.step() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Uniform in 1..=n.
    fn size(&mut self, n: usize) -> usize {
        1 + (self.step() >> 33) as usize % n
    }
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.value()).collect()
    }
}

/// max |got − want| / max |want| (a NaN counts as infinitely wrong).
fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
    got.iter().zip(want).fold(0.0f32, |m, (g, w)| {
        let d = (g - w).abs() / scale;
        if d.is_nan() { f32::INFINITY } else { m.max(d) }
    })
}

/// `linear` (a PyTorch weight used transposed; column bias or none; SiLU or none) and `matmul`
/// (row-major B) on `cases` shapes up to 70 × 300 × 70: rows and columns that do and do not
/// fill the 4 × 8 register tile, depths past one 256-deep block; every third case has one or
/// two columns, half of those with a depth that is a multiple of 4 (`linear`'s dot-product
/// kernel for narrow outputs; `matmul` and the other depths go through the panels).
#[unsafe(no_mangle)]
pub extern "C" fn check_products(cases: u32, seed: u64) -> f32 {
    let mut r = Lcg(seed);
    let mut worst = 0.0f32;
    for case in 0..cases {
        let (n, k, m) = (r.size(70), r.size(300), r.size(70));
        let m = if case % 3 == 1 { 1 + m % 2 } else { m };
        let k = if case % 6 == 1 { 4 * k.div_ceil(4) } else { k };
        let (x, w, b) = (r.values(n * k), r.values(m * k), r.values(m));
        let act = if case % 2 == 0 { Activation::Silu } else { Activation::None };
        let bias = if case % 3 == 0 { None } else { Some(&b[..]) };
        let (mut got, mut want) = (vec![0.0; n * m], vec![0.0; n * m]);
        matmul::linear(&x, &w, bias, act, n, k, m, &mut got);
        matmul::naive::linear(&x, &w, bias, act, n, k, m, &mut want);
        worst = worst.max(relative_error(&got, &want));
        matmul::matmul(&x, &w, n, k, m, &mut got);
        matmul::naive::matmul(&x, &w, n, k, m, &mut want);
        worst = worst.max(relative_error(&got, &want));
    }
    worst
}

/// `conv2d` (per-channel bias) on `cases` 3×3 convolutions, stride 1 (the implicit im2col
/// GEMM) or 2 (an explicit im2col matrix), padded or not, images up to 14 × 14.
#[unsafe(no_mangle)]
pub extern "C" fn check_convolutions(cases: u32, seed: u64) -> f32 {
    let mut r = Lcg(seed);
    let mut worst = 0.0f32;
    let mut done = 0;
    while done < cases {
        let s = Conv2dShape {
            batch: r.size(2),
            c_in: r.size(9),
            h: r.size(14),
            w: r.size(14),
            c_out: r.size(13),
            kh: 3,
            kw: 3,
            stride: r.size(2),
            pad: r.size(2) - 1,
        };
        if s.h + 2 * s.pad < s.kh || s.w + 2 * s.pad < s.kw {
            continue;
        }
        let x = r.values(s.batch * s.c_in * s.h * s.w);
        let (w, b) = (r.values(s.c_out * s.c_in * s.kh * s.kw), r.values(s.c_out));
        let (mut got, mut want) = (vec![0.0; s.out_len()], vec![0.0; s.out_len()]);
        conv2d::conv2d(&x, &w, Some(&b), &s, &mut got);
        conv2d::naive::conv2d(&x, &w, Some(&b), &s, &mut want);
        worst = worst.max(relative_error(&got, &want));
        done += 1;
    }
    worst
}

/// The worst error of `silu_in_place` (the GEMM epilogue's SIMD SiLU in wasm) in ulps of the
/// f64 SiLU (rounded up), over `points` evenly spaced x in [-80, 88] (below, SiLU is
/// subnormal) in one slice, its last 1–3 values (the padded vector) included.
#[unsafe(no_mangle)]
pub extern "C" fn silu_worst_ulps(points: u32) -> u32 {
    let (lo, hi) = (-80.0f32, 88.0f32);
    let xs: Vec<f32> = (0..points).map(|i| lo + (hi - lo) * (i as f32 / (points - 1) as f32)).collect();
    let mut got = xs.clone();
    elementwise::silu_in_place(&mut got);
    xs.iter()
        .zip(&got)
        .map(|(&x, &g)| {
            let want = x as f64 / (1.0 + (-(x as f64)).exp());
            let w = (want as f32).abs();
            let ulp = (f32::from_bits(w.to_bits() + 1) - w) as f64;
            let d = (g as f64 - want).abs() / ulp;
            if d.is_nan() { u32::MAX } else { d.ceil() as u32 }
        })
        .max()
        .unwrap_or(0)
}
