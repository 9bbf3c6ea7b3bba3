//! Sinusoidal time embedding (the transformer / DDPM formula), shared by every architecture.
//!
//! For `dim = 2·half`, frequency `fᵢ = exp(−ln(max_period) · i / half)`, `i = 0..half`, and
//! argument `aᵢ = (time_scale · t) · fᵢ`, the embedding is `[cos(a₀..a_{half−1}), sin(a₀..)]`.
//! `train/models.py::timestep_embedding` computes the same thing in PyTorch.

pub const MAX_PERIOD: f32 = 10_000.0;

/// Writes the `dim` values of the embedding of one time into `out`. `dim` must be even.
pub fn sinusoidal(t: f32, time_scale: f32, out: &mut [f32]) {
    let dim = out.len();
    assert!(dim.is_multiple_of(2));
    let half = dim / 2;
    let ts = time_scale * t;
    for i in 0..half {
        // Computed as PyTorch does it in f32: exp(-ln(P) * i / half), then product with t.
        let freq = (-(MAX_PERIOD.ln()) * i as f32 / half as f32).exp();
        let a = ts * freq;
        let (sin, cos) = super::trig::sin_cos(a);
        out[i] = cos;
        out[half + i] = sin;
    }
}
