//! ODE solvers for `dx/dt = v(x, t)`: the sampler integrates a flow-matching velocity from
//! Gaussian noise at `t = 0` to data at `t = 1` (or backwards, data → noise).
//!
//! - Fixed-step explicit Runge–Kutta methods (Euler, midpoint, Heun, RK4) on an explicit
//!   [`Schedule::Grid`]: the cost is exactly `stages × steps` network evaluations.
//! - The two-step Adams–Bashforth method ([`Solver::Ab2`]) on the same grids: order 2 at one
//!   evaluation per step, as it reuses the previous step's slope (`multistep.rs`).
//! - Adaptive Dormand–Prince 5(4) ([`Solver::Dopri5`]) on [`Schedule::Adaptive`]: the cost follows
//!   the requested tolerance (see `adaptive.rs` for the step control and NFE accounting).
//!
//! Every Runge–Kutta method is a Butcher tableau (`tableau.rs`) run by one generic step routine;
//! that routine and the multistep one do all their arithmetic on the state with
//! [`Backend::lincomb`], so the solvers exist once for CPU and GPU.
//! Time is carried in f64 internally and handed to the velocity as f32.

mod adaptive;
mod fixed;
mod grid;
mod multistep;
pub mod sde;
mod tableau;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Error, Result, num};

pub use grid::{MAX_GRID_STEPS, uniform_grid, validate_grid};

/// An ODE solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// Forward Euler: order 1, 1 evaluation per step.
    Euler,
    /// Explicit midpoint: order 2, 2 evaluations per step.
    Midpoint,
    /// Heun's method (explicit trapezoid): order 2, 2 evaluations per step.
    Heun,
    /// Classical Runge–Kutta: order 4, 4 evaluations per step.
    Rk4,
    /// Two-step Adams–Bashforth on the (possibly non-uniform) grid: order 2 at 1 evaluation per
    /// step, the previous step's slope being reused; the first step is Euler's. At a few-step
    /// budget it takes twice Heun's steps for the same evaluations, and on the shipped digit model
    /// it is the most accurate of these at 8 NFE (`models/README.md`).
    Ab2,
    /// Adaptive Dormand–Prince 5(4): order 5, 6 evaluations per step (FSAL).
    Dopri5,
}

impl Solver {
    pub const ALL: [Solver; 6] =
        [Solver::Euler, Solver::Midpoint, Solver::Heun, Solver::Rk4, Solver::Ab2, Solver::Dopri5];

    /// The lowercase name used by `FromStr`/`Display` (CLI flags, JSON options).
    pub fn name(&self) -> &'static str {
        match self {
            Solver::Euler => "euler",
            Solver::Midpoint => "midpoint",
            Solver::Heun => "heun",
            Solver::Rk4 => "rk4",
            Solver::Ab2 => "ab2",
            Solver::Dopri5 => "dopri5",
        }
    }

    /// Adaptive solvers take [`Schedule::Adaptive`]; the others take [`Schedule::Grid`].
    pub fn is_adaptive(&self) -> bool {
        matches!(self, Solver::Dopri5)
    }

    /// Network evaluations per (attempted) step. For Dopri5 this is the FSAL cost of 6; the
    /// very first step additionally needs `f(x0, t0)` (and the initial step selection one more).
    pub fn stages(&self) -> usize {
        match self.method() {
            Method::RungeKutta(tab) if tab.fsal => tab.stages() - 1,
            Method::RungeKutta(tab) => tab.stages(),
            Method::AdamsBashforth2 => 1,
        }
    }

    /// State-sized slopes a step holds at once, for memory budgets: the evaluations of a step,
    /// and for Adams–Bashforth the previous step's slope as well.
    pub fn held_slopes(&self) -> usize {
        match self.method() {
            Method::AdamsBashforth2 => 2,
            Method::RungeKutta(_) => self.stages(),
        }
    }

    /// Order of accuracy: the global error scales as `h^order`.
    pub fn order(&self) -> u32 {
        match self.method() {
            Method::RungeKutta(tab) => tab.order,
            Method::AdamsBashforth2 => 2,
        }
    }

    fn method(&self) -> Method {
        Method::RungeKutta(match self {
            Solver::Euler => &tableau::EULER,
            Solver::Midpoint => &tableau::MIDPOINT,
            Solver::Heun => &tableau::HEUN,
            Solver::Rk4 => &tableau::RK4,
            Solver::Dopri5 => &tableau::DOPRI5,
            Solver::Ab2 => return Method::AdamsBashforth2,
        })
    }
}

