//! Op shapes, checked once for every backend: one function per `Backend` op that takes the
//! input shapes, rejects what does not fit together with `Error::Shape { op, .. }` (the op named
//! as the trait names it), and returns the output shape with the sizes the kernels need. The CPU
//! and GPU backends call these before they allocate or record anything, so a bad shape is the
//! same typed error, with the same message, on both.

use crate::error::{Error, Result};
use std::ops::Range;

fn err(op: &'static str, detail: String) -> Error {
    Error::Shape { op, detail }
}

/// The dims of an `N`-d shape.
fn dims<const N: usize>(op: &'static str, shape: &[usize]) -> Result<[usize; N]> {
    shape.try_into().map_err(|_| err(op, format!("expected a {N}-d tensor, got shape {shape:?}")))
}

fn same(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a != b {
        return Err(err(op, format!("{a:?} vs {b:?}")));
    }
    Ok(a.to_vec())
}

/// `linear`: x [n, k] · w [m, k]ᵀ (+ b [m]) → [n, m].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    pub n: usize,
    pub k: usize,
    pub m: usize,
}

impl Linear {
    pub fn out(&self) -> Vec<usize> {
        vec![self.n, self.m]
    }
}

pub fn linear(x: &[usize], w: &[usize], b: Option<&[usize]>) -> Result<Linear> {
    let [n, k] = dims::<2>("linear", x)?;
    let [m, k2] = dims::<2>("linear", w)?;
    if k != k2 || b.is_some_and(|b| b != [m]) {
        return Err(err("linear", format!("x {x:?}, w {w:?}, b {b:?}")));
    }
    Ok(Linear { n, k, m })
}

pub use pushforward_kernels::conv2d::Conv2dShape;

/// `conv2d`: a positive stride, a kernel no larger than the padded input, matching input
/// channels and a bias of c_out values.
pub fn conv2d(x: &[usize], w: &[usize], b: Option<&[usize]>, stride: usize, pad: usize) -> Result<Conv2dShape> {
    let [batch, c_in, h, wd] = dims::<4>("conv2d", x)?;
    let [c_out, c_in2, kh, kw] = dims::<4>("conv2d", w)?;
    let padded = |v: usize| pad.checked_mul(2).and_then(|p| p.checked_add(v));
    let fits = |v: usize, k: usize| padded(v).is_some_and(|p| p >= k);
    if c_in != c_in2 || stride == 0 || !fits(h, kh) || !fits(wd, kw) || b.is_some_and(|b| b != [c_out]) {
        return Err(err("conv2d", format!("x {x:?}, w {w:?}, b {b:?}, stride {stride}, pad {pad}")));
    }
    Ok(Conv2dShape { batch, c_in, h, w: wd, c_out, kh, kw, stride, pad })
}

/// An NCHW shape's dims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nchw {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Nchw {
    fn of(op: &'static str, shape: &[usize]) -> Result<Nchw> {
        let [n, c, h, w] = dims::<4>(op, shape)?;
        Ok(Nchw { n, c, h, w })
    }
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    pub fn shape(&self) -> Vec<usize> {
        vec![self.n, self.c, self.h, self.w]
    }
    /// The shape `upsample_nearest2x` gives: [n, c, 2h, 2w].
    pub fn upsampled(&self) -> Vec<usize> {
        vec![self.n, self.c, 2 * self.h, 2 * self.w]
    }
}

/// `group_norm`: x [n, c, h, w] with `groups` dividing c, gamma and beta [c]. The output has x's
/// shape.
pub fn group_norm(x: &[usize], groups: usize, gamma: &[usize], beta: &[usize]) -> Result<Nchw> {
    let d = Nchw::of("group_norm", x)?;
    if groups == 0 || !d.c.is_multiple_of(groups) || gamma != [d.c] || beta != [d.c] {
        return Err(err("group_norm", format!("x {x:?}, groups {groups}, gamma {gamma:?}, beta {beta:?}")));
    }
    Ok(d)
}

/// `silu_tangent`: z and dz of one shape, the output's.
pub fn silu_tangent(z: &[usize], dz: &[usize]) -> Result<Vec<usize>> {
    same("silu_tangent", z, dz)
}

/// `add`: two tensors of one shape, the output's.
pub fn add(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    same("add", a, b)
}

