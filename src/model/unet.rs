//! The class-conditional U-Net velocity network for images (see ARCHITECTURE.md, "U-Net").

use super::Params;
use super::config::UnetConfig;
use crate::backend::Backend;
use crate::cpu::Activation;
use crate::error::Result;

pub const GROUP_NORM_EPS: f32 = 1e-5;

/// Channel widths per level, c_i = base · mult_i.
fn level_channels(c: &UnetConfig) -> Vec<usize> {
    c.channel_mult.iter().map(|m| c.base_channels * m).collect()
}

/// (in, out) channels of every residual block, with its name prefix, in forward order.
fn res_blocks(c: &UnetConfig) -> Vec<(String, usize, usize)> {
    let ch = level_channels(c);
    let last = ch.len() - 1;
    let mut v = Vec::new();
    let mut cur = c.base_channels;
    for (i, &ci) in ch.iter().enumerate() {
        for j in 0..c.num_res_blocks {
            v.push((format!("down.{i}.blocks.{j}"), cur, ci));
            cur = ci;
        }
    }
    v.push(("mid".into(), ch[last], ch[last]));
    for i in (0..ch.len()).rev() {
        let h = if i == last { ch[last] } else { ch[i + 1] };
        for j in 0..c.num_res_blocks {
            let cin = if j == 0 { h + ch[i] } else { ch[i] };
            v.push((format!("up.{i}.blocks.{j}"), cin, ch[i]));
        }
    }
    v
}

/// Channel counts of every GroupNorm, for config validation.
pub fn norm_channel_counts(c: &UnetConfig) -> Vec<(usize, String)> {
    let mut v: Vec<(usize, String)> = res_blocks(c)
        .into_iter()
        .flat_map(|(name, cin, cout)| [(cin, format!("{name}.norm1")), (cout, format!("{name}.norm2"))])
        .collect();
    v.push((c.base_channels * c.channel_mult[0], "out_norm".into()));
    v
}

/// Values per sample of the largest activation tensor of a forward on `h × w` images (the
/// sampler sizes GPU batch chunks by it). Checked against every tensor the forward creates:
/// block inputs/outputs at each level (including the up path's concatenations), the upsampled
/// maps, and the time embedding.
pub fn peak_values_per_sample(c: &UnetConfig, h: usize, w: usize) -> usize {
    let ch = level_channels(c);
    let side = |i: usize| (h >> i) * (w >> i);
    let mut peak = (c.in_channels.max(c.base_channels)) * h * w;
    peak = peak.max(4 * c.base_channels);
    for (i, &ci) in ch.iter().enumerate() {
        let cin_up = if i + 1 == ch.len() { ch[i] } else { ch[i + 1] } + ci;
        let prev = if i == 0 { c.base_channels } else { ch[i - 1] };
        peak = peak.max(cin_up.max(prev).max(ci) * side(i));
        if i > 0 {
            peak = peak.max(ci * side(i - 1));
        }
    }
    peak
}

/// Multiply-adds ×2 of one forward on one `h × w` image: the convolutions, the time MLP and
/// the blocks' time projections (what GFLOP/s figures count; norms and elementwise work are
/// left out, as is usual).
pub fn flops_per_sample(c: &UnetConfig, h: usize, w: usize) -> f64 {
    let ch = level_channels(c);
    let px = |level: usize| ((h >> level) * (w >> level)) as f64;
    let conv = |cin: usize, cout: usize, k: usize, px: f64| (cin * cout * k * k) as f64 * px;
    let temb = 4 * c.base_channels;
    let mut macs = (c.base_channels * temb + temb * temb) as f64 + conv(c.in_channels, c.base_channels, 3, px(0));
    for (name, cin, cout) in res_blocks(c) {
        let level = match name.split('.').nth(1).and_then(|l| l.parse().ok()) {
            Some(l) if !name.starts_with("mid") => l,
            _ => ch.len() - 1,
        };
        macs += conv(cin, cout, 3, px(level)) + conv(cout, cout, 3, px(level)) + (temb * cout) as f64;
        if cin != cout {
            macs += conv(cin, cout, 1, px(level));
        }
    }
    for (i, &ci) in ch.iter().enumerate() {
        if i + 1 < ch.len() {
            macs += conv(ci, ci, 3, px(i + 1));
        }
        if i > 0 {
            macs += conv(ci, ci, 3, px(i - 1));
        }
    }
    2.0 * (macs + conv(ch[0], c.in_channels, 3, px(0)))
}

fn conv(v: &mut Vec<(String, Vec<usize>)>, name: &str, cin: usize, cout: usize, k: usize) {
    v.push((format!("{name}.weight"), vec![cout, cin, k, k]));
    v.push((format!("{name}.bias"), vec![cout]));
}

fn norm(v: &mut Vec<(String, Vec<usize>)>, name: &str, ch: usize) {
    v.push((format!("{name}.weight"), vec![ch]));
    v.push((format!("{name}.bias"), vec![ch]));
}

fn linear(v: &mut Vec<(String, Vec<usize>)>, name: &str, fan_in: usize, fan_out: usize) {
    v.push((format!("{name}.weight"), vec![fan_out, fan_in]));
    v.push((format!("{name}.bias"), vec![fan_out]));
}

