//! Elementwise and data-movement kernels: SiLU, add, per-channel bias, nearest 2× upsample,
//! channel / column concatenation, and the ODE's linear combinations.

/// The kernels' one SiLU (the GEMM's and GroupNorm's epilogue).
pub fn silu_in_place(x: &mut [f32]) {
    super::blocked::silu_slice(x);
}

/// out = silu′(z)·dz, with silu′(z) = s·(1 + z·(1 − s)) and s = sigmoid(z).
pub fn silu_tangent(z: &[f32], dz: &[f32], out: &mut [f32]) {
    assert!(z.len() == dz.len() && out.len() == z.len());
    for ((o, &z), &d) in out.iter_mut().zip(z).zip(dz) {
        let s = 1.0 / (1.0 + super::blocked::exp_neg(z));
        *o = s * (1.0 + z * (1.0 - s)) * d;
    }
}

/// out = a + b.
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(a.len() == b.len() && out.len() == a.len());
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

/// x[n, c, hw] += bias[n, c] (the per-sample time/class embedding added to every pixel).
pub fn add_channel_bias_in_place(x: &mut [f32], bias: &[f32], n: usize, c: usize, hw: usize) {
    assert!(x.len() == n * c * hw && bias.len() == n * c);
    for (plane, &b) in x.chunks_exact_mut(hw).zip(bias) {
        for v in plane {
            *v += b;
        }
    }
}

/// Nearest-neighbour 2× upsample: [n, c, h, w] → [n, c, 2h, 2w].
pub fn upsample_nearest2x(x: &[f32], nc: usize, h: usize, w: usize, out: &mut [f32]) {
    assert!(x.len() == nc * h * w && out.len() == nc * 4 * h * w);
    let w2 = 2 * w;
    for p in 0..nc {
        let src = &x[p * h * w..(p + 1) * h * w];
        let dst = &mut out[p * 4 * h * w..(p + 1) * 4 * h * w];
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            let (r0, r1) = dst[2 * y * w2..(2 * y + 2) * w2].split_at_mut(w2);
            for (xx, &v) in row.iter().enumerate() {
                r0[2 * xx] = v;
                r0[2 * xx + 1] = v;
            }
            r1.copy_from_slice(r0);
        }
    }
}

/// Concatenate along axis 1 of row-major [n, pa, inner] and [n, pb, inner] → [n, pa+pb, inner].
/// Channel concat of NCHW uses inner = h·w; column concat of matrices uses inner = 1.
pub fn concat_axis1(a: &[f32], b: &[f32], n: usize, pa: usize, pb: usize, inner: usize, out: &mut [f32]) {
    let (la, lb) = (pa * inner, pb * inner);
    assert!(a.len() == n * la && b.len() == n * lb && out.len() == n * (la + lb));
    for i in 0..n {
        let o = &mut out[i * (la + lb)..(i + 1) * (la + lb)];
        o[..la].copy_from_slice(&a[i * la..(i + 1) * la]);
        o[la..].copy_from_slice(&b[i * lb..(i + 1) * lb]);
    }
}

/// out = x + Σ cᵢ·kᵢ: every explicit Runge–Kutta stage and update is one of these.
pub fn lincomb(x: &[f32], terms: &[(f32, &[f32])], out: &mut [f32]) {
    assert!(out.len() == x.len() && terms.iter().all(|(_, k)| k.len() == x.len()));
    out.copy_from_slice(x);
    for &(c, k) in terms {
        if c == 0.0 {
            continue;
        }
        for (o, &kv) in out.iter_mut().zip(k) {
            *o += c * kv;
        }
    }
}

/// Classifier-free guidance on a batch laid out as [cond rows; uncond rows]:
/// out = v_u + w·(v_c − v_u), out has half the rows.
pub fn guidance_mix(v: &[f32], w: f32, out: &mut [f32]) {
    let half = v.len() / 2;
    assert!(v.len() == 2 * half && out.len() == half);
    let (vc, vu) = v.split_at(half);
    for ((o, &c), &u) in out.iter_mut().zip(vc).zip(vu) {
        *o = u + w * (c - u);
    }
}

/// Root-mean-square of err / (atol + rtol·max(|x_old|, |x_new|)): the Hairer–Nørsett–Wanner
/// error norm used by adaptive step control. Accumulates in f64.
pub fn scaled_rms_error(err: &[f32], x_old: &[f32], x_new: &[f32], rtol: f32, atol: f32) -> f32 {
    assert!(err.len() == x_old.len() && err.len() == x_new.len());
    if err.is_empty() {
        return 0.0;
    }
    let mut acc = 0.0f64;
    for ((&e, &a), &b) in err.iter().zip(x_old).zip(x_new) {
        let sc = atol as f64 + rtol as f64 * (a.abs().max(b.abs()) as f64);
        let r = e as f64 / sc;
        acc += r * r;
    }
    (acc / err.len() as f64).sqrt() as f32
}

/// Whether every value is finite (no NaN, no infinity).
pub fn all_finite(x: &[f32]) -> bool {
    x.iter().all(|v| v.is_finite())
}

/// `v` emptied and refilled with `n` zeros: how a recycled tensor buffer is handed out. A kernel
/// here (not inline in the caller) because the browser build compiles the caller's crate for
/// size, where `Vec::resize` becomes a scalar store loop instead of a `memset` (7% of the mnist
/// U-Net's time in wasm). With `keep_stale`, `v` is only cut or zero-extended to `n` values, the
/// rest kept as they are: a buffer for a kernel that overwrites all of it.
pub fn resize_buffer(v: &mut Vec<f32>, n: usize, keep_stale: bool) {
    if !keep_stale {
        v.clear();
    }
    v.resize(n, 0.0);
}
