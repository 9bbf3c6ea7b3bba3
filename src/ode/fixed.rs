//! Fixed-step integration over an explicit time grid (Euler, midpoint, Heun, RK4, and the
//! multistep Adams–Bashforth 2).
//!
//! Flow-matching samplers are usually run on a small fixed budget of network evaluations, so the
//! grid is the user's knob: `NFE = stages × steps` exactly, known before the solve starts (which
//! is also what a progress bar needs, hence `total_steps`).

use super::grid::validate_grid;
use super::multistep::ab2_step;
use super::tableau::rk_step;
use super::{Method, Observer, SolveStats, StepInfo, Velocity};
use crate::backend::Backend;
use crate::error::{Error, Result};

/// Integrates over `grid` (already matched to a fixed-step solver by the caller).
///
/// Finiteness is checked once, at the end: on the GPU `all_finite` is a readback that would
/// stall the pipeline if done per step, and NaN/inf propagate through every later step anyway.
pub async fn integrate_grid<B: Backend>(
    backend: &B,
    method: Method,
    grid: &[f32],
    x0: B::Tensor,
    velocity: &mut Velocity<'_, B::Tensor>,
    on_step: &mut Observer<'_, B::Tensor>,
) -> Result<(B::Tensor, SolveStats)> {
    validate_grid(grid)?;
    let steps = grid.len() - 1;
    let mut nfe = 0;
    on_step(&StepInfo { step: 0, t: grid[0], x: &x0, nfe, total_steps: Some(steps) })?;
    let mut x = x0;
    // Adams–Bashforth's previous slope and step (unused by the Runge–Kutta methods).
    let mut previous = None;
    for (i, w) in grid.windows(2).enumerate() {
        // f32 → f64 is exact, so h and t + c·h (for c = 1) reproduce the grid points exactly.
        let (t, h) = (w[0] as f64, w[1] as f64 - w[0] as f64);
        x = match method {
            Method::RungeKutta(tab) => rk_step(backend, tab, &x, t, h, None, velocity, &mut nfe)?.x_new,
            Method::AdamsBashforth2 => ab2_step(backend, &x, t, h, &mut previous, velocity, &mut nfe)?,
        };
        backend.yield_now().await;
        on_step(&StepInfo { step: i + 1, t: w[1], x: &x, nfe, total_steps: Some(steps) })?;
    }
    if !backend.all_finite(&x).await? {
        return Err(Error::NonFiniteState { t: grid[steps] });
    }
    Ok((x, SolveStats { nfe, accepted: steps, rejected: 0 }))
}