/// How a solver steps: a one-step Runge–Kutta method given by its tableau, or a multistep one.
#[derive(Debug, Clone, Copy)]
enum Method {
    RungeKutta(&'static tableau::Tableau),
    AdamsBashforth2,
}

impl fmt::Display for Solver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Solver {
    type Err = Error;

    /// Case-insensitive solver name.
    fn from_str(s: &str) -> Result<Self> {
        Solver::ALL.into_iter().find(|solver| solver.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
            Error::InvalidOption {
                option: "solver",
                reason: format!("unknown solver `{s}` (expected one of {})", Solver::ALL.map(|s| s.name()).join(", ")),
            }
        })
    }
}

/// Where the solver steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Explicit time grid t_0..t_N (strictly monotone, finite; may be DEcreasing to integrate
    /// backwards, e.g. data→noise). Used by the fixed-step solvers.
    Grid(Vec<f32>),
    /// Error-controlled steps from `t0` to `t1`. Used by Dopri5.
    Adaptive(AdaptiveOptions),
}

/// Options of the adaptive solver.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveOptions {
    pub t0: f32,
    /// End time, reached exactly (either direction).
    pub t1: f32,
    /// Relative tolerance on the local error (per component, scaled by `max(|x_old|, |x_new|)`).
    pub rtol: f32,
    /// Absolute tolerance on the local error.
    pub atol: f32,
    /// Bound on attempted steps (accepted + rejected).
    pub max_steps: usize,
    /// First step size magnitude; `None` selects it automatically (costs one evaluation).
    pub initial_step: Option<f32>,
}

impl Default for AdaptiveOptions {
    /// Noise (t = 0) to data (t = 1) at tolerances that are tight for f32 samples but not
    /// below the f32 resolution of the state.
    fn default() -> Self {
        Self { t0: 0.0, t1: 1.0, rtol: 1e-5, atol: 1e-5, max_steps: 10_000, initial_step: None }
    }
}

impl AdaptiveOptions {
    /// Checks every field; errors are `Error::InvalidOption`.
    pub fn validate(&self) -> Result<()> {
        let bad = |option: &'static str, reason: String| Err(Error::InvalidOption { option, reason });
        if !self.t0.is_finite() || !self.t1.is_finite() {
            return bad("time", format!("t0 = {} and t1 = {} must be finite", num(self.t0), num(self.t1)));
        }
        if self.t0 == self.t1 {
            return bad("time", format!("t0 and t1 are both {}; the interval must be non-empty", num(self.t0)));
        }
        if !(self.rtol.is_finite() && self.rtol > 0.0) {
            return bad("rtol", format!("{} must be finite and > 0", num(self.rtol)));
        }
        if !(self.atol.is_finite() && self.atol > 0.0) {
            return bad("atol", format!("{} must be finite and > 0", num(self.atol)));
        }
        if self.max_steps == 0 {
            return bad("max_steps", "must be at least 1".into());
        }
        if let Some(h) = self.initial_step
            && !(h.is_finite() && h > 0.0)
        {
            return bad("initial_step", format!("{} must be finite and > 0 (its sign follows t1 - t0)", num(h)));
        }
        Ok(())
    }
}

/// The velocity field `v(x, t)` as the solvers take it (internal shorthand).
type Velocity<'a, T> = dyn FnMut(&T, f32) -> Result<T> + 'a;
/// The per-step observer as the solvers take it (internal shorthand).
type Observer<'a, T> = dyn FnMut(&StepInfo<'_, T>) -> Result<()> + 'a;

/// Cost and outcome of a solve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SolveStats {
    /// Number of velocity evaluations.
    pub nfe: usize,
    /// Steps taken (all of them, for fixed grids).
    pub accepted: usize,
    /// Steps rejected by the adaptive error control (0 for fixed grids).
    pub rejected: usize,
}

/// What the observer sees: step 0 is the initial state at t0, then one call per accepted step.
#[derive(Debug)]
pub struct StepInfo<'a, T> {
    /// 0 for the initial state, then 1, 2, … per accepted step.
    pub step: usize,
    /// Time of `x` (the last call has exactly the end time).
    pub t: f32,
    pub x: &'a T,
    /// Velocity evaluations so far.
    pub nfe: usize,
    /// Number of steps for fixed grids; `None` for adaptive solves.
    pub total_steps: Option<usize>,
}

