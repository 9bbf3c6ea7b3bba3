//! Host evaluation of graph ops on constants: folds the shape subgraphs the exporter emits
//! (`Shape` → `Gather` → `Unsqueeze` → `Concat` → `Reshape`, `ConstantOfShape`, `Range`, …) and
//! any other node whose inputs are all known at plan time, and infers the output shape of a node
//! that runs on the backend. Plain loops: this runs once per plan, on small tensors.

use super::graph::{Compare, HostData, HostTensor, Op};
use crate::error::{Error, Result, num};
use crate::pointwise::{self, BinaryOp};

fn err(op: &str, detail: String) -> Error {
    Error::Shape { op: "onnx", detail: format!("{op}: {detail}") }
}

/// A negative axis counts from the end; checked against `rank`.
pub fn axis(a: i64, rank: usize, op: &str) -> Result<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if (0..r.max(1)).contains(&v) || (r == 0 && v == 0) {
        Ok(v as usize)
    } else {
        Err(err(op, format!("axis {a} is out of range for rank {rank}")))
    }
}

fn numel(shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| err("shape", format!("{shape:?} overflows")))
}

/// Row-major strides.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The shape `Reshape` gives `input` for the `spec` (0 copies a dimension unless allow_zero,
/// −1 is inferred).
pub fn reshape_shape(input: &[usize], spec: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    let total = numel(input)?;
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => {
                out.push(*input.get(i).ok_or_else(|| err("Reshape", format!("0 at {i} beyond {input:?}")))?)
            }
            d if d >= 0 => out.push(d as usize),
            _ => return Err(err("Reshape", format!("bad shape {spec:?}"))),
        }
    }
    if let Some(i) = infer {
        let rest = numel(&out)?;
        if rest == 0 || total % rest != 0 {
            return Err(err("Reshape", format!("cannot infer -1 in {spec:?} for {input:?}")));
        }
        out[i] = total / rest;
    }
    if numel(&out)? != total {
        return Err(err("Reshape", format!("{input:?} cannot become {spec:?}")));
    }
    Ok(out)
}

/// Inputs of a node as they are known at plan time: a constant, or only a shape.
pub enum Known<'a> {
    Const(&'a HostTensor),
    Shape(&'a [usize]),
    Absent,
}

impl Known<'_> {
    pub fn shape(&self) -> Option<&[usize]> {
        match self {
            Known::Const(t) => Some(&t.shape),
            Known::Shape(s) => Some(s),
            Known::Absent => None,
        }
    }
    fn konst(&self, op: &str, what: &str) -> Result<&HostTensor> {
        match self {
            Known::Const(t) => Ok(t),
            _ => Err(err(op, format!("its {what} must be a constant (folded at load), but it depends on x, t or y"))),
        }
    }
}

