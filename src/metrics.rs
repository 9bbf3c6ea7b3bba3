//! Sample-quality metrics for 2-D models, defined exactly as `train/evaluate.py` defines them so
//! the Rust sampler's numbers can be checked against the training program's.

/// Number of projection directions of the sliced Wasserstein-2 distance.
pub const SW2_DIRECTIONS: usize = 128;

/// Sliced Wasserstein-2 between two equally sized 2-D point sets (`a`, `b` = [n, 2] flattened):
/// directions u_k = (cos θ_k, sin θ_k) with θ_k = π·k/L, k = 0..L−1 (L = 128);
/// W2²_k = mean_i (sort(a·u_k)_i − sort(b·u_k)_i)²; SW2 = sqrt(mean_k W2²_k).
/// Returns `None` if the sets differ in size or are empty.
pub fn sliced_w2(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() || !a.len().is_multiple_of(2) {
        return None;
    }
    let n = a.len() / 2;
    let mut pa = vec![0f64; n];
    let mut pb = vec![0f64; n];
    let mut total = 0.0;
    for k in 0..SW2_DIRECTIONS {
        let th = std::f64::consts::PI * k as f64 / SW2_DIRECTIONS as f64;
        let (c, s) = (th.cos(), th.sin());
        for i in 0..n {
            pa[i] = a[2 * i] as f64 * c + a[2 * i + 1] as f64 * s;
            pb[i] = b[2 * i] as f64 * c + b[2 * i + 1] as f64 * s;
        }
        pa.sort_by(f64::total_cmp);
        pb.sort_by(f64::total_cmp);
        total += pa.iter().zip(&pb).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / n as f64;
    }
    Some((total / SW2_DIRECTIONS as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_gives_its_length() {
        // Translating a set by d: every projection shifts by d·u, so SW2² = mean_k (d·u_k)² = |d|²/2.
        let a: Vec<f32> = (0..200).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let b: Vec<f32> = a.chunks(2).flat_map(|p| [p[0] + 0.3, p[1] - 0.4]).collect();
        let sw = sliced_w2(&a, &b).unwrap();
        assert!((sw - (0.25f64 / 2.0).sqrt()).abs() < 1e-6, "{sw}");
        assert_eq!(sliced_w2(&a, &a).unwrap(), 0.0);
        assert!(sliced_w2(&a, &b[..10]).is_none());
    }
}
