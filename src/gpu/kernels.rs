//! One function per kernel: builds the kernel's parameter block, picks its bindings and its
//! workgroup count, and records the dispatch. Shape checks live in `backend.rs`; these assume
//! consistent sizes.

use super::recorder::{Bind, Recorder};
use super::pipelines::{Kernel, LINCOMB_TERMS};
use crate::cpu::Activation;
use crate::error::Result;

/// A parameter block: u32 words (f32 as bits), matching the WGSL `Params` structs field by field.
struct P(Vec<u32>);

impl P {
    fn new() -> Self {
        P(Vec::with_capacity(16))
    }
    fn u(mut self, v: usize) -> Self {
        self.0.push(v as u32);
        self
    }
    fn f(mut self, v: f32) -> Self {
        self.0.push(v.to_bits());
        self
    }
    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

const EW_WG: u64 = 256;

fn elementwise_params(len: usize, a: usize, b: usize, w: f32, coef: &[f32]) -> P {
    let mut p = P::new().u(len).u(a).u(b).u(0).f(w).u(coef.len()).u(0).u(0);
    for i in 0..8 {
        p = p.f(coef.get(i).copied().unwrap_or(0.0));
    }
    p
}

/// out[n, m] = act(x[n, k] · w[m, k]ᵀ + b).
#[allow(clippy::too_many_arguments)]
pub(super) fn linear(
    r: &mut Recorder,
    out: Bind,
    x: Bind,
    w: Bind,
    b: Option<Bind>,
    act: Activation,
    n: usize,
    k: usize,
    m: usize,
) -> Result<()> {
    let (tiles_n, tiles_m) = (n.div_ceil(32), m.div_ceil(32));
    let p = P::new()
        .u(n)
        .u(k)
        .u(m)
        .u(tiles_m)
        .u(tiles_n)
        .u(b.is_some() as usize)
        .u((act == Activation::Silu) as usize)
        .u(0);
    // Without a bias the slot is bound to x (read-only aliasing is allowed) and never read.
    r.dispatch(
        Kernel::Linear { vec4: k.is_multiple_of(4) },
        p.bytes(),
        out,
        &[x, w, b.unwrap_or(x)],
        (tiles_n * tiles_m) as u64,
    )
}

/// NCHW convolution; `dims` = (n, cin, h, w, cout, kh, kw, stride, pad, oh, ow).
#[allow(clippy::too_many_arguments)]
pub(super) fn conv2d(r: &mut Recorder, out: Bind, x: Bind, w: Bind, b: Option<Bind>, dims: [usize; 11]) -> Result<()> {
    let [n, cin, h, wd, cout, kh, kw, stride, pad, oh, ow] = dims;
    let (cblocks, xblocks) = (cout.div_ceil(4), ow.div_ceil(4));
    let total = n * cblocks * oh * xblocks;
    let p = P::new()
        .u(n)
        .u(cin)
        .u(h)
        .u(wd)
        .u(cout)
        .u(oh)
        .u(ow)
        .u(kh)
        .u(kw)
        .u(stride)
        .u(pad)
        .u(b.is_some() as usize)
        .u(cblocks)
        .u(xblocks)
        .u(total)
        .u(0);
    let k3s1 = kh == 3 && kw == 3 && stride == 1;
    r.dispatch(Kernel::Conv2d { k3s1 }, p.bytes(), out, &[x, w, b.unwrap_or(x)], (total as u64).div_ceil(64))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn group_norm(
    r: &mut Recorder,
    out: Bind,
    x: Bind,
    gamma: Bind,
    beta: Bind,
    n: usize,
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
    act: Activation,
) -> Result<()> {
    let total = n * groups;
    let p = P::new().u(c).u(hw).u(groups).u(total).f(eps).u((act == Activation::Silu) as usize).u(0).u(0);
    r.dispatch(Kernel::GroupNorm, p.bytes(), out, &[x, gamma, beta], total as u64)
}

/// The simple one-output-per-invocation kernels of elementwise.wgsl.
#[allow(clippy::too_many_arguments)]
pub(super) fn elementwise(
    r: &mut Recorder,
    kernel: Kernel,
    out: Bind,
    inputs: &[Bind],
    len: usize,
    a: usize,
    b: usize,
    w: f32,
) -> Result<()> {
    let p = elementwise_params(len, a, b, w, &[]);
    r.dispatch(kernel, p.bytes(), out, inputs, (len as u64).div_ceil(EW_WG))
}

/// out = x + Σ cᵢ·kᵢ for at most LINCOMB_TERMS terms (the caller chains longer sums).
pub(super) fn lincomb(r: &mut Recorder, out: Bind, x: Bind, terms: &[(f32, Bind)], len: usize) -> Result<()> {
    debug_assert!(terms.len() <= LINCOMB_TERMS);
    let coef: Vec<f32> = terms.iter().map(|t| t.0).collect();
    let p = elementwise_params(len, 0, 0, 0.0, &coef);
    let mut inputs = vec![x];
    inputs.extend(terms.iter().map(|t| t.1));
    // Unused term slots are bound to x; `nterms` keeps the shader from reading them.
    inputs.resize(1 + LINCOMB_TERMS, x);
    r.dispatch(Kernel::Lincomb, p.bytes(), out, &inputs, (len as u64).div_ceil(EW_WG))
}

/// out[i] = row[i mod d] for `len` outputs.
pub(super) fn broadcast_rows(r: &mut Recorder, out: Bind, row: Bind, len: usize, d: usize) -> Result<()> {
    let p = P::new().u(len).u(d).u(0).u(0);
    r.dispatch(Kernel::BroadcastRows, p.bytes(), out, &[row], (len as u64).div_ceil(EW_WG))
}

/// out[i, :] = table[ids[i], :].
pub(super) fn gather_rows(r: &mut Recorder, out: Bind, table: Bind, ids: Bind, len: usize, d: usize) -> Result<()> {
    let p = P::new().u(len).u(d).u(0).u(0);
    r.dispatch(Kernel::GatherRows, p.bytes(), out, &[table, ids], (len as u64).div_ceil(EW_WG))
}

/// Number of stage-1 partials of a reduction over `len` values.
pub(super) fn partials(len: usize, max_wg: u32) -> usize {
    len.div_ceil(256).clamp(1, 256).min(max_wg as usize)
}

/// Stage 1 of the scaled RMS error: per-workgroup sums of squares into `part`.
#[allow(clippy::too_many_arguments)]
pub(super) fn rms_partial(
    r: &mut Recorder,
    part: Bind,
    err: Bind,
    x_old: Bind,
    x_new: Bind,
    len: usize,
    nparts: usize,
    rtol: f32,
    atol: f32,
) -> Result<()> {
    let p = P::new().u(len).u(len).f(rtol).f(atol);
    r.dispatch_exact(Kernel::RmsPartial, p.bytes(), part, &[err, x_old, x_new], nparts as u32)
}

/// Stage 1 of the finiteness check: per-workgroup counts of non-finite values.
pub(super) fn nonfinite_partial(r: &mut Recorder, part: Bind, x: Bind, len: usize, nparts: usize) -> Result<()> {
    let p = P::new().u(len).u(len).f(0.0).f(0.0);
    r.dispatch_exact(Kernel::NonfinitePartial, p.bytes(), part, &[x], nparts as u32)
}

/// Stage 2: out[0] = sqrt(Σ partials / count) (`rms`) or Σ partials.
pub(super) fn finish(r: &mut Recorder, out: Bind, part: Bind, nparts: usize, count: usize, rms: bool) -> Result<()> {
    let p = P::new().u(nparts).u(count).f(0.0).f(0.0);
    r.dispatch_exact(if rms { Kernel::FinishRms } else { Kernel::FinishSum }, p.bytes(), out, &[part], 1)
}

/// Normals `start .. start + len` of (seed, stream), or (words = true) the raw Philox words of
/// blocks `start/4 ..` (4 per block, `len` words).
pub(super) fn rng(
    r: &mut Recorder,
    out: Bind,
    seed: u64,
    stream: u32,
    start: u64,
    len: usize,
    words: bool,
) -> Result<()> {
    let block = start / 4;
    let lane0 = (start % 4) as usize;
    let blocks = (lane0 + len).div_ceil(4);
    let p = P::new()
        .u(seed as u32 as usize)
        .u((seed >> 32) as u32 as usize)
        .u(stream as usize)
        .u(lane0)
        .u(block as u32 as usize)
        .u((block >> 32) as u32 as usize)
        .u(len)
        .u(blocks);
    let kernel = if words { Kernel::PhiloxWords } else { Kernel::Normal };
    r.dispatch(kernel, p.bytes(), out, &[], (blocks as u64).div_ceil(64))
}