/// The output shapes of `op` given its inputs' shapes (constants where an output shape
/// depends on values, e.g. Reshape's target).
pub fn infer_shapes(op: &Op, inputs: &[Known<'_>], n_outputs: usize) -> Result<Vec<Vec<usize>>> {
    let shape =
        |i: usize| inputs.get(i).and_then(Known::shape).ok_or_else(|| err("node", format!("input {i} is missing")));
    let one = |s: Vec<usize>| Ok(vec![s]);
    match op {
        Op::Identity
        | Op::Cast { .. }
        | Op::Unary(_)
        | Op::Softmax { .. }
        | Op::LayerNorm { .. }
        | Op::GroupNorm { .. }
        | Op::InstanceNorm { .. }
        | Op::BatchNorm { .. } => one(shape(0)?.to_vec()),
        Op::Binary(_) | Op::Compare(_) | Op::Mod => one(pointwise::broadcast(shape(0)?, shape(1)?)?),
        Op::Where => one(pointwise::broadcast(&pointwise::broadcast(shape(0)?, shape(1)?)?, shape(2)?)?),
        Op::MatMul => one(matmul_shape(shape(0)?, shape(1)?)?),
        Op::Gemm { trans_a, trans_b, .. } => {
            let (a, b) = (shape(0)?, shape(1)?);
            if a.len() != 2 || b.len() != 2 {
                return Err(err("Gemm", format!("{a:?} × {b:?}: 2-D only")));
            }
            let (m, k) = if *trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
            let (k2, n) = if *trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
            if k != k2 {
                return Err(err("Gemm", format!("{a:?} × {b:?}")));
            }
            one(vec![m, n])
        }
        Op::Concat { axis: ax } => {
            let first = shape(0)?.to_vec();
            let a = axis(*ax, first.len(), "Concat")?;
            let mut out = first.clone();
            out[a] = 0;
            for i in 0..inputs.len() {
                let s = shape(i)?;
                if s.len() != first.len() || s.iter().enumerate().any(|(d, &v)| d != a && v != first[d]) {
                    return Err(err("Concat", format!("{s:?} vs {first:?} along axis {a}")));
                }
                out[a] += s[a];
            }
            one(out)
        }
        Op::Reshape { allow_zero } => {
            let spec =
                inputs.get(1).ok_or_else(|| err("Reshape", "no shape".into()))?.konst("Reshape", "target shape")?;
            one(reshape_shape(shape(0)?, &spec.as_i64(), *allow_zero)?)
        }
        Op::Flatten { axis: ax } => {
            let s = shape(0)?;
            let a = if *ax == s.len() as i64 { s.len() } else { axis(*ax, s.len(), "Flatten")? };
            one(vec![s[..a].iter().product(), s[a..].iter().product()])
        }
        Op::Squeeze { axes } | Op::Unsqueeze { axes } => {
            let axes = match axes {
                Some(a) => a.clone(),
                None => match inputs.get(1) {
                    Some(k @ Known::Const(_)) => k.konst("Squeeze", "axes")?.as_i64(),
                    _ if matches!(op, Op::Squeeze { .. }) => Vec::new(),
                    _ => return Err(err("Unsqueeze", "no axes".into())),
                },
            };
            let s = shape(0)?;
            if let Op::Squeeze { .. } = op {
                if axes.is_empty() {
                    return one(s.iter().copied().filter(|&d| d != 1).collect());
                }
                let ax: Vec<usize> = axes.iter().map(|&a| axis(a, s.len(), "Squeeze")).collect::<Result<_>>()?;
                if ax.iter().any(|&a| s[a] != 1) {
                    return Err(err("Squeeze", format!("axes {axes:?} of {s:?} are not all 1")));
                }
                one(s.iter().enumerate().filter(|(i, _)| !ax.contains(i)).map(|(_, &d)| d).collect())
            } else {
                let rank = s.len() + axes.len();
                let ax: Vec<usize> = axes.iter().map(|&a| axis(a, rank, "Unsqueeze")).collect::<Result<_>>()?;
                let mut out = Vec::with_capacity(rank);
                let mut it = s.iter();
                for i in 0..rank {
                    out.push(if ax.contains(&i) {
                        1
                    } else {
                        *it.next().ok_or_else(|| err("Unsqueeze", format!("{axes:?}")))?
                    });
                }
                one(out)
            }
        }
        Op::Transpose { perm } => {
            let s = shape(0)?;
            let p = perm_of(perm.as_deref(), s.len())?;
            one(p.iter().map(|&i| s[i]).collect())
        }
        Op::Gather { axis: ax } => {
            let (data, idx) = (shape(0)?, shape(1)?);
            let a = axis(*ax, data.len(), "Gather")?;
            one([&data[..a], idx, &data[a + 1..]].concat())
        }
        Op::Shape { start, end } => {
            let r = shape(0)?.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (s, e) = (clamp(*start), clamp(end.unwrap_or(r)));
            one(vec![e.saturating_sub(s)])
        }
        Op::Expand => {
            let spec = inputs.get(1).ok_or_else(|| err("Expand", "no shape".into()))?.konst("Expand", "shape")?;
            let spec: Vec<usize> = spec.as_i64().iter().map(|&d| d.max(0) as usize).collect();
            one(pointwise::broadcast(shape(0)?, &spec)?)
        }
        Op::Slice => {
            let s = shape(0)?;
            let (starts, ends) =
                (inputs[1].konst("Slice", "starts")?.as_i64(), inputs[2].konst("Slice", "ends")?.as_i64());
            let axes = match inputs.get(3) {
                Some(k @ Known::Const(_)) => k.konst("Slice", "axes")?.as_i64(),
                _ => (0..starts.len() as i64).collect(),
            };
            let steps = match inputs.get(4) {
                Some(k @ Known::Const(_)) => k.konst("Slice", "steps")?.as_i64(),
                _ => vec![1; starts.len()],
            };
            let mut out = s.to_vec();
            for (i, &a) in axes.iter().enumerate() {
                let a = axis(a, s.len(), "Slice")?;
                let (lo, hi, step) = slice_range(s[a], starts[i], ends[i], steps[i])?;
                out[a] = slice_len(lo, hi, step);
            }
            one(out)
        }
        Op::Split { axis: ax, split, num_outputs } => {
            let s = shape(0)?;
            let a = axis(*ax, s.len(), "Split")?;
            let parts = split_sizes(
                s[a],
                split.clone().or(match inputs.get(1) {
                    Some(k @ Known::Const(_)) => Some(k.konst("Split", "split")?.as_i64()),
                    _ => None,
                }),
                num_outputs.unwrap_or(n_outputs as i64) as usize,
            )?;
            Ok(parts
                .into_iter()
                .map(|p| {
                    let mut o = s.to_vec();
                    o[a] = p;
                    o
                })
                .collect())
        }
        Op::ReduceMean { axes, keep_dims } | Op::ReduceSum { axes, keep_dims } => {
            let s = shape(0)?;
            let axes = match axes {
                Some(a) => a.clone(),
                None => match inputs.get(1) {
                    Some(k @ Known::Const(_)) => k.konst("Reduce", "axes")?.as_i64(),
                    _ => (0..s.len() as i64).collect(),
                },
            };
            let ax: Vec<usize> = axes.iter().map(|&a| axis(a, s.len(), "Reduce")).collect::<Result<_>>()?;
            one(s
                .iter()
                .enumerate()
                .filter_map(|(i, &d)| if ax.contains(&i) { keep_dims.then_some(1) } else { Some(d) })
                .collect())
        }
        Op::Constant(t) => one(t.shape.clone()),
        Op::ConstantOfShape { .. } | Op::Range => {
            Err(err("shape op", "its output depends on values: it must fold to a constant".into()))
        }
        other => Err(err("node", format!("{} is not supported on values that depend on x, t or y yet", other.name()))),
    }
}

fn matmul_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.is_empty() || b.is_empty() {
        return Err(err("MatMul", format!("{a:?} × {b:?}: scalars")));
    }
    let a2 = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2 = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(err("MatMul", format!("{a:?} × {b:?}: inner dimensions differ")));
    }
    let mut out = pointwise::broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(out)
}

