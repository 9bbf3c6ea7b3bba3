//! Time grids for the fixed-step solvers: construction and validation.
//!
//! Grids are validated once up front so that the solver loop can assume a finite, strictly
//! monotone sequence (every step has a nonzero `h` of one sign) and never produces NaN times.

use crate::error::{Error, Result, num};

/// Upper bound on the number of steps of a grid (and of `uniform_grid`): far beyond any useful
/// flow-matching sample, but small enough that a typo cannot request a runaway solve.
pub const MAX_GRID_STEPS: usize = 100_000;

fn invalid(option: &'static str, reason: String) -> Error {
    Error::InvalidOption { option, reason }
}

/// `steps + 1` equally spaced times from `t0` to `t1` (either direction). The end points are
/// exact: `grid[0] == t0` and `grid[steps] == t1` bit for bit, so the solve ends exactly at `t1`.
/// Interior points are computed in f64 as `t0 + (t1 − t0)·i/steps` and rounded once.
pub fn uniform_grid(t0: f32, t1: f32, steps: usize) -> Result<Vec<f32>> {
    if !t0.is_finite() || !t1.is_finite() {
        return Err(invalid("time", format!("t0 = {} and t1 = {} must be finite", num(t0), num(t1))));
    }
    if t0 == t1 {
        return Err(invalid("time", format!("t0 and t1 are both {}; the interval must be non-empty", num(t0))));
    }
    if steps == 0 || steps > MAX_GRID_STEPS {
        return Err(invalid("steps", format!("{steps} is outside 1..={MAX_GRID_STEPS}")));
    }
    let (a, b) = (t0 as f64, t1 as f64);
    let mut grid: Vec<f32> = (0..=steps).map(|i| (a + (b - a) * (i as f64 / steps as f64)) as f32).collect();
    grid[0] = t0;
    grid[steps] = t1;
    // A tiny interval split into many steps can round adjacent points together.
    validate_grid(&grid)?;
    Ok(grid)
}

/// Checks that `grid` has 2..=MAX_GRID_STEPS+1 finite, strictly monotone (all increasing or all
/// decreasing) points. Decreasing grids integrate backwards in time (data → noise).
pub fn validate_grid(grid: &[f32]) -> Result<()> {
    if grid.len() < 2 {
        return Err(invalid("grid", format!("needs at least 2 times (1 step), got {}", grid.len())));
    }
    if grid.len() - 1 > MAX_GRID_STEPS {
        return Err(invalid("grid", format!("{} steps exceed the maximum of {MAX_GRID_STEPS}", grid.len() - 1)));
    }
    if let Some(i) = grid.iter().position(|t| !t.is_finite()) {
        return Err(invalid("grid", format!("time {i} is {} (must be finite)", num(grid[i]))));
    }
    let increasing = grid[1] > grid[0];
    for (i, w) in grid.windows(2).enumerate() {
        let ok = if increasing { w[1] > w[0] } else { w[1] < w[0] };
        if !ok {
            return Err(invalid(
                "grid",
                format!("times must be strictly monotone; t[{i}] = {} then t[{}] = {}", num(w[0]), i + 1, num(w[1])),
            ));
        }
    }
    Ok(())
}
