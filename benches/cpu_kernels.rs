//! CPU kernel throughput against the `gemm` crate, single-threaded.
//!
//!     cargo bench --bench cpu_kernels            # full run
//!     QUICK=1 cargo bench --bench cpu_kernels    # (or `-- --quick`) fewer sizes and repetitions
//!     SIZES=1024 cargo bench --bench cpu_kernels # only these matmul sizes (empty: conv only)
//!
//! Ours and gemm are timed back to back in the same process, so on a shared machine compare the
//! ratios rather than the absolute GFLOP/s. Results are checked to agree before anything is timed.

use pushforward::cpu::Activation;
use pushforward::cpu::conv2d::{self, Conv2dShape};
use pushforward::cpu::matmul::{self, Isa, Workspace};
use std::hint::black_box;
use std::time::Instant;

use pushforward::rng::test_values as random;

/// Median seconds per call of each closure. The closures are run round-robin (after `warmup`
/// untimed rounds) so that load from other processes hits all of them alike.
fn race(warmup: usize, reps: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    for _ in 0..warmup {
        fs.iter_mut().for_each(|f| f());
    }
    let mut times = vec![Vec::with_capacity(reps); fs.len()];
    for _ in 0..reps {
        for (f, t) in fs.iter_mut().zip(&mut times) {
            let s = Instant::now();
            f();
            t.push(s.elapsed().as_secs_f64());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(|a, b| a.partial_cmp(b).unwrap());
            t[t.len() / 2]
        })
        .collect()
}

/// Aborts unless |a − b| ≤ 1e-4·k·max|b| elementwise (f32 sums of k products in different orders).
fn check(what: &str, ours: &[f32], reference: &[f32], k: usize) {
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
    let tol = 1e-4 * (k as f32).sqrt() * scale;
    let worst = ours.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    if worst.is_nan() || worst > tol {
        eprintln!("{what}: ours and gemm disagree (max |diff| {worst:e} > {tol:e}); not timing");
        std::process::exit(1);
    }
}

/// dst[m×n] = lhs[m×k] · rhs, row-major dst and lhs; rhs is [k×n] row-major, or [n×k] used
/// transposed when `rhs_transposed`.
fn gemm_ref(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32], rhs_transposed: bool, dst: &mut [f32]) {
    assert!(lhs.len() == m * k && rhs.len() == k * n && dst.len() == m * n);
    let (rhs_cs, rhs_rs) = if rhs_transposed { (k as isize, 1) } else { (1, n as isize) };
    // SAFETY: the pointers cover m×k, k×n and m×n elements with the strides given (asserted above).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn gflops(flops: f64, secs: f64) -> f64 {
    flops / secs / 1e9
}

