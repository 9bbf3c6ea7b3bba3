//! CPU kernels graph networks need beyond the reference architectures: strided copies
//! (transposes, slices, picks), batched matrix products with broadcast batch dimensions, softmax
//! and layer norm over the last axis. Plain loops with f32 accumulation (as the WGSL twins in
//! `shaders/graph.wgsl`); attention sizes in velocity networks are small.

/// out[i] = x[offset + Σ_d k_d·strides[d]] where (k_d) is i's index in `shape`.
pub fn strided_copy(x: &[f32], shape: &[usize], offset: usize, strides: &[usize], out: &mut [f32]) {
    let rank = shape.len();
    let mut idx = vec![0usize; rank];
    let mut at = offset;
    for o in out.iter_mut() {
        *o = x[at];
        for d in (0..rank).rev() {
            idx[d] += 1;
            at += strides[d];
            if idx[d] < shape[d] {
                break;
            }
            at -= strides[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// out[b, m, n] = Σ_k a[b, m, k]·b[b, k, n] with `batch` broadcast batch shape and each
/// operand's element strides per batch dimension (0 where broadcast).
#[allow(clippy::too_many_arguments)]
pub fn batched_matmul(
    a: &[f32],
    b: &[f32],
    batch: &[usize],
    a_strides: &[usize],
    b_strides: &[usize],
    (m, k, n): (usize, usize, usize),
    out: &mut [f32],
) {
    let batches: usize = batch.iter().product();
    for bi in 0..batches {
        let (mut oa, mut ob, mut rem) = (0, 0, bi);
        for d in (0..batch.len()).rev() {
            let i = rem % batch[d];
            rem /= batch[d];
            oa += i * a_strides[d];
            ob += i * b_strides[d];
        }
        let c = &mut out[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f32;
                for p in 0..k {
                    s += a[oa + i * k + p] * b[ob + p * n + j];
                }
                c[i * n + j] = s;
            }
        }
    }
}

/// Softmax over each row of `inner` values.
pub fn softmax_rows(x: &[f32], inner: usize, out: &mut [f32]) {
    for (r, o) in x.chunks_exact(inner).zip(out.chunks_exact_mut(inner)) {
        let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for (oi, &v) in o.iter_mut().zip(r) {
            *oi = (v - m).exp();
            sum += *oi;
        }
        let inv = 1.0 / sum;
        o.iter_mut().for_each(|v| *v *= inv);
    }
}

/// (x − mean)/sqrt(var + eps)·gamma + beta over each row of `gamma.len()` values.
pub fn layer_norm_rows(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
    let inner = gamma.len();
    for (r, o) in x.chunks_exact(inner).zip(out.chunks_exact_mut(inner)) {
        let mean = r.iter().sum::<f32>() / inner as f32;
        let var = r.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / inner as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for j in 0..inner {
            o[j] = (r[j] - mean) * inv * gamma[j] + beta[j];
        }
    }
}
