//! The two-step Adams–Bashforth method on a variable grid.
//!
//! A multistep method reuses the slopes of earlier steps instead of evaluating new stages, so it
//! reaches order 2 at one network evaluation per step. That matters at the few-step budgets of
//! flow-matching samplers: at 8 NFE it takes 8 steps where Heun takes 4, and on the shipped digit
//! model its samples are far closer to the converged solve's (`models/README.md`, "mnist").
//!
//! With step sizes h_{n−1}, h_n and r = h_n / h_{n−1} (Hairer, Nørsett & Wanner, *Solving ODEs
//! I*, III.5, variable-step Adams methods):
//!
//! x_{n+1} = x_n + h_n·((1 + r/2)·k_n − (r/2)·k_{n−1}),   k_n = v(x_n, t_n).
//!
//! The first step has no previous slope and is Euler's; its O(h²) local error keeps the
//! method's global order 2 (tested in `tests/ode.rs`).

use super::Velocity;
use crate::backend::Backend;
use crate::error::Result;

/// One Adams–Bashforth 2 step from `(x, t)` with signed step `h`: one evaluation of `velocity`
/// (counted in `nfe`), then x + h·Σ βᵢ·kᵢ with the weights formed in f64 and rounded once.
/// `previous` holds the last step's slope and signed step size (none before the first step),
/// and is replaced by this step's.
pub fn ab2_step<B: Backend>(
    backend: &B,
    x: &B::Tensor,
    t: f64,
    h: f64,
    previous: &mut Option<(B::Tensor, f64)>,
    velocity: &mut Velocity<'_, B::Tensor>,
    nfe: &mut usize,
) -> Result<B::Tensor> {
    let k = velocity(x, t as f32)?;
    *nfe += 1;
    let x_new = match previous.take() {
        None => backend.lincomb(x, &[(h as f32, &k)])?,
        Some((k_prev, h_prev)) => {
            let r = h / h_prev;
            backend.lincomb(x, &[((h * (1.0 + 0.5 * r)) as f32, &k), ((-h * 0.5 * r) as f32, &k_prev)])?
        }
    };
    *previous = Some((k, h));
    Ok(x_new)
}
