//! Explicit Runge–Kutta methods as Butcher tableaux, and the one generic step routine that runs
//! any of them on a [`Backend`].
//!
//! Writing every method as data (a, b, c, b̂) means there is exactly one place where stages are
//! formed and combined, so the GPU backend's `lincomb` kernel is the only arithmetic on the state
//! and every solver gets the same treatment of time, zero coefficients and FSAL.
//!
//! Coefficients are kept in f64 and multiplied by the step `h` in f64 before being rounded once
//! to the f32 `lincomb` weight, so Dormand–Prince's long fractions lose nothing extra.

use super::Velocity;
use crate::backend::Backend;
use crate::error::Result;

/// An explicit Runge–Kutta method: `k_i = f(x + h·Σ_{j<i} a_ij k_j, t + c_i h)`,
/// `x_new = x + h·Σ b_i k_i`, and for embedded pairs `x̂ = x + h·Σ b̂_i k_i`.
#[derive(Debug)]
pub struct Tableau {
    /// Strictly lower-triangular `a`: row `i` holds `a_i0 .. a_i(i-1)`.
    pub a: &'static [&'static [f64]],
    pub b: &'static [f64],
    pub c: &'static [f64],
    /// Embedded lower-order weights for error estimation (adaptive methods only).
    pub b_hat: Option<&'static [f64]>,
    /// Order of the `b` solution.
    pub order: u32,
    /// First Same As Last: the last stage is evaluated at `x_new` (its `a` row equals `b` and
    /// `c = 1`), so its `k` is the next step's first stage and `x_new` is that stage's state.
    pub fsal: bool,
}

impl Tableau {
    pub fn stages(&self) -> usize {
        self.b.len()
    }
}

/// Forward Euler, order 1.
pub static EULER: Tableau = Tableau { a: &[&[]], b: &[1.0], c: &[0.0], b_hat: None, order: 1, fsal: false };

/// Explicit midpoint, order 2: one half step to the midpoint, then a full step with its slope.
pub static MIDPOINT: Tableau =
    Tableau { a: &[&[], &[0.5]], b: &[0.0, 1.0], c: &[0.0, 0.5], b_hat: None, order: 2, fsal: false };

/// Heun (explicit trapezoid), order 2: average of the slopes at both ends of an Euler step.
pub static HEUN: Tableau =
    Tableau { a: &[&[], &[1.0]], b: &[0.5, 0.5], c: &[0.0, 1.0], b_hat: None, order: 2, fsal: false };

