//! Philox4x32-10 known answers, the key/counter/Box–Muller layout of `rng`, determinism, and the
//! statistics of the normals.

use pushforward::rng::{STREAM_INIT, STREAM_SDE, fill_normal, normal, philox4x32_10};

/// Random123 `kat_vectors` for philox4x32_10 (counter words, key words → output words), as
/// reproduced by e.g. TensorFlow's `random_ops` tests (citing Random123-Boost's
/// `test_philox.cpp`) and several independent Philox ports.
const KAT: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
    ([0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
    (
        [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
        [0xffffffff, 0xffffffff],
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ),
    (
        [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
        [0xa4093822, 0x299f31d0],
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ),
];

#[test]
fn philox_matches_random123_known_answers() {
    for (ctr, key, want) in KAT {
        assert_eq!(philox4x32_10(ctr, key), want, "counter {ctr:08x?} key {key:08x?}");
    }
}

/// Box–Muller of one word pair in f64, written independently of the library.
fn box_muller_f64(ra: u32, rb: u32) -> (f64, f64) {
    let u1 = ((ra >> 8) as f64 + 1.0) / 16_777_216.0;
    let u2 = (rb >> 8) as f64 / 16_777_216.0;
    let r = (-2.0 * u1.ln()).sqrt();
    let th = 2.0 * std::f64::consts::PI * u2;
    (r * th.cos(), r * th.sin())
}

/// Reference for element `e`: the layout of the module docs, in f64.
fn reference(seed: u64, stream: u32, e: u64) -> f64 {
    let block = e / 4;
    let w = philox4x32_10([block as u32, (block >> 32) as u32, stream, 0], [seed as u32, (seed >> 32) as u32]);
    let lane = (e % 4) as usize;
    let pair = lane & !1;
    let (c, s) = box_muller_f64(w[pair], w[pair + 1]);
    if lane.is_multiple_of(2) { c } else { s }
}

#[test]
fn first_block_of_seed_zero_is_box_muller_of_the_zero_kat() {
    // seed 0, stream 0, block 0 is exactly the all-zero KAT counter/key.
    let w = KAT[0].2;
    let (a, b) = box_muller_f64(w[0], w[1]);
    let (c, d) = box_muller_f64(w[2], w[3]);
    for (i, want) in [a, b, c, d].into_iter().enumerate() {
        let got = normal(0, STREAM_INIT, i as u64) as f64;
        assert!((got - want).abs() < 2e-6 * (1.0 + want.abs()), "element {i}: {got} vs {want}");
    }
}

#[test]
fn key_and_counter_layout_follow_the_spec() {
    // High seed words, nonzero streams and block indices above 2^32 exercise every word.
    let seeds = [0u64, 1, 0xdead_beef, 0x1234_5678_9abc_def0, u64::MAX];
    let streams = [STREAM_INIT, STREAM_SDE, 7, u32::MAX];
    let indices = [0u64, 1, 2, 3, 5, 1023, (1 << 34) + 6, u64::MAX];
    for &seed in &seeds {
        for &stream in &streams {
            for &e in &indices {
                let got = normal(seed, stream, e) as f64;
                let want = reference(seed, stream, e);
                assert!(
                    (got - want).abs() < 4e-6 * (1.0 + want.abs()),
                    "seed {seed:#x} stream {stream} index {e}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn same_seed_gives_identical_bits() {
    let mut a = vec![0.0f32; 10_007];
    let mut b = vec![0.0f32; 10_007];
    fill_normal(42, STREAM_INIT, 3, &mut a);
    fill_normal(42, STREAM_INIT, 3, &mut b);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert!(a.iter().all(|v| v.is_finite()));
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().map(|&v| v as f64).sum::<f64>() / n, b.iter().map(|&v| v as f64).sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt()
}

#[test]
fn different_seeds_and_streams_give_unrelated_numbers() {
    const N: usize = 100_000;
    let fill = |seed, stream| {
        let mut v = vec![0.0f32; N];
        fill_normal(seed, stream, 0, &mut v);
        v
    };
    let base = fill(1, STREAM_INIT);
    // Seeds differing in one low bit, in the high word only, and another stream.
    for other in [fill(2, STREAM_INIT), fill(1 | (1 << 32), STREAM_INIT), fill(1, STREAM_SDE)] {
        let equal = base.iter().zip(&other).filter(|(a, b)| a == b).count();
        assert!(equal < 10, "{equal} identical values out of {N}");
        // Independent samples: correlation ~ N(0, 1/N); 5σ = 0.0158.
        let r = correlation(&base, &other);
        assert!(r.abs() < 5.0 / (N as f64).sqrt(), "correlation {r}");
    }
    // Shifting the index by one block is not the same sequence either.
    let mut shifted = vec![0.0f32; N];
    fill_normal(1, STREAM_INIT, 4, &mut shifted);
    assert!(correlation(&base, &shifted).abs() < 5.0 / (N as f64).sqrt());
}

#[test]
fn fill_normal_matches_normal_for_any_alignment() {
    for start in [0u64, 1, 2, 3, 4, 5, 6, 7, 1_000_001, (1 << 33) + 3] {
        for len in [0usize, 1, 2, 3, 4, 5, 7, 8, 9, 13, 64] {
            let mut out = vec![f32::NAN; len];
            fill_normal(9, STREAM_SDE, start, &mut out);
            for (i, &v) in out.iter().enumerate() {
                let want = normal(9, STREAM_SDE, start + i as u64);
                assert_eq!(v.to_bits(), want.to_bits(), "start {start} len {len} i {i}");
            }
        }
    }
    // Indices wrap modulo 2^64.
    let mut out = [0.0f32; 6];
    fill_normal(3, 0, u64::MAX - 2, &mut out);
    let want: Vec<f32> = [u64::MAX - 2, u64::MAX - 1, u64::MAX, 0, 1, 2].iter().map(|&e| normal(3, 0, e)).collect();
    assert_eq!(out.to_vec(), want);
}

/// Standard normal CDF via erfc (Numerical Recipes' Chebyshev fit, |relative error| < 1.2e-7,
/// far below the KS threshold used).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807
                            + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - 0.5 * erfc } else { 0.5 * erfc }
}

#[test]
fn one_million_normals_have_standard_normal_statistics() {
    const N: usize = 1_000_000;
    let mut v = vec![0.0f32; N];
    fill_normal(20_240_601, STREAM_INIT, 0, &mut v);
    let n = N as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let m2 = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let m4 = v.iter().map(|&x| (x as f64 - mean).powi(4)).sum::<f64>() / n;
    // Standard errors under N(0,1): mean 1/√n, variance √(2/n), 4th moment √(96/n).
    let (se_mean, se_var, se_m4) = (1.0 / n.sqrt(), (2.0 / n).sqrt(), (96.0 / n).sqrt());
    println!("mean {mean:.5} (se {se_mean:.5}), var {m2:.5} (se {se_var:.5}), m4 {m4:.4} (se {se_m4:.4})");
    assert!(mean.abs() < 5.0 * se_mean, "mean {mean}");
    assert!((m2 - 1.0).abs() < 5.0 * se_var, "variance {m2}");
    assert!((m4 - 3.0).abs() < 5.0 * se_m4, "fourth moment {m4}");

    // Kolmogorov–Smirnov against N(0,1). The asymptotic critical value at significance 0.001 is
    // 1.949/√n ≈ 0.00195 for n = 10^6.
    let mut sorted: Vec<f64> = v.iter().map(|&x| x as f64).collect();
    sorted.sort_by(f64::total_cmp);
    let d = sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = normal_cdf(x);
            (f - i as f64 / n).max((i + 1) as f64 / n - f)
        })
        .fold(0.0f64, f64::max);
    let crit = 1.949 / n.sqrt();
    println!("KS D = {d:.6} (critical {crit:.6} at alpha = 0.001)");
    assert!(d < crit, "KS statistic {d} >= {crit}");

    // The cos and sin halves of each Box–Muller pair must be uncorrelated.
    let (even, odd): (Vec<f32>, Vec<f32>) = v.chunks_exact(2).map(|p| (p[0], p[1])).unzip();
    let r = correlation(&even, &odd);
    assert!(r.abs() < 5.0 / (even.len() as f64).sqrt(), "pair correlation {r}");
}

#[test]
fn philox_output_bytes_are_uniform() {
    // Chi-square over the top byte of 2^20 words (256 bins, 255 degrees of freedom): mean 255,
    // sd √510 ≈ 22.6; the 5σ bound 368 is far beyond the 0.9999 quantile (≈ 348).
    let mut counts = [0u64; 256];
    let blocks = 1u32 << 18;
    for b in 0..blocks {
        for w in philox4x32_10([b, 0, 5, 0], [0x0bad_5eed, 7]) {
            counts[(w >> 24) as usize] += 1;
        }
    }
    let expected = (blocks as f64 * 4.0) / 256.0;
    let chi2: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
    println!("chi-square {chi2:.1} with 255 dof");
    assert!(chi2 < 368.0, "chi-square {chi2}");
    assert!(chi2 > 160.0, "suspiciously uniform: chi-square {chi2}");
}
