//! The MLP velocity network for 2-D points (see ARCHITECTURE.md, "MLP").

use super::Params;
use super::config::MlpConfig;
use crate::backend::Backend;
use crate::cpu::Activation;
use crate::error::Result;

/// Every tensor the architecture needs, with its shape, in `state_dict()` order.
pub fn param_shapes(c: &MlpConfig, num_classes: usize) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    let mut fan_in = c.data_dim + c.time_embed_dim;
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

/// v(x, t[, y]) for x [n, data_dim] → [n, data_dim].
pub fn forward<B: Backend>(
    b: &B,
    c: &MlpConfig,
    p: &Params<B>,
    x: &B::Tensor,
    t: f32,
    labels: Option<&[u32]>,
) -> Result<B::Tensor> {
    let n = b.shape(x)[0];
    let mut e = b.time_embedding(t, n, c.time_embed_dim, c.time_scale)?;
    if let Some(ids) = labels {
        let ce = b.embedding(p.get("class_emb.weight")?, ids)?;
        e = b.add(&e, &ce)?;
    }
    let mut h = b.concat_axis1(x, &e)?;
    for i in 0..c.depth {
        h = b.linear(
            &h,
            p.get(&format!("layers.{i}.weight"))?,
            Some(p.get(&format!("layers.{i}.bias"))?),
            Activation::Silu,
        )?;
    }
    b.linear(&h, p.get("out.weight")?, Some(p.get("out.bias")?), Activation::None)
}
