//! Adaptive Dormand–Prince 5(4) with the step-size control of Hairer, Nørsett & Wanner,
//! *Solving Ordinary Differential Equations I*, §II.4 (as in their `DOPRI5` code and SciPy's
//! `RK45`).
//!
//! Per attempted step from `(x, t)` with signed step `h`:
//! 1. the 7 stages give the 5th-order `x_new` (the last stage is evaluated *at* `x_new`: FSAL);
//! 2. the local error estimate `err = x_new − x̂ = h·Σ (b_i − b̂_i)·k_i` is formed directly as one
//!    `lincomb` on a zero tensor — not as the difference of two nearly equal f32 states, which
//!    would cancel away most of the estimate's digits at tight tolerances;
//! 3. `e = scaled_rms_error(err, x, x_new, rtol, atol)` = RMS of `err_i / (atol + rtol·max(|x_i|,
//!    |x_new,i|))`; the step is accepted when `e ≤ 1`;
//! 4. the next step is `h · clamp(0.9 · e^(−1/5), 0.2, 10)` — the exponent is 1/(q+1) with q = 4
//!    the order of the embedded solution that `e` measures; after a rejection the factor is
//!    capped at 1 until a step is accepted (HNW: no growth right after a rejection), which
//!    prevents oscillating between rejection and over-eager growth.
//!
//! ## NFE accounting (asserted by the tests)
//! - one evaluation `f(x0, t0)` at the start;
//! - one more for the automatic initial step selection when `initial_step` is `None`;
//! - exactly 6 per attempted step, accepted or rejected: stage 1 is always known (after an
//!   accepted step it is the FSAL slope `f(x_new, t + h)`; after a rejection `(x, t)` did not
//!   change, so it is still valid).
//!
//! So `nfe = 1 + [initial_step is None] + 6·(accepted + rejected)`.
//!
//! `max_steps` bounds the attempted steps (accepted + rejected), like HNW's `NMAX`, so a
//! diverging or absurdly stiff problem always terminates.

use super::tableau::{DOPRI5, combine, rk_step};
use super::{AdaptiveOptions, Observer, SolveStats, StepInfo, Velocity};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Safety factor: aim a bit below the tolerance so that the next step is likely accepted.
const SAFETY: f64 = 0.9;
/// Smallest and largest step-size ratio between consecutive steps.
const FAC_MIN: f64 = 0.2;
const FAC_MAX: f64 = 10.0;
/// 1/(q+1) with q = 4, the order of the embedded solution.
const ERR_EXPONENT: f64 = 1.0 / 5.0;

/// x^p for x > 0 as exp(p·ln x): within a few ulps of `powf`, and the browser build then needs
/// no libm `pow` (~2 KB of wasm) besides the `exp` and `ln` it has anyway.
fn pow_pos(x: f64, p: f64) -> f64 {
    (p * x.ln()).exp()
}

fn step_factor(err: f64, fac_max: f64) -> f64 {
    if err == 0.0 { fac_max } else { crate::pointwise::clamp(SAFETY * pow_pos(err, -ERR_EXPONENT), FAC_MIN, fac_max) }
}

/// Hairer–Nørsett–Wanner's automatic initial step (§II.4, "Starting step size"; SciPy's
/// `select_initial_step`), with RMS norms scaled by `sc = atol + rtol·|x0|`:
/// `d0 = ‖x0‖`, `d1 = ‖f0‖`, trial `h0 = 0.01·d0/d1` (or 1e-6 when either is tiny), one explicit
/// Euler step to get `f1 = f(x0 + h0·f0, t0 + h0)`, `d2 = ‖f1 − f0‖/h0` (a second-derivative
/// estimate), and `h1 = (0.01 / max(d1, d2))^(1/(q+1))` so that the first step's local error is
/// about 1% of the tolerance; the result is `min(100·h0, h1, |t1 − t0|)` as a magnitude.
#[allow(clippy::too_many_arguments)]
async fn initial_step<B: Backend>(
    backend: &B,
    x0: &B::Tensor,
    f0: &B::Tensor,
    t0: f64,
    dir: f64,
    span: f64,
    opts: &AdaptiveOptions,
    velocity: &mut Velocity<'_, B::Tensor>,
    nfe: &mut usize,
) -> Result<f64> {
    let (rtol, atol) = (opts.rtol, opts.atol);
    let d0 = backend.scaled_rms_error(x0, x0, x0, rtol, atol).await? as f64;
    let d1 = backend.scaled_rms_error(f0, x0, x0, rtol, atol).await? as f64;
    let h0 = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 }.min(span);
    let x1 = backend.lincomb(x0, &[((dir * h0) as f32, f0)])?;
    let f1 = velocity(&x1, (t0 + dir * h0) as f32)?;
    *nfe += 1;
    let df = backend.lincomb(&f1, &[(-1.0, f0)])?;
    let d2 = backend.scaled_rms_error(&df, x0, x0, rtol, atol).await? as f64 / h0;
    let h1 = if d1 <= 1e-15 && d2 <= 1e-15 { (h0 * 1e-3).max(1e-6) } else { pow_pos(0.01 / d1.max(d2), ERR_EXPONENT) };
    let h = (100.0 * h0).min(h1).min(span);
    // A non-finite velocity would make h NaN: fall back to the trial step and let the first
    // step's own finiteness checks report the problem.
    Ok(if h.is_finite() && h > 0.0 { h } else { h0 })
}