/// `add_channel_bias`: x [n, c, h, w] and bias [n, c]. The output has x's shape.
pub fn add_channel_bias(x: &[usize], bias: &[usize]) -> Result<Nchw> {
    let d = Nchw::of("add_channel_bias", x)?;
    if bias != [d.n, d.c] {
        return Err(err("add_channel_bias", format!("x {x:?}, bias {bias:?}")));
    }
    Ok(d)
}

/// `upsample_nearest2x`: the input's dims (an NCHW shape); the output is [n, c, 2h, 2w]
/// ([`Nchw::upsampled`]).
pub fn upsample_nearest2x(x: &[usize]) -> Result<Nchw> {
    let d = Nchw::of("upsample_nearest2x", x)?;
    if d.h.checked_mul(2).zip(d.w.checked_mul(2)).is_none() {
        return Err(err("upsample_nearest2x", format!("{x:?} doubled overflows")));
    }
    Ok(d)
}

/// `concat_axis1`: a [n, ca, …] ++ b [n, cb, …] → [n, ca + cb, …].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concat {
    pub n: usize,
    pub ca: usize,
    pub cb: usize,
    /// Values per (row, channel): the product of the dims after axis 1.
    pub inner: usize,
    pub out: Vec<usize>,
}

pub fn concat_axis1(a: &[usize], b: &[usize]) -> Result<Concat> {
    if a.len() < 2 || a.len() != b.len() || a[0] != b[0] || a[2..] != b[2..] {
        return Err(err("concat_axis1", format!("{a:?} vs {b:?}")));
    }
    let mut out = a.to_vec();
    out[1] = a[1].checked_add(b[1]).ok_or_else(|| err("concat_axis1", format!("{a:?} ++ {b:?} overflows")))?;
    Ok(Concat { n: a[0], ca: a[1], cb: b[1], inner: a[2..].iter().product(), out })
}

/// `time_embedding`: an even `dim`; the output is [n, dim].
pub fn time_embedding(n: usize, dim: usize) -> Result<Vec<usize>> {
    if !dim.is_multiple_of(2) {
        return Err(err("time_embedding", format!("dim {dim} must be even")));
    }
    Ok(vec![n, dim])
}

/// `embedding`: a table [vocab, d] and ids < vocab; the output is [ids.len(), d].
pub fn embedding(table: &[usize], ids: &[u32]) -> Result<Vec<usize>> {
    let [vocab, d] = dims::<2>("embedding", table)?;
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(err("embedding", format!("id {id} out of range for a table of {vocab} rows")));
    }
    Ok(vec![ids.len(), d])
}

/// `lincomb`: every term of x's shape, the output's.
pub fn lincomb<'a>(x: &[usize], terms: impl IntoIterator<Item = &'a [usize]>) -> Result<Vec<usize>> {
    for k in terms {
        same("lincomb", x, k)?;
    }
    Ok(x.to_vec())
}

/// `slice_rows`: the shape of rows `rows` of a tensor of `shape`, with the element range they
/// span.
pub fn slice_rows(shape: &[usize], rows: &Range<usize>) -> Result<(Vec<usize>, Range<usize>)> {
    match shape.first() {
        Some(&n) if rows.start <= rows.end && rows.end <= n => {
            let inner: usize = shape[1..].iter().product();
            let mut out = shape.to_vec();
            out[0] = rows.len();
            Ok((out, rows.start * inner..rows.end * inner))
        }
        _ => Err(err("slice_rows", format!("rows {rows:?} of {shape:?}"))),
    }
}

/// `repeat2`: [n, …] → [2n, …] (not a scalar).
pub fn repeat2(x: &[usize]) -> Result<Vec<usize>> {
    let mut out = x.to_vec();
    match out.first_mut() {
        Some(n) => *n = n.checked_mul(2).ok_or_else(|| err("repeat2", format!("{x:?} doubled overflows")))?,
        None => return Err(err("repeat2", "scalar tensor".into())),
    }
    Ok(out)
}

/// `guidance_mix`: [2n, …] → [n, …].
pub fn guidance_mix(v: &[usize]) -> Result<Vec<usize>> {
    let mut out = v.to_vec();
    match out.first_mut() {
        Some(n) if n.is_multiple_of(2) => *n /= 2,
        _ => return Err(err("guidance_mix", format!("leading dim of {v:?} must be even"))),
    }
    Ok(out)
}

/// `scaled_rms_error`: err, x_old and x_new of one shape.
pub fn scaled_rms_error(err: &[usize], x_old: &[usize], x_new: &[usize]) -> Result<()> {
    same("scaled_rms_error", err, x_old)?;
    same("scaled_rms_error", err, x_new)?;
    Ok(())
}

