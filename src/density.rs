//! The model's log-density, by the instantaneous change of variables.
//!
//! Along the flow `dx/dt = v(x, t)`, `d/dt log p_t(x_t) = −div v(x_t, t)`. So from a point
//! `x1` at t = 1, integrating the augmented state `[x, a]` with `d[x, a]/dt = [v, div v]`
//! backwards to t = 0 (a(1) = 0) gives the noise point `x0` and `a(0) = −∫₀¹ div v dt`, and
//!
//! `log p_1(x1) = log N(x0; 0, I) + a(0)`.
//!
//! The divergence is exact (forward-mode tangents through the MLP, `mlp::forward_with_divergence`),
//! so the only error is the ODE solver's. Everything runs on the sampler's backend (on the GPU:
//! `silu_tangent` and the usual kernels); the augmented state is one [n, d + 1] tensor, split
//! and joined with `linear` by 0/1 matrices (exact) and `concat_axis1`.

use crate::backend::Backend;
use crate::cpu::Activation;
use crate::error::{Error, Result};
use crate::memory;
use crate::ode::{self, Schedule, Solver};
use crate::sampler::Sampler;
use crate::tensor::Tensor;

/// `velocity and divergence ([n, d], [n, 1]) at (x, t)`.
pub type VelocityDivergence<'a, T> = dyn FnMut(&T, f32) -> Result<(T, T)> + 'a;

/// log p_1 at the rows of `x` ([n, d] on the backend), integrating `[x, a]` from t = 1 to t = 0
/// with `solver` over `steps` uniform steps.
pub async fn log_density_with<B: Backend>(
    b: &B,
    x: &B::Tensor,
    solver: Solver,
    steps: usize,
    vdiv: &mut VelocityDivergence<'_, B::Tensor>,
) -> Result<Vec<f32>> {
    if solver.is_adaptive() {
        return Err(Error::InvalidOption { option: "solver", reason: "log-densities use a fixed-step solver".into() });
    }
    let shape = b.shape(x).to_vec();
    let [n, d] = shape[..] else {
        return Err(Error::Shape { op: "log_density", detail: format!("points {shape:?}, want [n, d]") });
    };
    // Selection matrices: [x, a] → x is [d, d+1] (identity, then a zero column); → a is [1, d+1].
    let pick_x: Vec<f32> = (0..d).flat_map(|r| (0..=d).map(move |c| f32::from(u8::from(r == c)))).collect();
    let pick_x = b.upload(&Tensor::new(vec![d, d + 1], pick_x)?)?;
    let mut pick_a = vec![0.0; d + 1];
    pick_a[d] = 1.0;
    let pick_a = b.upload(&Tensor::new(vec![1, d + 1], pick_a)?)?;
    let zeros = b.upload(&Tensor::zeros(vec![n, 1])?)?;
    let z1 = b.concat_axis1(x, &zeros)?;
    let mut augmented = |z: &B::Tensor, t: f32| -> Result<B::Tensor> {
        let x = b.linear(z, &pick_x, None, Activation::None)?;
        let (v, div) = vdiv(&x, t)?;
        b.concat_axis1(&v, &div)
    };
    let grid = ode::uniform_grid(1.0, 0.0, steps)?;
    let (z0, _) = ode::integrate_async(b, solver, &Schedule::Grid(grid), z1, &mut augmented, &mut |_| Ok(())).await?;
    let x0 = b.download(&b.linear(&z0, &pick_x, None, Activation::None)?).await?;
    let a0 = b.download(&b.linear(&z0, &pick_a, None, Activation::None)?).await?;
    let log_norm = -0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
    Ok(x0
        .data()
        .chunks_exact(d)
        .zip(a0.data())
        .map(|(p, &a)| (log_norm - 0.5 * p.iter().map(|&v| v as f64 * v as f64).sum::<f64>() + a as f64) as f32)
        .collect())
}

impl<B: Backend> Sampler<B> {
    /// The model's log-density log p_1 at the points `x` ([n, d], host), by the exact
    /// divergence integrated with `solver` over `steps` steps (RK4 with 16–32 steps is accurate
    /// to ~1e-3 for the shipped 2-D models). Batches are split to the backend's buffer limits.
    pub async fn log_density(&self, x: &Tensor, solver: Solver, steps: usize) -> Result<Vec<f32>> {
        let net = self.network();
        let b = self.backend();
        let [n, d] = x.shape()[..] else {
            return Err(Error::Shape { op: "log_density", detail: format!("points {:?}, want [n, d]", x.shape()) });
        };
        let width = match &net.config.arch {
            crate::model::ArchConfig::Mlp(c) => c.width,
            _ => 0,
        };
        // The widest tensor per row: the d tangents side by side, [n, d·width]; a layer holds the
        // primal and the tangents of its input and output.
        let widest = (d * width).max(net.config.sample_len() + 1);
        let footprint =
            memory::Footprint { im2col_values: 0, forward_values: 4 * (widest + width), largest_tensor: widest };
        let limits = self.memory_limits();
        let plan = memory::SolvePlan::new(&footprint, &limits, d + 1, 1, solver.held_slopes() + 5, 0);
        let rows = plan.max_rows(&limits)?.min(n).max(1);
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(rows) {
            let end = (start + rows).min(n);
            let chunk = b.upload(&Tensor::new(vec![end - start, d], x.data()[start * d..end * d].to_vec())?)?;
            let mut vdiv = |x: &B::Tensor, t: f32| net.velocity_and_divergence(b, x, t);
            out.extend(log_density_with(b, &chunk, solver, steps, &mut vdiv).await?);
        }
        Ok(out)
    }

    /// `log_density` on a `width`×`height` grid of cell centres over `range` (row-major, the
    /// first row at the top, y up), for a heat map.
    pub async fn log_density_grid(
        &self,
        range: [[f32; 2]; 2],
        width: usize,
        height: usize,
        steps: usize,
    ) -> Result<Vec<f32>> {
        if width == 0 || height == 0 || width * height > 1 << 20 {
            return Err(Error::InvalidOption {
                option: "resolution",
                reason: format!("{width}×{height} must be 1..=2^20 cells"),
            });
        }
        let pts = crate::render::cell_centres(range, width, height);
        self.log_density(&Tensor::new(vec![width * height, 2], pts)?, Solver::Rk4, steps).await
    }
}