/// The classical fourth-order Runge–Kutta method.
pub static RK4: Tableau = Tableau {
    a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
    b: &[1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
    c: &[0.0, 0.5, 0.5, 1.0],
    b_hat: None,
    order: 4,
    fsal: false,
};

/// Dormand–Prince 5(4) (Dormand & Prince 1980; Hairer, Nørsett & Wanner, *Solving ODEs I*,
/// Table II.5.2): 7 stages, 5th-order solution `b` (local extrapolation), embedded 4th-order `b̂`
/// for the error estimate, FSAL so an accepted step costs 6 new evaluations.
pub static DOPRI5: Tableau = Tableau {
    a: &[
        &[],
        &[1.0 / 5.0],
        &[3.0 / 40.0, 9.0 / 40.0],
        &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
        &[19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
        &[9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0],
        &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
    ],
    b: &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0.0],
    c: &[0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0],
    b_hat: Some(&[
        5179.0 / 57600.0,
        0.0,
        7571.0 / 16695.0,
        393.0 / 640.0,
        -92097.0 / 339200.0,
        187.0 / 2100.0,
        1.0 / 40.0,
    ]),
    order: 5,
    fsal: true,
};

/// The result of one Runge–Kutta step: the new state and every stage slope `k_i`.
pub struct RkStep<T> {
    pub x_new: T,
    pub k: Vec<T>,
}

/// `x + Σ (h·w_i)·k_i` over the nonzero weights (zero weights are skipped so that e.g. RK4's
/// stages and Dopri5's `b_2 = 0` cost no bandwidth). With no nonzero weight the result is `x`
/// itself, returned as `None` so the caller can borrow `x` instead of copying it.
pub fn combine<B: Backend>(
    backend: &B,
    x: &B::Tensor,
    h: f64,
    weights: &[f64],
    k: &[B::Tensor],
) -> Result<Option<B::Tensor>> {
    let terms: Vec<(f32, &B::Tensor)> =
        weights.iter().zip(k).filter(|(w, _)| **w != 0.0).map(|(w, kj)| ((h * w) as f32, kj)).collect();
    if terms.is_empty() { Ok(None) } else { backend.lincomb(x, &terms).map(Some) }
}

/// One explicit Runge–Kutta step of `tab` from `(x, t)` with signed step `h`.
///
/// `k1`, when given, is the already-known slope `f(x, t)` (FSAL reuse, or a slope computed for
/// the initial step-size selection) and is not re-evaluated. `nfe` is incremented per call of
/// `velocity`. Stage times are formed in f64 as `t + c_i·h` and rounded once, so a stage with
/// `c_i = 1` sees exactly the f32 end time of a grid step.
#[allow(clippy::too_many_arguments)]
pub fn rk_step<B: Backend>(
    backend: &B,
    tab: &Tableau,
    x: &B::Tensor,
    t: f64,
    h: f64,
    k1: Option<B::Tensor>,
    velocity: &mut Velocity<'_, B::Tensor>,
    nfe: &mut usize,
) -> Result<RkStep<B::Tensor>> {
    let s = tab.stages();
    let mut k: Vec<B::Tensor> = Vec::with_capacity(s);
    let mut last_state = None;
    let known = k1.is_some();
    k.extend(k1);
    for i in usize::from(known)..s {
        let state = combine(backend, x, h, tab.a[i], &k)?;
        let ki = velocity(state.as_ref().unwrap_or(x), (t + tab.c[i] * h) as f32)?;
        *nfe += 1;
        if tab.fsal && i == s - 1 {
            last_state = state;
        }
        k.push(ki);
    }
    let x_new = match last_state {
        // FSAL: the last stage's state is x + h·Σ b_j k_j already.
        Some(xn) => xn,
        None => match combine(backend, x, h, tab.b, &k)? {
            Some(xn) => xn,
            None => backend.lincomb(x, &[])?,
        },
    };
    Ok(RkStep { x_new, k })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_structure(tab: &Tableau) {
        let s = tab.stages();
        assert_eq!(tab.a.len(), s);
        assert_eq!(tab.c.len(), s);
        for (i, row) in tab.a.iter().enumerate() {
            assert_eq!(row.len(), i, "a must be strictly lower triangular");
            let sum: f64 = row.iter().sum();
            assert!((sum - tab.c[i]).abs() < 1e-14, "row {i}: Σa = {sum} but c = {}", tab.c[i]);
        }
        if tab.fsal {
            assert_eq!(tab.a[s - 1], &tab.b[..s - 1], "FSAL: last a row equals b");
            assert_eq!(tab.b[s - 1], 0.0);
            assert_eq!(tab.c[s - 1], 1.0);
        }
    }

    /// Order conditions (Butcher) for weights `b` up to order 5 on the tree set listed in
    /// Hairer–Nørsett–Wanner Table II.2.2 (orders 1..=4 complete; order 5 partly).
    fn order_conditions(tab: &Tableau, b: &[f64], p: u32) {
        let s = b.len();
        let c = tab.c;
        let a = |i: usize, j: usize| if j < i { tab.a[i][j] } else { 0.0 };
        let ac: Vec<f64> = (0..s).map(|i| (0..s).map(|j| a(i, j) * c[j]).sum()).collect();
        let ac2: Vec<f64> = (0..s).map(|i| (0..s).map(|j| a(i, j) * c[j] * c[j]).sum()).collect();
        let aac: Vec<f64> = (0..s).map(|i| (0..s).map(|j| a(i, j) * ac[j]).sum()).collect();
        let sum = |f: &dyn Fn(usize) -> f64| (0..s).map(f).sum::<f64>();
        let mut conds: Vec<(&str, f64, f64)> = vec![("Σb", sum(&|i| b[i]), 1.0)];
        if p >= 2 {
            conds.push(("Σbc", sum(&|i| b[i] * c[i]), 0.5));
        }
        if p >= 3 {
            conds.push(("Σbc²", sum(&|i| b[i] * c[i] * c[i]), 1.0 / 3.0));
            conds.push(("Σbac", sum(&|i| b[i] * ac[i]), 1.0 / 6.0));
        }
        if p >= 4 {
            conds.push(("Σbc³", sum(&|i| b[i] * c[i].powi(3)), 0.25));
            conds.push(("Σbcac", sum(&|i| b[i] * c[i] * ac[i]), 0.125));
            conds.push(("Σbac²", sum(&|i| b[i] * ac2[i]), 1.0 / 12.0));
            conds.push(("Σbaac", sum(&|i| b[i] * aac[i]), 1.0 / 24.0));
        }
        if p >= 5 {
            conds.push(("Σbc⁴", sum(&|i| b[i] * c[i].powi(4)), 0.2));
            conds.push(("Σbc²ac", sum(&|i| b[i] * c[i] * c[i] * ac[i]), 0.1));
            conds.push(("Σb(ac)²", sum(&|i| b[i] * ac[i] * ac[i]), 0.05));
            conds.push(("Σbcaac", sum(&|i| b[i] * c[i] * aac[i]), 1.0 / 30.0));
        }
        for (name, got, want) in conds {
            assert!((got - want).abs() < 1e-13, "order {p} condition {name}: {got} vs {want}");
        }
    }

    #[test]
    fn tableaux_satisfy_their_order_conditions() {
        for tab in [&EULER, &MIDPOINT, &HEUN, &RK4, &DOPRI5] {
            check_structure(tab);
            order_conditions(tab, tab.b, tab.order);
        }
        order_conditions(&DOPRI5, DOPRI5.b_hat.unwrap(), 4);
    }

    #[test]
    fn methods_do_not_exceed_their_stated_order() {
        // Each fixed method fails the first condition of the next order: its order is exact.
        let next = |tab: &Tableau| {
            let s = tab.b.len();
            let c = tab.c;
            match tab.order {
                1 => (0..s).map(|i| tab.b[i] * c[i]).sum::<f64>() - 0.5,
                2 => (0..s).map(|i| tab.b[i] * c[i] * c[i]).sum::<f64>() - 1.0 / 3.0,
                4 => (0..s).map(|i| tab.b[i] * c[i].powi(4)).sum::<f64>() - 0.2,
                _ => unreachable!(),
            }
        };
        // Euler: Σbc = 0; midpoint: Σbc² = 1/4; Heun: Σbc² = 1/2; RK4: Σbc⁴ = 5/24 ≠ 1/5.
        for tab in [&EULER, &MIDPOINT, &HEUN, &RK4] {
            assert!(next(tab).abs() > 1e-3, "{tab:?}");
        }
        // The embedded Dopri5 weights are genuinely 4th order (else the error estimate is zero).
        let bh = DOPRI5.b_hat.unwrap();
        let c4: f64 = bh.iter().zip(DOPRI5.c).map(|(b, c)| b * c.powi(4)).sum();
        assert!((c4 - 0.2).abs() > 1e-6);
    }
}