/// Every tensor the architecture needs, with its shape.
pub fn param_shapes(c: &UnetConfig, num_classes: usize) -> Vec<(String, Vec<usize>)> {
    let temb = 4 * c.base_channels;
    let ch = level_channels(c);
    let mut v = Vec::new();
    linear(&mut v, "time_mlp.0", c.base_channels, temb);
    linear(&mut v, "time_mlp.2", temb, temb);
    if num_classes > 0 {
        v.push(("class_emb.weight".into(), vec![num_classes + 1, temb]));
    }
    conv(&mut v, "conv_in", c.in_channels, c.base_channels, 3);
    for (name, cin, cout) in res_blocks(c) {
        norm(&mut v, &format!("{name}.norm1"), cin);
        conv(&mut v, &format!("{name}.conv1"), cin, cout, 3);
        linear(&mut v, &format!("{name}.temb_proj"), temb, cout);
        norm(&mut v, &format!("{name}.norm2"), cout);
        conv(&mut v, &format!("{name}.conv2"), cout, cout, 3);
        if cin != cout {
            conv(&mut v, &format!("{name}.skip"), cin, cout, 1);
        }
    }
    for (i, &ci) in ch.iter().enumerate() {
        if i + 1 < ch.len() {
            conv(&mut v, &format!("down.{i}.downsample"), ci, ci, 3);
        }
        if i > 0 {
            conv(&mut v, &format!("up.{i}.upsample"), ci, ci, 3);
        }
    }
    norm(&mut v, "out_norm", ch[0]);
    conv(&mut v, "out_conv", ch[0], c.in_channels, 3);
    v
}

fn res_block<B: Backend>(
    b: &B,
    c: &UnetConfig,
    p: &Params<B>,
    name: &str,
    x: &B::Tensor,
    emb: &B::Tensor,
) -> Result<B::Tensor> {
    let w = |s: &str| p.get(&format!("{name}.{s}"));
    // conv1 + the time embedding's projection, and skip + conv2, each one op: the GPU adds them
    // in the convolution's store (`Backend::conv2d_add`).
    let h = b.group_norm(x, c.groups, w("norm1.weight")?, w("norm1.bias")?, GROUP_NORM_EPS, Activation::Silu)?;
    let tproj = b.linear(emb, w("temb_proj.weight")?, Some(w("temb_proj.bias")?), Activation::None)?;
    let h = b.conv2d_add(&h, w("conv1.weight")?, Some(w("conv1.bias")?), 1, 1, Some(&tproj), None)?;
    let h = b.group_norm(&h, c.groups, w("norm2.weight")?, w("norm2.bias")?, GROUP_NORM_EPS, Activation::Silu)?;
    let skip = if p.contains(&format!("{name}.skip.weight")) {
        Some(b.conv2d(x, w("skip.weight")?, Some(w("skip.bias")?), 1, 0)?)
    } else {
        None
    };
    b.conv2d_add(&h, w("conv2.weight")?, Some(w("conv2.bias")?), 1, 1, None, Some(skip.as_ref().unwrap_or(x)))
}

/// v(x, t[, y]) for x [n, C, H, W] → [n, C, H, W].
pub fn forward<B: Backend>(
    b: &B,
    c: &UnetConfig,
    p: &Params<B>,
    x: &B::Tensor,
    t: f32,
    labels: Option<&[u32]>,
) -> Result<B::Tensor> {
    let n = b.shape(x)[0];
    let levels = c.channel_mult.len();
    let e = b.time_embedding(t, n, c.base_channels, c.time_scale)?;
    let e = b.linear(&e, p.get("time_mlp.0.weight")?, Some(p.get("time_mlp.0.bias")?), Activation::Silu)?;
    let mut temb = b.linear(&e, p.get("time_mlp.2.weight")?, Some(p.get("time_mlp.2.bias")?), Activation::None)?;
    if let Some(ids) = labels {
        let ce = b.embedding(p.get("class_emb.weight")?, ids)?;
        temb = b.add(&temb, &ce)?;
    }
    let emb = b.silu(&temb)?;

    let mut h = b.conv2d(x, p.get("conv_in.weight")?, Some(p.get("conv_in.bias")?), 1, 1)?;
    let mut skips = Vec::with_capacity(levels);
    for i in 0..levels {
        for j in 0..c.num_res_blocks {
            h = res_block(b, c, p, &format!("down.{i}.blocks.{j}"), &h, &emb)?;
        }
        if i + 1 < levels {
            let ds = b.conv2d(
                &h,
                p.get(&format!("down.{i}.downsample.weight"))?,
                Some(p.get(&format!("down.{i}.downsample.bias"))?),
                2,
                1,
            )?;
            skips.push(std::mem::replace(&mut h, ds));
        } else {
            // The deepest skip is the same tensor that continues into `mid`.
            let mid_in = h;
            h = res_block(b, c, p, "mid", &mid_in, &emb)?;
            skips.push(mid_in);
        }
    }
    for i in (0..levels).rev() {
        let skip = skips.pop().expect("one skip per level");
        h = b.concat_axis1(&h, &skip)?;
        for j in 0..c.num_res_blocks {
            h = res_block(b, c, p, &format!("up.{i}.blocks.{j}"), &h, &emb)?;
        }
        if i > 0 {
            let up = b.upsample_nearest2x(&h)?;
            h = b.conv2d(
                &up,
                p.get(&format!("up.{i}.upsample.weight"))?,
                Some(p.get(&format!("up.{i}.upsample.bias"))?),
                1,
                1,
            )?;
        }
    }
    let h = b.group_norm(
        &h,
        c.groups,
        p.get("out_norm.weight")?,
        p.get("out_norm.bias")?,
        GROUP_NORM_EPS,
        Activation::Silu,
    )?;
    b.conv2d(&h, p.get("out_conv.weight")?, Some(p.get("out_conv.bias")?), 1, 1)
}