fn perm_of(perm: Option<&[i64]>, rank: usize) -> Result<Vec<usize>> {
    let p: Vec<usize> = match perm {
        Some(p) => p.iter().map(|&i| axis(i, rank, "Transpose")).collect::<Result<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    if p.len() != rank || p.iter().any(|&i| std::mem::replace(&mut seen[i], true)) {
        return Err(err("Transpose", format!("perm {perm:?} for rank {rank}")));
    }
    Ok(p)
}

/// ONNX Slice's clamped (start, end, step) for a dimension of size `dim`.
fn slice_range(dim: usize, start: i64, end: i64, step: i64) -> Result<(i64, i64, i64)> {
    if step == 0 {
        return Err(err("Slice", "step 0".into()));
    }
    let d = dim as i64;
    let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (lo, hi) = if step > 0 {
        (norm(start).clamp(0, d), norm(end).clamp(0, d))
    } else {
        (norm(start).clamp(-1, d - 1), norm(end).clamp(-1, d - 1))
    };
    Ok((lo, hi, step))
}

fn slice_len(lo: i64, hi: i64, step: i64) -> usize {
    (if step > 0 { ((hi - lo).max(0) + step - 1) / step } else { ((lo - hi).max(0) + (-step) - 1) / (-step) }) as usize
}

fn split_sizes(dim: usize, split: Option<Vec<i64>>, outputs: usize) -> Result<Vec<usize>> {
    match split {
        Some(s) => {
            let v: Vec<usize> = s.iter().map(|&x| x.max(0) as usize).collect();
            if v.iter().sum::<usize>() != dim {
                return Err(err("Split", format!("{s:?} does not sum to {dim}")));
            }
            Ok(v)
        }
        None => {
            let k = outputs.max(1);
            let each = dim.div_ceil(k);
            Ok((0..k).map(|i| each.min(dim.saturating_sub(i * each))).collect())
        }
    }
}

/// Evaluates `op` on constant inputs (the folder). `None` inputs are omitted optional ones.
pub fn eval(op: &Op, inputs: &[Option<&HostTensor>], n_outputs: usize) -> Result<Vec<HostTensor>> {
    let get = |i: usize| inputs.get(i).copied().flatten().ok_or_else(|| err("node", format!("input {i} is missing")));
    let known: Vec<Known<'_>> = inputs.iter().map(|t| t.map_or(Known::Absent, Known::Const)).collect();
    let shapes = |k: &[Known<'_>]| infer_shapes(op, k, n_outputs);
    let one = |t: HostTensor| Ok(vec![t]);
    match op {
        Op::Constant(t) => one(t.clone()),
        Op::Identity => one(get(0)?.clone()),
        Op::Cast { to_float } => {
            let x = get(0)?;
            one(if *to_float {
                HostTensor::f32(x.shape.clone(), x.as_f32())
            } else {
                HostTensor::i64(x.shape.clone(), x.as_i64())
            })
        }
        Op::Unary(u) => {
            let x = get(0)?;
            one(HostTensor::f32(x.shape.clone(), x.as_f32().iter().map(|&v| u.apply(v)).collect()))
        }
        Op::Binary(bop) => {
            let (x, y) = (get(0)?, get(1)?);
            let out = shapes(&known)?.remove(0);
            if x.is_int() && y.is_int() {
                let n = numel(&out)?;
                let (xs, ys) = (bcast_i64(&x.as_i64(), &x.shape, &out, n), bcast_i64(&y.as_i64(), &y.shape, &out, n));
                let f = |a: i64, b: i64| -> Result<i64> {
                    Ok(match *bop {
                        BinaryOp::Add => a.wrapping_add(b),
                        BinaryOp::Sub => a.wrapping_sub(b),
                        BinaryOp::Mul => a.wrapping_mul(b),
                        BinaryOp::Div if b != 0 => a.wrapping_div(b),
                        BinaryOp::Max => a.max(b),
                        BinaryOp::Min => a.min(b),
                        _ => return Err(err("integer op", format!("{bop:?} on {a}, {b}"))),
                    })
                };
                one(HostTensor::i64(out, xs.iter().zip(&ys).map(|(&a, &b)| f(a, b)).collect::<Result<_>>()?))
            } else {
                let mut data = vec![0.0; numel(&out)?];
                pointwise::binary(*bop, &x.as_f32(), &x.shape, &y.as_f32(), &y.shape, &out, &mut data);
                one(HostTensor::f32(out, data))
            }
        }
        Op::Mod => {
            let (x, y) = (get(0)?, get(1)?);
            let out = shapes(&known)?.remove(0);
            let n = numel(&out)?;
            if x.is_int() && y.is_int() {
                let (xs, ys) = (bcast_i64(&x.as_i64(), &x.shape, &out, n), bcast_i64(&y.as_i64(), &y.shape, &out, n));
                // ONNX Mod (fmod = 0): the remainder takes the divisor's sign.
                let r = xs
                    .iter()
                    .zip(&ys)
                    .map(|(&a, &b)| {
                        if b == 0 {
                            Err(err("Mod", "division by 0".into()))
                        } else {
                            Ok(a.rem_euclid(b) + if b < 0 && a.rem_euclid(b) != 0 { b } else { 0 })
                        }
                    })
                    .collect::<Result<_>>()?;
                one(HostTensor::i64(out, r))
            } else {
                let (xs, ys) = (bcast_f64(x, &out, n), bcast_f64(y, &out, n));
                // fmod (the sign of the dividend), as a − trunc(a/b)·b: exact for the small
                // values of shape arithmetic, and no libm `fmod` in the browser build.
                one(HostTensor::f32(out, xs.iter().zip(&ys).map(|(&a, &b)| (a - (a / b).trunc() * b) as f32).collect()))
            }
        }
        Op::Compare(c) => {
            let (x, y) = (get(0)?, get(1)?);
            let out = shapes(&known)?.remove(0);
            let n = numel(&out)?;
            let (xs, ys) = (bcast_f64(x, &out, n), bcast_f64(y, &out, n));
            one(HostTensor::i64(
                out,
                xs.iter()
                    .zip(&ys)
                    .map(|(a, b)| {
                        i64::from(match c {
                            Compare::Equal => a == b,
                            Compare::Less => a < b,
                            Compare::Greater => a > b,
                        })
                    })
                    .collect(),
            ))
        }
        Op::Where => {
            let (c, x, y) = (get(0)?, get(1)?, get(2)?);
            let out = shapes(&known)?.remove(0);
            let n = numel(&out)?;
            let cs = bcast_f64(c, &out, n);
            let (xs, ys) = (bcast_f64(x, &out, n), bcast_f64(y, &out, n));
            let pick = cs.iter().zip(xs.iter().zip(&ys)).map(|(&c, (&a, &b))| if c != 0.0 { a } else { b });
            one(if x.is_int() && y.is_int() {
                HostTensor::i64(out, pick.map(|v| v as i64).collect())
            } else {
                HostTensor::f32(out, pick.map(|v| v as f32).collect())
            })
        }
        Op::MatMul | Op::Gemm { .. } => {
            let out = shapes(&known)?.remove(0);
            let (a, b) = (get(0)?, get(1)?);
            let (mut ta, mut tb) = (false, false);
            let (mut alpha, mut beta) = (1.0f32, 1.0f32);
            if let Op::Gemm { alpha: al, beta: be, trans_a, trans_b } = op {
                (ta, tb, alpha, beta) = (*trans_a, *trans_b, *al, *be);
            }
            let mut data = matmul_host(&a.as_f32(), &a.shape, &b.as_f32(), &b.shape, ta, tb, &out)?;
            if let Op::Gemm { .. } = op {
                data.iter_mut().for_each(|v| *v *= alpha);
                if let Some(c) = inputs.get(2).copied().flatten() {
                    if pointwise::broadcast(&c.shape, &out)? != out {
                        return Err(err("Gemm", format!("bias {:?} for output {out:?}", c.shape)));
                    }
                    let bias = bcast_f64(c, &out, data.len());
                    data.iter_mut().zip(&bias).for_each(|(v, &c)| *v += beta * c as f32);
                }
            }
            one(HostTensor::f32(out, data))
        }
        Op::Concat { axis: ax } => {
            let out = shapes(&known)?.remove(0);
            let a = axis(*ax, out.len(), "Concat")?;
            let outer: usize = out[..a].iter().product();
            let parts: Vec<&HostTensor> = (0..inputs.len()).map(get).collect::<Result<_>>()?;
            let int = parts.iter().all(|p| p.is_int());
            let mut f = Vec::new();
            let mut i = Vec::new();
            for o in 0..outer {
                for p in &parts {
                    let chunk: usize = p.shape[a..].iter().product();
                    if int {
                        i.extend_from_slice(&p.as_i64()[o * chunk..(o + 1) * chunk]);
                    } else {
                        f.extend_from_slice(&p.as_f32()[o * chunk..(o + 1) * chunk]);
                    }
                }
            }
            one(if int { HostTensor::i64(out, i) } else { HostTensor::f32(out, f) })
        }
        Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze { .. } | Op::Unsqueeze { .. } => {
            let out = shapes(&known)?.remove(0);
            let x = get(0)?;
            one(HostTensor { shape: out, data: x.data.clone() })
        }
        Op::Expand => {
            let out = shapes(&known)?.remove(0);
            let x = get(0)?;
            let n = numel(&out)?;
            one(if x.is_int() {
                HostTensor::i64(out.clone(), bcast_i64(&x.as_i64(), &x.shape, &out, n))
            } else {
                HostTensor::f32(out.clone(), bcast_f64(x, &out, n).iter().map(|&v| v as f32).collect())
            })
        }
        Op::Transpose { perm } => {
            let x = get(0)?;
            let p = perm_of(perm.as_deref(), x.shape.len())?;
            let out: Vec<usize> = p.iter().map(|&i| x.shape[i]).collect();
            let (si, n) = (strides(&x.shape), numel(&out)?);
            let src: Vec<usize> = (0..n)
                .map(|flat| {
                    let mut rem = flat;
                    let mut off = 0;
                    for (d, &od) in out.iter().enumerate().rev() {
                        off += (rem % od) * si[p[d]];
                        rem /= od;
                    }
                    off
                })
                .collect();
            one(gather_flat(x, out, &src))
        }
        Op::Gather { axis: ax } => {
            let (x, idx) = (get(0)?, get(1)?);
            let a = axis(*ax, x.shape.len(), "Gather")?;
            let out = shapes(&known)?.remove(0);
            let (outer, d, inner): (usize, usize, usize) =
                (x.shape[..a].iter().product(), x.shape[a], x.shape[a + 1..].iter().product());
            let ids = idx.as_i64();
            let mut src = Vec::with_capacity(numel(&out)?);
            for o in 0..outer {
                for &i in &ids {
                    let i = if i < 0 { i + d as i64 } else { i };
                    if !(0..d as i64).contains(&i) {
                        return Err(err("Gather", format!("index {i} out of 0..{d}")));
                    }
                    src.extend((0..inner).map(|k| (o * d + i as usize) * inner + k));
                }
            }
            one(gather_flat(x, out, &src))
        }
        Op::Shape { .. } => {
            let x = get(0)?;
            let out = shapes(&known)?.remove(0);
            let r = x.shape.len() as i64;
            let Op::Shape { start, .. } = op else { unreachable!() };
            let s = (if *start < 0 { start + r } else { *start }).clamp(0, r) as usize;
            one(HostTensor::i64(out.clone(), x.shape[s..s + out[0]].iter().map(|&d| d as i64).collect()))
        }
        Op::ConstantOfShape { value } => {
            let spec: Vec<usize> = get(0)?.as_i64().iter().map(|&d| d.max(0) as usize).collect();
            let n = numel(&spec)?;
            one(match &value.data {
                HostData::F32(v) => HostTensor::f32(spec, vec![v.first().copied().unwrap_or(0.0); n]),
                HostData::I64(v) => HostTensor::i64(spec, vec![v.first().copied().unwrap_or(0); n]),
            })
        }
        Op::Range => {
            let (s, l, d) = (get(0)?, get(1)?, get(2)?);
            if s.is_int() {
                let (a, b, st) = (s.as_i64()[0], l.as_i64()[0], d.as_i64()[0]);
                if st == 0 {
                    return Err(err("Range", "delta 0".into()));
                }
                let count = ((b - a) as f64 / st as f64).ceil().max(0.0) as usize;
                if count > 1 << 24 {
                    return Err(err("Range", format!("{count} values")));
                }
                one(HostTensor::i64(vec![count], (0..count as i64).map(|i| a + i * st).collect()))
            } else {
                let (a, b, st) = (s.as_f32()[0], l.as_f32()[0], d.as_f32()[0]);
                let count = ((b - a) / st).ceil().max(0.0);
                if !(count.is_finite() && count <= (1 << 24) as f32) {
                    return Err(err("Range", format!("{} values", num(count))));
                }
                one(HostTensor::f32(vec![count as usize], (0..count as usize).map(|i| a + i as f32 * st).collect()))
            }
        }
        Op::Slice => {
            let x = get(0)?;
            let out = shapes(&known)?.remove(0);
            let (starts, ends) = (get(1)?.as_i64(), get(2)?.as_i64());
            let axes =
                inputs.get(3).copied().flatten().map_or_else(|| (0..starts.len() as i64).collect(), HostTensor::as_i64);
            let steps = inputs.get(4).copied().flatten().map_or_else(|| vec![1; starts.len()], HostTensor::as_i64);
            let rank = x.shape.len();
            let (mut lo, mut st) = (vec![0i64; rank], vec![1i64; rank]);
            for (i, &a) in axes.iter().enumerate() {
                let a = axis(a, rank, "Slice")?;
                let (l, _, s) = slice_range(x.shape[a], starts[i], ends[i], steps[i])?;
                (lo[a], st[a]) = (l, s);
            }
            let si = strides(&x.shape);
            let n = numel(&out)?;
            let src: Vec<usize> = (0..n)
                .map(|flat| {
                    let mut rem = flat;
                    let mut off = 0i64;
                    for d in (0..rank).rev() {
                        let k = (rem % out[d]) as i64;
                        rem /= out[d];
                        off += (lo[d] + k * st[d]) * si[d] as i64;
                    }
                    off as usize
                })
                .collect();
            one(gather_flat(x, out, &src))
        }
        Op::Split { axis: ax, .. } => {
            let x = get(0)?;
            let outs = shapes(&known)?;
            let a = axis(*ax, x.shape.len(), "Split")?;
            let outer: usize = x.shape[..a].iter().product();
            let inner: usize = x.shape[a + 1..].iter().product();
            let mut at = 0;
            let mut res = Vec::new();
            for s in outs {
                let mut src = Vec::new();
                for o in 0..outer {
                    let base = (o * x.shape[a] + at) * inner;
                    src.extend(base..base + s[a] * inner);
                }
                at += s[a];
                res.push(gather_flat(x, s, &src));
            }
            Ok(res)
        }
        Op::Softmax { axis: ax } => {
            let x = get(0)?;
            let a = axis(*ax, x.shape.len(), "Softmax")?;
            let inner: usize = x.shape[a + 1..].iter().product();
            let d = x.shape[a];
            let mut v = x.as_f32();
            for o in 0..x.shape[..a].iter().product::<usize>() {
                for k in 0..inner {
                    let at = |j: usize| (o * d + j) * inner + k;
                    let m = (0..d).map(|j| v[at(j)]).fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = (0..d).map(|j| (v[at(j)] - m).exp()).sum();
                    for j in 0..d {
                        v[at(j)] = (v[at(j)] - m).exp() / sum;
                    }
                }
            }
            one(HostTensor::f32(x.shape.clone(), v))
        }
        Op::ReduceMean { .. } | Op::ReduceSum { .. } => {
            let x = get(0)?;
            let out = shapes(&known)?.remove(0);
            let mean = matches!(op, Op::ReduceMean { .. });
            let kept: Vec<usize> = {
                let mut reduced_keep = x.shape.clone();
                let n_out = numel(&out)?;
                // Reduced dims are those where the kept-dims output is 1 and the input is not, or
                // which vanished; recompute via the keep-dims form.
                let axes_all: Vec<bool> = match op {
                    Op::ReduceMean { axes, .. } | Op::ReduceSum { axes, .. } => {
                        let ax = axes
                            .clone()
                            .or_else(|| inputs.get(1).copied().flatten().map(HostTensor::as_i64))
                            .unwrap_or_else(|| (0..x.shape.len() as i64).collect());
                        let ax: Vec<usize> =
                            ax.iter().map(|&a| axis(a, x.shape.len(), "Reduce")).collect::<Result<_>>()?;
                        (0..x.shape.len()).map(|i| ax.contains(&i)).collect()
                    }
                    _ => unreachable!(),
                };
                for (i, r) in axes_all.iter().enumerate() {
                    if *r {
                        reduced_keep[i] = 1;
                    }
                }
                debug_assert_eq!(numel(&reduced_keep)?, n_out);
                reduced_keep
            };
            let sk = strides(&kept);
            let mut acc = vec![0f64; numel(&kept)?];
            let count = (x.len() / acc.len().max(1)).max(1) as f64;
            for (flat, &v) in x.as_f32().iter().enumerate() {
                let mut rem = flat;
                let mut off = 0;
                for d in (0..x.shape.len()).rev() {
                    let k = rem % x.shape[d];
                    rem /= x.shape[d];
                    if kept[d] != 1 {
                        off += k * sk[d];
                    }
                }
                acc[off] += v as f64;
            }
            one(HostTensor::f32(out, acc.iter().map(|&s| (if mean { s / count } else { s }) as f32).collect()))
        }
        Op::LayerNorm { axis: ax, eps } => {
            let x = get(0)?;
            let a = axis(*ax, x.shape.len(), "LayerNormalization")?;
            let inner: usize = x.shape[a..].iter().product();
            let (g, b) = (get(1)?.as_f32(), inputs.get(2).copied().flatten().map(HostTensor::as_f32));
            let mut v = x.as_f32();
            for row in v.chunks_mut(inner.max(1)) {
                let mean = row.iter().map(|&u| u as f64).sum::<f64>() / inner as f64;
                let var = row.iter().map(|&u| (u as f64 - mean).powi(2)).sum::<f64>() / inner as f64;
                let inv = 1.0 / (var + *eps as f64).sqrt();
                for (j, u) in row.iter_mut().enumerate() {
                    *u =
                        ((*u as f64 - mean) * inv) as f32 * g[j % g.len()] + b.as_ref().map_or(0.0, |b| b[j % b.len()]);
                }
            }
            one(HostTensor::f32(x.shape.clone(), v))
        }
        other => Err(err("fold", format!("{} cannot be folded on the host", other.name()))),
    }
}

fn gather_flat(x: &HostTensor, shape: Vec<usize>, src: &[usize]) -> HostTensor {
    match &x.data {
        HostData::F32(v) => HostTensor::f32(shape, src.iter().map(|&i| v[i]).collect()),
        HostData::I64(v) => HostTensor::i64(shape, src.iter().map(|&i| v[i]).collect()),
    }
}

fn bcast_index(shape: &[usize], out: &[usize], n: usize) -> Vec<usize> {
    let st = pointwise::broadcast_strides(shape, out);
    (0..n)
        .map(|flat| {
            let mut rem = flat;
            let mut off = 0;
            for d in (0..out.len()).rev() {
                off += (rem % out[d]) * st[d];
                rem /= out[d];
            }
            off
        })
        .collect()
}

fn bcast_i64(v: &[i64], shape: &[usize], out: &[usize], n: usize) -> Vec<i64> {
    bcast_index(shape, out, n).iter().map(|&i| v[i]).collect()
}

fn bcast_f64(t: &HostTensor, out: &[usize], n: usize) -> Vec<f64> {
    let idx = bcast_index(&t.shape, out, n);
    match &t.data {
        HostData::F32(v) => idx.iter().map(|&i| v[i] as f64).collect(),
        HostData::I64(v) => idx.iter().map(|&i| v[i] as f64).collect(),
    }
}

/// Batched matrix product on the host (f64 accumulation), with broadcasting batch dims.
fn matmul_host(
    a: &[f32],
    sa: &[usize],
    b: &[f32],
    sb: &[usize],
    ta: bool,
    tb: bool,
    out: &[usize],
) -> Result<Vec<f32>> {
    let a2: Vec<usize> = if sa.len() == 1 { vec![1, sa[0]] } else { sa.to_vec() };
    let b2: Vec<usize> = if sb.len() == 1 { vec![sb[0], 1] } else { sb.to_vec() };
    let (ra, ca) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (rb, cb) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    let (m, k) = if ta { (ca, ra) } else { (ra, ca) };
    let n = if tb { rb } else { cb };
    let batch_shape = pointwise::broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    let batches = numel(&batch_shape)?;
    let ia = bcast_index(&a2[..a2.len() - 2], &batch_shape, batches);
    let ib = bcast_index(&b2[..b2.len() - 2], &batch_shape, batches);
    let mut o = vec![0f32; batches * m * n];
    for bi in 0..batches {
        let (pa, pb) = (&a[ia[bi] * ra * ca..], &b[ib[bi] * rb * cb..]);
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    let x = if ta { pa[p * ca + i] } else { pa[i * ca + p] };
                    let y = if tb { pb[j * cb + p] } else { pb[p * cb + j] };
                    s += x as f64 * y as f64;
                }
                o[(bi * m + i) * n + j] = s as f32;
            }
        }
    }
    debug_assert_eq!(o.len(), numel(out)?);
    Ok(o)
}