/// Integrates with adaptive Dopri5 from `opts.t0` to exactly `opts.t1` (either direction).
/// Options are validated by the caller.
pub async fn integrate_dopri5<B: Backend>(
    backend: &B,
    opts: &AdaptiveOptions,
    x0: B::Tensor,
    velocity: &mut Velocity<'_, B::Tensor>,
    on_step: &mut Observer<'_, B::Tensor>,
) -> Result<(B::Tensor, SolveStats)> {
    let tab = &DOPRI5;
    let b_hat = tab.b_hat.expect("Dopri5 has embedded weights");
    // Error weights e_i = b_i − b̂_i in f64, so err = h·Σ e_i k_i.
    let e: Vec<f64> = tab.b.iter().zip(b_hat).map(|(b, bh)| b - bh).collect();

    let (t0, t1) = (opts.t0 as f64, opts.t1 as f64);
    let dir = (t1 - t0).signum();
    let span = (t1 - t0).abs();
    let mut stats = SolveStats::default();
    on_step(&StepInfo { step: 0, t: opts.t0, x: &x0, nfe: 0, total_steps: None })?;

    let zeros = backend.upload(&Tensor::zeros(backend.shape(&x0).to_vec())?)?;
    let mut x = x0;
    let mut t = t0;
    let mut k1 = velocity(&x, opts.t0)?;
    stats.nfe += 1;
    // `h` is a magnitude; `dir` gives the direction.
    let mut h = match opts.initial_step {
        Some(h) => (h as f64).min(span),
        None => initial_step(backend, &x, &k1, t0, dir, span, opts, velocity, &mut stats.nfe).await?,
    };
    let mut fac_max = FAC_MAX;

    loop {
        backend.yield_now().await;
        let attempts = stats.accepted + stats.rejected;
        if attempts >= opts.max_steps {
            return Err(Error::MaxStepsExceeded { steps: attempts, t: t as f32 });
        }
        // Stretch (or cut) the step to land exactly on t1 instead of leaving a sliver
        // (the 1.01 follows HNW's code).
        let remaining = (t1 - t) * dir;
        let last = 1.01 * h >= remaining;
        if last {
            h = remaining;
        }
        // k1 is moved into the step and comes back as step.k[0] (the backend tensor type need
        // not be Clone).
        let step = rk_step(backend, tab, &x, t, dir * h, Some(k1), velocity, &mut stats.nfe)?;
        let err = combine(backend, &zeros, dir * h, &e, &step.k)?.expect("Dopri5 has nonzero error weights");
        let err_norm = backend.scaled_rms_error(&err, &x, &step.x_new, opts.rtol, opts.atol).await? as f64;
        let t_new = if last { t1 } else { t + dir * h };
        if !err_norm.is_finite() {
            return Err(Error::NonFiniteState { t: t_new as f32 });
        }
        if err_norm <= 1.0 {
            if !backend.all_finite(&step.x_new).await? {
                return Err(Error::NonFiniteState { t: t_new as f32 });
            }
            stats.accepted += 1;
            let mut k = step.k;
            k1 = k.pop().expect("seven stages"); // FSAL: f(x_new, t_new)
            x = step.x_new;
            t = t_new;
            on_step(&StepInfo { step: stats.accepted, t: t as f32, x: &x, nfe: stats.nfe, total_steps: None })?;
            if last {
                return Ok((x, stats));
            }
            h = (h * step_factor(err_norm, fac_max)).min(span);
            fac_max = FAC_MAX;
        } else {
            stats.rejected += 1;
            // (x, t) are unchanged, so f(x, t) is still the first stage of the retry.
            k1 = step.k.into_iter().next().expect("seven stages");
            h *= step_factor(err_norm, 1.0);
            fac_max = 1.0;
        }
    }
}
