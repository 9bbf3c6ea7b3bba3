//! Stochastic sampling from the same velocity: Euler–Maruyama on an SDE whose marginals are the
//! flow's.
//!
//! For the linear path `x_t = (1−t)·x0 + t·x1` with `x0 ~ N(0, I)`, the velocity is
//! `v = E[x1 − x0 | x_t]` and `x_t = (1−t)·E[x0|x_t] + t·E[x1|x_t]`, so `E[x0|x_t] = x − t·v` and
//! the score is `∇log p_t(x) = −E[x0|x_t]/(1−t) = (t·v − x)/(1−t)`. Any diffusion `g(t)` then
//! gives an SDE with the flow's marginals:
//!
//! `dx = [v + g²/2 · ∇log p_t] dt + g dW`.
//!
//! We take `g(t)² = ε·(1−t)`: the `1/(1−t)` of the score cancels (no blow-up at the data end),
//! the drift becomes `(1 + ε·t/2)·v − (ε/2)·x`, and the noise fades to zero at t = 1 so the last
//! step lands clean. `ε` is the noise level: 0 is exactly the probability-flow ODE (Euler), larger
//! values inject and then correct more noise (the lecture's SDE-vs-ODE point: the same marginals
//! by different paths; stochastic samplers forgive velocity errors at the cost of more steps).
//!
//! One step from t to t + h, with `z ~ N(0, I)`:
//! `x' = (1 − h·ε/2)·x + h·(1 + ε·t/2)·v(x, t) + sqrt(ε·(1−t)·h)·z` — one `lincomb`.

use super::grid::validate_grid;
use super::{Observer, SolveStats, StepInfo, Velocity};
use crate::backend::Backend;
use crate::error::{Error, Result, num};

/// The largest noise level accepted (beyond it the drift's −ε/2·x term dominates any step size
/// a sampler would use).
pub const MAX_NOISE: f32 = 100.0;

/// The first noise index of step `k`'s draws for sample `row` of an `n`-sample request of
/// `len` values each: (k·n + row)·len of the SDE stream, the same whatever the chunking. In u64:
/// in wasm32 the product passes 2^32 at a million 2-D points × 2048 steps, and a wrapped
/// index would silently reuse an earlier step's noise.
pub fn noise_index(k: usize, n: usize, row: usize, len: usize) -> u64 {
    (k as u64 * n as u64 + row as u64) * len as u64
}

/// Euler–Maruyama over `grid` with noise level `eps`. `noise(k)` gives the standard normal
/// draws of step k (same shape as `x0`); the caller indexes them by sample so that a batch split
/// into chunks draws the numbers of the whole batch.
pub async fn integrate_euler_maruyama<B: Backend>(
    backend: &B,
    grid: &[f32],
    eps: f32,
    x0: B::Tensor,
    velocity: &mut Velocity<'_, B::Tensor>,
    noise: &mut dyn FnMut(usize) -> Result<B::Tensor>,
    on_step: &mut Observer<'_, B::Tensor>,
) -> Result<(B::Tensor, SolveStats)> {
    validate_grid(grid)?;
    if !(eps.is_finite() && (0.0..=MAX_NOISE).contains(&eps)) {
        return Err(Error::InvalidOption {
            option: "noise",
            reason: format!("{} must be in [0, {}]", num(eps), num(MAX_NOISE)),
        });
    }
    let steps = grid.len() - 1;
    on_step(&StepInfo { step: 0, t: grid[0], x: &x0, nfe: 0, total_steps: Some(steps) })?;
    let mut x = x0;
    for (k, w) in grid.windows(2).enumerate() {
        let (t, h) = (w[0], w[1] - w[0]);
        let v = velocity(&x, t)?;
        let sigma = (eps * (1.0 - t).max(0.0) * h).sqrt();
        let drift_x = -h * eps / 2.0;
        let drift_v = h * (1.0 + eps * t / 2.0);
        x = if sigma > 0.0 {
            let z = noise(k)?;
            backend.lincomb(&x, &[(drift_x, &x), (drift_v, &v), (sigma, &z)])?
        } else {
            backend.lincomb(&x, &[(drift_x, &x), (drift_v, &v)])?
        };
        backend.yield_now().await;
        on_step(&StepInfo { step: k + 1, t: w[1], x: &x, nfe: k + 1, total_steps: Some(steps) })?;
    }
    if !backend.all_finite(&x).await? {
        return Err(Error::NonFiniteState { t: grid[steps] });
    }
    Ok((x, SolveStats { nfe: steps, accepted: steps, rejected: 0 }))
}