fn main() {
    let quick = std::env::var_os("QUICK").is_some() || std::env::args().any(|a| a == "--quick");
    let (warmup, reps) = if quick { (1, 3) } else { (3, 11) };
    let best = Isa::detect();
    let isas: Vec<Isa> = Isa::available().into_iter().filter(|&i| i != Isa::Generic).collect();
    println!("CPU: {}", cpu_model());
    println!(
        "kernel variants: best {best:?}, timed {isas:?}; median of {reps} interleaved reps after {warmup} warm-up"
    );
    println!();
    println!("| op | shape | ours | ours GFLOP/s | gemm GFLOP/s | ours/gemm |");
    println!("|---|---|---|---:|---:|---:|");

    // SIZES=512,1024 restricts the matmul sizes; SIZES= (empty) runs only the convolution.
    let sizes: Vec<usize> = match std::env::var("SIZES") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) if quick => vec![256, 512],
        Err(_) => vec![256, 512, 1024],
    };
    for &sz in &sizes {
        let (n, k, m) = (sz, sz, sz);
        let flops = 2.0 * (n * k * m) as f64;
        let a = random(n * k, 1);
        let b = random(k * m, 2);
        for op in ["matmul", "linear"] {
            // matmul: a[n,k]·b[k,m]; linear: a[n,k]·b[m,k]ᵀ (no bias, so gemm computes the same).
            let transposed = op == "linear";
            let run_ours = |isa: Isa, ws: &mut Workspace, out: &mut [f32]| {
                if transposed {
                    matmul::linear_with(isa, ws, black_box(&a), black_box(&b), None, Activation::None, n, k, m, out)
                } else {
                    matmul::matmul_with(isa, ws, black_box(&a), black_box(&b), n, k, m, out)
                }
            };
            let mut theirs = vec![0.0; n * m];
            gemm_ref(n, m, k, &a, &b, transposed, &mut theirs);
            let mut bufs: Vec<(Isa, Workspace, Vec<f32>)> =
                isas.iter().map(|&isa| (isa, Workspace::new(), vec![0.0; n * m])).collect();
            for (isa, ws, out) in &mut bufs {
                run_ours(*isa, ws, out);
                check(op, out, &theirs, k);
            }
            let mut gemm_fn = || gemm_ref(n, m, k, black_box(&a), black_box(&b), transposed, &mut theirs);
            let mut ours_fns: Vec<Box<dyn FnMut()>> = bufs
                .iter_mut()
                .map(|(isa, ws, out)| Box::new(move || run_ours(*isa, ws, out)) as Box<dyn FnMut()>)
                .collect();
            let mut fs: Vec<&mut dyn FnMut()> = vec![&mut gemm_fn];
            fs.extend(ours_fns.iter_mut().map(|f| &mut **f as &mut dyn FnMut()));
            let t = race(warmup, reps, &mut fs);
            for (isa, &ti) in isas.iter().zip(&t[1..]) {
                row(op, &format!("{sz}³"), &format!("{op} {isa:?}"), gflops(flops, ti), gflops(flops, t[0]));
            }
        }
    }

    // conv2d 64→64, 3×3, stride 1, pad 1 on 16×64×32×32. gemm side: im2col per image + gemm.
    // Also timed: the same explicit im2col feeding our matmul, to show what packing the im2col
    // panels straight from the image (what conv2d does) buys.
    let batch = if quick { 4 } else { 16 };
    let s = Conv2dShape { batch, c_in: 64, h: 32, w: 32, c_out: 64, kh: 3, kw: 3, stride: 1, pad: 1 };
    let (ohw, depth, chw) = (s.out_h() * s.out_w(), s.c_in * 9, s.c_in * s.h * s.w);
    let x = random(batch * chw, 3);
    let wt = random(s.c_out * depth, 4);
    let bias = random(s.c_out, 5);
    let im2col_then = |cols: &mut [f32], out: &mut [f32], gemm: &mut dyn FnMut(&[f32], &mut [f32])| {
        for b in 0..s.batch {
            im2col_3x3_pad1(&x[b * chw..][..chw], s.c_in, s.h, s.w, cols);
            let o = &mut out[b * s.c_out * ohw..][..s.c_out * ohw];
            gemm(cols, o);
            for (plane, &bv) in o.chunks_exact_mut(ohw).zip(&bias) {
                plane.iter_mut().for_each(|v| *v += bv);
            }
        }
    };
    let (mut cols_g, mut cols_o) = (vec![0.0; depth * ohw], vec![0.0; depth * ohw]);
    let mut reference = vec![0.0; s.out_len()];
    im2col_then(&mut cols_g, &mut reference, &mut |c, o| gemm_ref(s.c_out, ohw, depth, &wt, c, false, o));
    let mut theirs = vec![0.0; s.out_len()];
    let mut gemm_fn =
        || im2col_then(&mut cols_g, &mut theirs, &mut |c, o| gemm_ref(s.c_out, ohw, depth, &wt, c, false, o));
    let mut explicit_out = vec![0.0; s.out_len()];
    let mut explicit_ws = Workspace::new();
    let mut explicit_fn = || {
        im2col_then(&mut cols_o, &mut explicit_out, &mut |c, o| {
            matmul::matmul_with(best, &mut explicit_ws, &wt, c, s.c_out, depth, ohw, o)
        })
    };
    let mut bufs: Vec<(Isa, Workspace, Vec<f32>)> =
        isas.iter().map(|&isa| (isa, Workspace::new(), vec![0.0; s.out_len()])).collect();
    for (isa, ws, out) in &mut bufs {
        conv2d::conv2d_with(*isa, ws, &x, &wt, Some(&bias), &s, out);
    }
    for (_, _, out) in &bufs {
        check("conv2d", out, &reference, depth);
    }
    explicit_fn();
    let mut ours_fns: Vec<Box<dyn FnMut()>> = bufs
        .iter_mut()
        .map(|(isa, ws, out)| {
            let (x, wt, bias, s) = (&x, &wt, &bias, &s);
            Box::new(move || conv2d::conv2d_with(*isa, ws, black_box(x), wt, Some(bias), s, out)) as Box<dyn FnMut()>
        })
        .collect();
    let mut fs: Vec<&mut dyn FnMut()> = vec![&mut gemm_fn, &mut explicit_fn];
    fs.extend(ours_fns.iter_mut().map(|f| &mut **f as &mut dyn FnMut()));
    let t = race(warmup, reps, &mut fs);
    let shape = format!("{batch}×64×32×32, 64→64 3×3 s1 p1");
    for (isa, &ti) in isas.iter().zip(&t[2..]) {
        row("conv2d", &shape, &format!("conv2d {isa:?}"), gflops(s.flops(), ti), gflops(s.flops(), t[0]));
    }
    row("conv2d", &shape, &format!("im2col + matmul {best:?}"), gflops(s.flops(), t[1]), gflops(s.flops(), t[0]));
    drop(fs);
    drop(ours_fns);
    check("conv2d (explicit im2col)", &explicit_out, &reference, depth);
}

fn row(op: &str, shape: &str, ours_label: &str, ours: f64, theirs: f64) {
    println!("| {op} | {shape} | {ours_label} | {ours:.1} | {theirs:.1} | {:.2} |", ours / theirs);
}

/// Reference im2col for 3×3, stride 1, pad 1 (independent of the crate's own): per output
/// row, one contiguous copy with the one-pixel borders zeroed.
fn im2col_3x3_pad1(img: &[f32], c: usize, h: usize, w: usize, cols: &mut [f32]) {
    for ci in 0..c {
        for ky in 0..3 {
            for kx in 0..3 {
                let plane = &mut cols[((ci * 3 + ky) * 3 + kx) * h * w..][..h * w];
                for (y, row) in plane.chunks_exact_mut(w).enumerate() {
                    let iy = y + ky;
                    if iy == 0 || iy > h {
                        row.fill(0.0);
                        continue;
                    }
                    let src = &img[(ci * h + iy - 1) * w..][..w];
                    match kx {
                        0 => {
                            row[0] = 0.0;
                            row[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => row.copy_from_slice(src),
                        _ => {
                            row[..w - 1].copy_from_slice(&src[1..]);
                            row[w - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}
