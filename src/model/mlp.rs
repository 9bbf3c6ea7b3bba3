//! The MLP velocity network for 2-D points (see ARCHITECTURE.md, "MLP").

use super::Params;
use super::config::MlpConfig;
use crate::backend::Backend;
use crate::cpu::Activation;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Every tensor the architecture needs, with its shape, in `state_dict()` order.
pub fn param_shapes(c: &MlpConfig, num_classes: usize) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    let mut fan_in = input_width(c);
    for i in 0..c.depth {
        v.push((format!("layers.{i}.weight"), vec![c.width, fan_in]));
        v.push((format!("layers.{i}.bias"), vec![c.width]));
        fan_in = c.width;
    }
    v.push(("out.weight".into(), vec![c.data_dim, c.width]));
    v.push(("out.bias".into(), vec![c.data_dim]));
    if num_classes > 0 {
        v.push(("class_emb.weight".into(), vec![num_classes + 1, c.time_embed_dim]));
    }
    v
}

/// Width of the first layer's input: the point, its time embedding, and for a flow map the
/// step's embedding.
pub fn input_width(c: &MlpConfig) -> usize {
    c.data_dim + c.time_embed_dim * if c.flow_map { 2 } else { 1 }
}

/// The first layer's input: [x, time embedding (+ class embedding)], and for a flow map the
/// embedding of the step length h after them.
fn input<B: Backend>(
    b: &B,
    c: &MlpConfig,
    p: &Params<B>,
    x: &B::Tensor,
    t: f32,
    h: f32,
    labels: Option<&[u32]>,
) -> Result<B::Tensor> {
    let n = b.shape(x)[0];
    let mut e = b.time_embedding(t, n, c.time_embed_dim, c.time_scale)?;
    if let Some(ids) = labels {
        let ce = b.embedding(p.get("class_emb.weight")?, ids)?;
        e = b.add(&e, &ce)?;
    }
    let xe = b.concat_axis1(x, &e)?;
    if c.flow_map { b.concat_axis1(&xe, &b.time_embedding(h, n, c.time_embed_dim, c.time_scale)?) } else { Ok(xe) }
}

/// Multiply-adds ×2 of one forward on one point (its linear layers).
pub fn flops_per_sample(c: &MlpConfig) -> f64 {
    let mut dims = vec![input_width(c)];
    dims.extend(std::iter::repeat_n(c.width, c.depth));
    dims.push(c.data_dim);
    2.0 * dims.windows(2).map(|d| (d[0] * d[1]) as f64).sum::<f64>()
}

/// v(x, t[, y]) for x [n, data_dim] → [n, data_dim]; for a flow map the average velocity
/// over [t, t + step] (`step` is ignored by other networks).
pub fn forward<B: Backend>(
    b: &B,
    c: &MlpConfig,
    p: &Params<B>,
    x: &B::Tensor,
    t: f32,
    step: f32,
    labels: Option<&[u32]>,
) -> Result<B::Tensor> {
    // Every row of a forward shares t (and a flow map's step), so without class labels the
    // embeddings' share of the first layer is the same for every row: it is computed once, as
    // the first layer of a single zero point, and becomes the bias of the batch's product with
    // the point's columns of the weight alone (`FIRST_X`), whose depth is then d instead of
    // d + embedding (the moons MLP: 2 instead of 34, 7.6% of its multiply-adds, and no
    // concatenation of the embedding to every row; measured 6% faster in wasm).
    let folded = labels.is_none();
    let first = input(b, c, p, if folded { p.get(ZERO_POINT)? } else { x }, t, step, labels)?;
    let act = if folded { Activation::None } else { Activation::Silu };
    let mut h = b.linear(&first, p.get("layers.0.weight")?, Some(p.get("layers.0.bias")?), act)?;
    if folded {
        h = b.linear(x, p.get(FIRST_X)?, Some(&b.reshape_owned(h, &[c.width])?), Activation::Silu)?;
    }
    for i in 1..c.depth {
        h = b.linear(
            &h,
            p.get(&format!("layers.{i}.weight"))?,
            Some(p.get(&format!("layers.{i}.bias"))?),
            Activation::Silu,
        )?;
    }
    b.linear(&h, p.get("out.weight")?, Some(p.get("out.bias")?), Activation::None)
}

