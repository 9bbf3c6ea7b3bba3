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
    Some(SortedProjections::new(a).sliced_w2(&SortedProjections::new(b)))
}

/// A 2-D point set's projections on the [`sliced_w2`] directions, each sorted: computed once
/// for a set that is compared against many (a data draw against every sample set).
#[derive(Debug, Clone)]
pub struct SortedProjections(Vec<Vec<f64>>);

impl SortedProjections {
    /// `a` = [n, 2] flattened (an odd trailing value is ignored).
    pub fn new(a: &[f32]) -> Self {
        let dirs = (0..SW2_DIRECTIONS).map(|k| {
            let th = std::f64::consts::PI * k as f64 / SW2_DIRECTIONS as f64;
            let (c, s) = (th.cos(), th.sin());
            let mut p: Vec<f64> = a.chunks_exact(2).map(|q| q[0] as f64 * c + q[1] as f64 * s).collect();
            p.sort_by(f64::total_cmp);
            p
        });
        Self(dirs.collect())
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.0[0].len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`sliced_w2`] between the two sets (equal sizes; panics otherwise).
    pub fn sliced_w2(&self, other: &Self) -> f64 {
        assert_eq!(self.len(), other.len(), "sliced W2 of sets of different sizes");
        let n = self.len() as f64;
        let total: f64 = self
            .0
            .iter()
            .zip(&other.0)
            .map(|(pa, pb)| pa.iter().zip(pb).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / n)
            .sum();
        (total / SW2_DIRECTIONS as f64).sqrt()
    }
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

    /// `n` points of N(μ, σ² I) in 2-D from the crate's seeded normals.
    fn gaussian(n: usize, mu: [f32; 2], sigma: f32, seed: u64) -> Vec<f32> {
        let mut z = vec![0f32; 2 * n];
        crate::rng::fill_normal(seed, 0, 0, &mut z);
        z.chunks_exact(2).flat_map(|p| [mu[0] + sigma * p[0], mu[1] + sigma * p[1]]).collect()
    }

    /// mean_k (d·u_k)² over the metric's own directions u_k = (cos πk/L, sin πk/L): for L ≥ 3
    /// evenly spaced half-circle directions Σcos² = Σsin² = L/2 and Σcos·sin = 0, so this is
    /// |d|²/2 (asserted, to rounding).
    fn mean_squared_projection(d: [f64; 2]) -> f64 {
        let m = (0..SW2_DIRECTIONS)
            .map(|k| {
                let th = std::f64::consts::PI * k as f64 / SW2_DIRECTIONS as f64;
                (d[0] * th.cos() + d[1] * th.sin()).powi(2)
            })
            .sum::<f64>()
            / SW2_DIRECTIONS as f64;
        assert!((m - (d[0] * d[0] + d[1] * d[1]) / 2.0).abs() < 1e-12, "{m}");
        m
    }

    /// Two isotropic Gaussians N(μ1, σ1² I), N(μ2, σ2² I): every projection is a pair of 1-D
    /// Gaussians N(u·μ1, σ1²), N(u·μ2, σ2²), whose W2² is (u·(μ1−μ2))² + (σ1−σ2)² in closed
    /// form, so SW2² = mean_k (u_k·Δμ)² + (σ1−σ2)² = |Δμ|²/2 + (σ1−σ2)². With the sorts removed
    /// (points paired by index) the metric would instead measure E|x−y|² per projection,
    /// |Δμ|²/2 + σ1² + σ2².
    #[test]
    fn two_gaussians_give_the_closed_form_w2() {
        let n = 100_000;
        let (mu1, s1, mu2, s2) = ([0.0f32, 0.0], 1.0f32, [1.5f32, -0.5], 2.0f32);
        let a = gaussian(n, mu1, s1, 1);
        let b = gaussian(n, mu2, s2, 2);
        let d = [(mu1[0] - mu2[0]) as f64, (mu1[1] - mu2[1]) as f64];
        let exact = (mean_squared_projection(d) + ((s1 - s2) as f64).powi(2)).sqrt(); // 1.5
        let unsorted = (mean_squared_projection(d) + (s1 * s1 + s2 * s2) as f64).sqrt(); // 2.5
        let sw = sliced_w2(&a, &b).unwrap();
        println!("SW2 of N(0, I) vs N((1.5, −0.5), 4I), n = {n}: {sw:.5}, closed form {exact:.5}");
        // Sampling error of SW2 at n = 1e5 is ~3e-3 (standard deviation of the projected mean
        // difference, sqrt((σ1²+σ2²)/n) · |Δμ|/SW2 ≈ 0.0075·0.5); finite-n bias is O(log n / n).
        assert!((sw - exact).abs() < 0.015, "SW2 {sw} vs closed form {exact} (unsorted would be {unsorted})");
    }

    /// Two independent draws of one Gaussian: SW2 ≈ 0 (a finite-sample term of order
    /// σ·sqrt(log n / n)), where pairing by index would give sqrt(2)·σ.
    #[test]
    fn two_draws_of_one_gaussian_are_close() {
        let n = 50_000;
        let sigma = 1.5f32;
        let a = gaussian(n, [0.3, -0.2], sigma, 3);
        let b = gaussian(n, [0.3, -0.2], sigma, 4);
        let sw = sliced_w2(&a, &b).unwrap();
        println!("SW2 of two draws of N(·, 1.5² I), n = {n}: {sw:.5} (unsorted would be ≈ {:.3})", 2f64.sqrt() * 1.5);
        assert!(sw < 0.03 * sigma as f64, "{sw}");
    }

    /// A set and a shuffled copy of it are the same point set: SW2 exactly 0. Shuffled and
    /// shifted by d: exactly the shift's |d|/sqrt(2) (to f32 rounding of the shifted points).
    #[test]
    fn a_shuffled_copy_is_at_distance_zero_and_a_shifted_one_at_the_shift() {
        let n = 4099; // prime: i ↦ 1000·i mod n is a permutation
        let a = gaussian(n, [0.0, 0.0], 1.0, 5);
        let perm: Vec<usize> = (0..n).map(|i| (1000 * i) % n).collect();
        let shuffled: Vec<f32> = perm.iter().flat_map(|&j| [a[2 * j], a[2 * j + 1]]).collect();
        assert_eq!(sliced_w2(&a, &shuffled).unwrap(), 0.0);
        let d = [0.3f32, -0.4];
        let moved: Vec<f32> = shuffled.chunks_exact(2).flat_map(|p| [p[0] + d[0], p[1] + d[1]]).collect();
        let sw = sliced_w2(&a, &moved).unwrap();
        let exact = mean_squared_projection([d[0] as f64, d[1] as f64]).sqrt();
        assert!((sw - exact).abs() < 1e-5, "{sw} vs {exact}");
    }
}