/// Integrates dx/dt = velocity(x, t). `on_step` is called once with step 0 at t0 (the initial
/// state) and after every accepted step; returning Err (e.g. Error::Cancelled) aborts the solve
/// with that error.
///
/// Fixed-step solvers require [`Schedule::Grid`], Dopri5 requires [`Schedule::Adaptive`];
/// a mismatch or an invalid schedule is `Error::InvalidOption`. A non-finite final state (or,
/// adaptively, a non-finite accepted state or error estimate) is `Error::NonFiniteState`; an
/// exhausted step budget is `Error::MaxStepsExceeded`. Errors from `velocity` are passed through.
///
/// This blocking form is for native code; the browser awaits [`integrate_async`].
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::type_complexity)] // spelled out on purpose: this is the public contract
pub fn integrate<B: Backend>(
    backend: &B,
    solver: Solver,
    schedule: &Schedule,
    x0: B::Tensor,
    velocity: &mut dyn FnMut(&B::Tensor, f32) -> Result<B::Tensor>,
    on_step: &mut dyn FnMut(&StepInfo<'_, B::Tensor>) -> Result<()>,
) -> Result<(B::Tensor, SolveStats)> {
    pollster::block_on(integrate_async(backend, solver, schedule, x0, velocity, on_step))
}

/// [`integrate`] as a future: readbacks (Dopri5's error norm, the finiteness check) await the
/// backend instead of blocking.
#[allow(clippy::type_complexity)]
pub async fn integrate_async<B: Backend>(
    backend: &B,
    solver: Solver,
    schedule: &Schedule,
    x0: B::Tensor,
    velocity: &mut dyn FnMut(&B::Tensor, f32) -> Result<B::Tensor>,
    on_step: &mut dyn FnMut(&StepInfo<'_, B::Tensor>) -> Result<()>,
) -> Result<(B::Tensor, SolveStats)> {
    match (solver.is_adaptive(), schedule) {
        (false, Schedule::Grid(grid)) => {
            fixed::integrate_grid(backend, solver.method(), grid, x0, velocity, on_step).await
        }
        (true, Schedule::Adaptive(opts)) => {
            opts.validate()?;
            adaptive::integrate_dopri5(backend, opts, x0, velocity, on_step).await
        }
        (false, Schedule::Adaptive(_)) => Err(Error::InvalidOption {
            option: "schedule",
            reason: format!("{solver} is a fixed-step solver and needs a time grid, not adaptive options"),
        }),
        (true, Schedule::Grid(_)) => Err(Error::InvalidOption {
            option: "schedule",
            reason: format!("{solver} is adaptive and needs adaptive options (t0, t1, rtol, atol), not a grid"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Solver::ALL {
            assert_eq!(s.to_string().parse::<Solver>().unwrap(), s);
            assert_eq!(s.name().to_uppercase().parse::<Solver>().unwrap(), s);
        }
        assert!(matches!("rk45".parse::<Solver>(), Err(Error::InvalidOption { option: "solver", .. })));
    }

    #[test]
    fn solver_properties() {
        let table: Vec<(Solver, bool, usize, u32)> =
            Solver::ALL.iter().map(|s| (*s, s.is_adaptive(), s.stages(), s.order())).collect();
        assert_eq!(
            table,
            vec![
                (Solver::Euler, false, 1, 1),
                (Solver::Midpoint, false, 2, 2),
                (Solver::Heun, false, 2, 2),
                (Solver::Rk4, false, 4, 4),
                (Solver::Ab2, false, 1, 2),
                (Solver::Dopri5, true, 6, 5),
            ]
        );
    }

    #[test]
    fn uniform_grid_is_exact_at_the_ends() {
        let g = uniform_grid(0.0, 1.0, 3).unwrap();
        assert_eq!(g, vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
        let g = uniform_grid(1.0, 0.1, 7).unwrap();
        assert_eq!((g[0], g[7]), (1.0, 0.1));
        assert!(g.windows(2).all(|w| w[1] < w[0]));
        assert!(uniform_grid(0.0, 1.0, 0).is_err());
        assert!(uniform_grid(0.0, 1.0, MAX_GRID_STEPS + 1).is_err());
        assert!(uniform_grid(0.5, 0.5, 4).is_err());
        assert!(uniform_grid(0.0, f32::NAN, 4).is_err());
        // 1e-43 is a subnormal of ~71 ulps: 100 steps cannot all be distinct f32 values.
        assert!(uniform_grid(0.0, 1e-43, 100).is_err());
    }
}