/// Names of the tensors [`forward`] and [`forward_with_divergence`] derive from the weights
/// (see [`derived_params`]).
fn div_col(j: usize) -> String {
    format!("divergence.layers.0.weight.col{j}")
}
const DIV_ZERO: &str = "divergence.zero";
const DIV_OUT: &str = "divergence.out_rows";
const FIRST_X: &str = "first_layer.point_columns";
const ZERO_POINT: &str = "first_layer.zero_point";

/// Host-side tensors derived once from the weights. For the exact divergence: column j of the
/// first layer's weight (the tangent of input coordinate j after the first matmul), a zero
/// weight (to broadcast those columns to every row with `linear`'s bias), and the output
/// rows `[W_out[0, :], …, W_out[d−1, :]]` as one [1, d·width] weight. For [`forward`]: the
/// first layer's point columns [width, d] and a zero point [1, d].
pub fn derived_params(c: &MlpConfig, w0: &Tensor, w_out: &Tensor) -> Result<Vec<(String, Tensor)>> {
    let (d, width) = (c.data_dim, c.width);
    let fan_in = input_width(c);
    let mut v = Vec::with_capacity(d + 4);
    for j in 0..d {
        let col = (0..width).map(|r| w0.data()[r * fan_in + j]).collect();
        v.push((div_col(j), Tensor::new(vec![width], col)?));
    }
    let mut point_cols = Vec::with_capacity(width * d);
    for row in w0.data().chunks_exact(fan_in) {
        point_cols.extend_from_slice(&row[..d]);
    }
    v.push((DIV_ZERO.into(), Tensor::zeros(vec![width, d])?));
    v.push((DIV_OUT.into(), Tensor::new(vec![1, d * width], w_out.data()[..d * width].to_vec())?));
    v.push((FIRST_X.into(), Tensor::new(vec![width, d], point_cols)?));
    v.push((ZERO_POINT.into(), Tensor::zeros(vec![1, d])?));
    Ok(v)
}

/// v(x, t[, y]) (for a flow map the instantaneous velocity, step 0) and its exact divergence
/// Σ_j ∂v_j/∂x_j ([n, 1]) by forward-mode derivatives:
/// one tangent per input coordinate j (the first layer maps e_j to column j of its weight), each
/// pushed through every layer (`linear` without bias, then `silu_tangent`); the divergence is
/// Σ_j row j of the output weight · tangent j, one [n, d·width] × [d·width] product.
pub fn forward_with_divergence<B: Backend>(
    b: &B,
    c: &MlpConfig,
    p: &Params<B>,
    x: &B::Tensor,
    t: f32,
    labels: Option<&[u32]>,
) -> Result<(B::Tensor, B::Tensor)> {
    let mut h = input(b, c, p, x, t, 0.0, labels)?;
    let mut tangents: Vec<B::Tensor> = Vec::with_capacity(c.data_dim);
    for i in 0..c.depth {
        let w = p.get(&format!("layers.{i}.weight"))?;
        let z = b.linear(&h, w, Some(p.get(&format!("layers.{i}.bias"))?), Activation::None)?;
        tangents = if i == 0 {
            (0..c.data_dim)
                .map(|j| b.linear(x, p.get(DIV_ZERO)?, Some(p.get(&div_col(j))?), Activation::None))
                .collect::<Result<_>>()?
        } else {
            tangents.iter().map(|dh| b.linear(dh, w, None, Activation::None)).collect::<Result<_>>()?
        };
        tangents = tangents.iter().map(|dz| b.silu_tangent(&z, dz)).collect::<Result<_>>()?;
        h = b.silu(&z)?;
    }
    let v = b.linear(&h, p.get("out.weight")?, Some(p.get("out.bias")?), Activation::None)?;
    let mut rest = tangents.into_iter();
    let mut all =
        rest.next().ok_or_else(|| Error::Config { field: "arch.data_dim".into(), reason: "must be ≥ 1".into() })?;
    for dh in rest {
        all = b.concat_axis1(&all, &dh)?;
    }
    let div = b.linear(&all, p.get(DIV_OUT)?, None, Activation::None)?;
    Ok((v, div))
}