/// `unary`: the input's shape.
pub fn unary(x: &[usize]) -> Result<Vec<usize>> {
    Ok(x.to_vec())
}

/// `binary`: the broadcast shape (NumPy rules, at most `pointwise::MAX_RANK` dimensions).
pub fn binary(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    crate::pointwise::broadcast(a, b)
}

/// `reshape`: the new shape holds as many values.
pub fn reshape(x: &[usize], shape: &[usize]) -> Result<Vec<usize>> {
    let (a, b) =
        (x.iter().try_fold(1usize, |p, &d| p.checked_mul(d)), shape.iter().try_fold(1usize, |p, &d| p.checked_mul(d)));
    match (a, b) {
        (Some(a), Some(b)) if a == b => Ok(shape.to_vec()),
        _ => Err(Error::Shape { op: "reshape", detail: format!("{x:?} cannot become {shape:?}") }),
    }
}

/// `strided_copy`: the output `shape` (≤ 8 dims) read from `x` at `offset` with `strides` must
/// stay inside `x`.
pub fn strided_copy(x: &[usize], shape: &[usize], offset: usize, strides: &[usize]) -> Result<Vec<usize>> {
    let bad = |why: &str| Error::Shape {
        op: "strided_copy",
        detail: format!("{shape:?} at {offset} by {strides:?} from {x:?}: {why}"),
    };
    if shape.len() > 8 || strides.len() != shape.len() {
        return Err(bad("at most 8 dimensions, one stride each"));
    }
    let total: usize = x.iter().product();
    if shape.contains(&0) {
        return Ok(shape.to_vec());
    }
    let last = shape.iter().zip(strides).try_fold(offset, |acc, (&d, &s)| acc.checked_add((d - 1).checked_mul(s)?));
    match last {
        Some(l) if l < total => Ok(shape.to_vec()),
        _ => Err(bad("reads past the end")),
    }
}

/// `matmul` of [..., m, k] and [..., k, n] with broadcast batch dimensions.
pub struct Matmul {
    pub out: Vec<usize>,
    pub batch: Vec<usize>,
    /// Each operand's element strides per batch dimension (0 where broadcast).
    pub a_strides: Vec<usize>,
    pub b_strides: Vec<usize>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

pub fn matmul(a: &[usize], b: &[usize]) -> Result<Matmul> {
    let bad = || Error::Shape { op: "matmul", detail: format!("{a:?} × {b:?}") };
    if a.len() < 2 || b.len() < 2 {
        return Err(bad());
    }
    let (m, k, k2, n) = (a[a.len() - 2], a[a.len() - 1], b[b.len() - 2], b[b.len() - 1]);
    if k != k2 {
        return Err(bad());
    }
    let (ba, bb) = (&a[..a.len() - 2], &b[..b.len() - 2]);
    let batch = crate::pointwise::broadcast(ba, bb).map_err(|_| bad())?;
    let scale = |s: Vec<usize>, by: usize| s.into_iter().map(|v| v * by).collect::<Vec<_>>();
    let a_strides = scale(crate::pointwise::broadcast_strides(ba, &batch), m * k);
    let b_strides = scale(crate::pointwise::broadcast_strides(bb, &batch), k * n);
    let mut out = batch.clone();
    out.extend([m, n]);
    Ok(Matmul { out, batch, a_strides, b_strides, m, k, n })
}

/// `softmax` over the last axis: (rows, row length).
pub fn softmax(x: &[usize]) -> Result<(usize, usize)> {
    match x.last() {
        Some(&inner) if inner > 0 => Ok((x.iter().product::<usize>() / inner, inner)),
        _ => Err(Error::Shape { op: "softmax", detail: format!("{x:?}") }),
    }
}

/// `layer_norm` over the trailing values that `gamma` covers: (rows, row length).
pub fn layer_norm(x: &[usize], gamma: &[usize], beta: &[usize]) -> Result<(usize, usize)> {
    let inner: usize = gamma.iter().product();
    let trailing = x.len() >= gamma.len() && x[x.len() - gamma.len()..] == *gamma;
    if inner == 0 || !trailing || beta.iter().product::<usize>() != inner {
        return Err(Error::Shape { op: "layer_norm", detail: format!("{x:?} with gamma {gamma:?}, beta {beta:?}") });
    }
    Ok((x.iter().product::<usize>() / inner, inner))
}
