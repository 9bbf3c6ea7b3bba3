//! The graph on a `Backend`: per batch size, a plan (shapes inferred, shape subgraphs and
//! everything else that depends only on constants folded on the host, cheap fusions applied,
//! each value freed after its last use), then the plan's steps run on the backend's ops — the
//! same code on the CPU kernels and on WGSL.

use super::declaration::Declaration;
use super::fold::{self, Known};
use super::graph::{Graph, HostData, HostTensor, Op};
use crate::backend::Backend;
use crate::cpu::Activation;
use crate::error::{Error, Result, shown};
use crate::pointwise::{BinaryOp, UnaryOp};
use crate::sorted_map::SortedMap;
use crate::tensor::Tensor;
use std::sync::{Arc, Mutex};

/// Where a step reads an input from.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// A value computed in this call.
    Slot(usize),
    /// A constant of the plan (uploaded once per runner).
    Const(usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// act(x[r, k] · w[m, k]ᵀ + b[m]) → [r, m] (`w` and `b` constants).
    Linear {
        x: usize,
        w: usize,
        b: Option<usize>,
        act: Activation,
        out: usize,
    },
    Unary {
        x: usize,
        op: UnaryOp,
        out: usize,
    },
    Binary {
        a: Operand,
        b: Operand,
        op: BinaryOp,
        out: usize,
    },
    /// Along axis 1.
    Concat {
        a: Operand,
        b: Operand,
        out: usize,
    },
    Reshape {
        x: usize,
        shape: Vec<usize>,
        out: usize,
    },
    /// Rows of a constant table picked by the call's class labels.
    Embedding {
        table: usize,
        shape: Vec<usize>,
        out: usize,
    },
    /// NCHW convolution, square stride, symmetric zero padding (`w`, `b` constants).
    Conv {
        x: usize,
        w: usize,
        b: Option<usize>,
        stride: usize,
        pad: usize,
        out: usize,
    },
    /// Normalisation over each (image, group) of NCHW (`gamma`, `beta` constants), then `act`.
    GroupNorm {
        x: usize,
        groups: usize,
        gamma: usize,
        beta: usize,
        eps: f32,
        act: Activation,
        out: usize,
    },
    Upsample2x {
        x: usize,
        out: usize,
    },
    /// Transposes, slices and picks: out[i] = x[offset + Σ k_d·strides[d]].
    StridedCopy {
        x: usize,
        shape: Vec<usize>,
        offset: usize,
        strides: Vec<usize>,
        out: usize,
    },
    /// Batched product of two values (attention's QKᵀ and AV).
    MatMul {
        a: Operand,
        b: Operand,
        out: usize,
    },
    /// Over the last axis.
    Softmax {
        x: usize,
        out: usize,
    },
    /// Over the trailing values `gamma` covers.
    LayerNorm {
        x: usize,
        gamma: usize,
        beta: usize,
        eps: f32,
        out: usize,
    },
    /// The time program's value `value` (batch 1), broadcast to `shape` by adding `zeros`.
    TimeValue {
        value: usize,
        zeros: Option<usize>,
        out: usize,
    },
    /// v = a·out + b·x, the declaration's conversion to a velocity.
    Convert {
        out: usize,
    },
}

impl Step {
    /// What the step runs, with its fused activation (`GroupNorm+Silu`): for `info` and tests.
    fn kind(&self) -> String {
        let (name, act) = match self {
            Step::Linear { act, .. } => ("Linear", *act),
            Step::GroupNorm { act, .. } => ("GroupNorm", *act),
            Step::Unary { op, .. } => return format!("{op:?}"),
            Step::Binary { op, .. } => return format!("{op:?}"),
            Step::Concat { .. } => ("Concat", Activation::None),
            Step::Reshape { .. } => ("Reshape", Activation::None),
            Step::Embedding { .. } => ("Embedding", Activation::None),
            Step::Conv { .. } => ("Conv", Activation::None),
            Step::Upsample2x { .. } => ("Upsample2x", Activation::None),
            Step::StridedCopy { .. } => ("StridedCopy", Activation::None),
            Step::MatMul { .. } => ("MatMul", Activation::None),
            Step::Softmax { .. } => ("Softmax", Activation::None),
            Step::LayerNorm { .. } => ("LayerNorm", Activation::None),
            Step::TimeValue { .. } => ("TimeValue", Activation::None),
            Step::Convert { .. } => ("Convert", Activation::None),
        };
        if act == Activation::None { name.into() } else { format!("{name}+{act:?}") }
    }

    fn reads(&self) -> Vec<usize> {
        let slot = |o: &Operand| match o {
            Operand::Slot(s) => Some(*s),
            Operand::Const(_) => None,
        };
        match self {
            Step::Linear { x, .. }
            | Step::Unary { x, .. }
            | Step::Reshape { x, .. }
            | Step::Conv { x, .. }
            | Step::GroupNorm { x, .. }
            | Step::Upsample2x { x, .. }
            | Step::StridedCopy { x, .. }
            | Step::Softmax { x, .. }
            | Step::LayerNorm { x, .. } => vec![*x],
            Step::MatMul { a, b, .. } => slot(a).into_iter().chain(slot(b)).collect(),
            Step::Binary { a, b, .. } | Step::Concat { a, b, .. } => slot(a).into_iter().chain(slot(b)).collect(),
            Step::Embedding { .. } | Step::TimeValue { .. } => vec![],
            Step::Convert { out } => vec![*out, X],
        }
    }
    fn writes(&self) -> usize {
        match self {
            Step::Linear { out, .. }
            | Step::Unary { out, .. }
            | Step::Binary { out, .. }
            | Step::Concat { out, .. }
            | Step::Reshape { out, .. }
            | Step::Embedding { out, .. }
            | Step::Conv { out, .. }
            | Step::GroupNorm { out, .. }
            | Step::Upsample2x { out, .. }
            | Step::StridedCopy { out, .. }
            | Step::MatMul { out, .. }
            | Step::Softmax { out, .. }
            | Step::LayerNorm { out, .. }
            | Step::TimeValue { out, .. }
            | Step::Convert { out } => *out,
        }
    }
}

/// Slot of x (bound by the caller), of t and of a flow map's second time (uploaded per call).
const X: usize = 0;
const T: usize = 1;
const H: usize = 2;

/// A value during planning.
#[derive(Debug, Clone)]
enum PVal {
    Const(Arc<HostTensor>),
    Dyn {
        slot: usize,
        shape: Vec<usize>,
    },
    /// The call's class labels (possibly reshaped).
    Ids {
        shape: Vec<usize>,
    },
    /// A value of t (and constants) only, evaluated on the host once per call at batch 1
    /// (`shape1`) — every row has the same t — and broadcast to `shape` where it meets x.
    Time {
        shape: Vec<usize>,
        shape1: Vec<usize>,
    },
}

/// An input of a node of the per-call time program.
#[derive(Debug)]
enum TimeIn {
    Const(Arc<HostTensor>),
    Value(String),
    Absent,
}

/// The steps of one batch size.
#[derive(Debug)]
struct Plan {
    steps: Vec<Step>,
    /// Constants the steps read, by index.
    consts: Vec<Arc<HostTensor>>,
    /// Stable keys of `consts` for the runner's upload cache (a weight is uploaded once, not
    /// once per batch size).
    const_keys: Vec<String>,
    /// Every tensor whose address is part of a key in `const_keys`, held for as long as the
    /// plan (and so the runner's upload cache) lives: a tensor folded while planning is
    /// otherwise freed when planning ends, and another batch size's plan could then get a
    /// different tensor at the same address and be handed the first one's upload.
    _pinned: Vec<Arc<HostTensor>>,
    /// For each step, the slots whose last read it is.
    frees: Vec<Vec<usize>>,
    output: usize,
    slots: usize,
    uses_t: bool,
    uses_h: bool,
    /// Values held by each slot.
    sizes: Vec<usize>,
    /// Nodes of t and constants only, evaluated on the host per call (op, inputs, outputs).
    time_program: Vec<(Op, Vec<TimeIn>, Vec<String>)>,
    /// The time program's values that `TimeValue` steps read.
    time_values: Vec<String>,
}

impl Plan {
    /// The most values alive at once during a call, and the largest single value.
    fn peak(&self) -> (usize, usize) {
        let mut live: usize = self.sizes[X] + self.sizes[T] + self.sizes[H];
        let mut peak = live;
        for (i, s) in self.steps.iter().enumerate() {
            live += self.sizes[s.writes()];
            peak = peak.max(live);
            for &f in &self.frees[i] {
                live = live.saturating_sub(self.sizes[f]);
            }
        }
        (peak, self.sizes.iter().copied().max().unwrap_or(0))
    }
}

/// Per-sample memory of a graph: its plan for one sample's peak of live values and largest value.
pub fn per_sample_values(g: &Graph, d: &Declaration) -> Result<(usize, usize)> {
    Ok(make_plan(g, d, 1, false)?.peak())
}

/// A graph ready to run on one backend.
pub struct GraphRunner<B: Backend> {
    net: Arc<super::OnnxNetwork>,
    /// Plans by (batch size, time folded).
    plans: Mutex<SortedMap<(usize, bool), Arc<Plan>>>,
    uploaded: Mutex<SortedMap<String, Arc<B::Tensor>>>,
}

fn err(node: &str, what: String) -> Error {
    Error::Shape { op: "onnx", detail: format!("{node}: {what}") }
}

impl<B: Backend> GraphRunner<B> {
    pub fn new(net: Arc<super::OnnxNetwork>) -> Self {
        Self { net, plans: Mutex::default(), uploaded: Mutex::default() }
    }

    /// The plan for a batch of `n`; with `fold_time`, t's subgraph runs on the host at batch 1
    /// (falling back to the plain plan if the graph's time values are not row-wise).
    fn plan(&self, n: usize, fold_time: bool) -> Result<Arc<Plan>> {
        if let Some(p) = self.plans.lock().unwrap_or_else(|e| e.into_inner()).get(&(n, fold_time)) {
            return Ok(p.clone());
        }
        let (g, d) = (&self.net.graph, &self.net.declaration);
        let p = Arc::new(match make_plan(g, d, n, fold_time) {
            Ok(p) => p,
            Err(_) if fold_time => make_plan(g, d, n, false)?,
            Err(e) => return Err(e),
        });
        self.plans.lock().unwrap_or_else(|e| e.into_inner()).insert((n, fold_time), p.clone());
        Ok(p)
    }

    fn constant(&self, b: &B, plan: &Plan, i: usize) -> Result<Arc<B::Tensor>> {
        let key = &plan.const_keys[i];
        if let Some(t) = self.uploaded.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(t.clone());
        }
        let c = &plan.consts[i];
        let t = Arc::new(b.upload(&Tensor::new(c.shape.clone(), c.as_f32())?)?);
        self.uploaded.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), t.clone());
        Ok(t)
    }

    /// The velocity at (x [n, …], t) with `labels` for class-conditional graphs: the graph's
    /// output converted as its declaration says.
    /// The kinds of the steps a velocity call on a batch of `n` runs, in order, after folding
    /// and fusion (e.g. `["Conv", "GroupNorm+Silu", …]`).
    pub fn plan_summary(&self, n: usize) -> Result<Vec<String>> {
        Ok(self.plan(n, true)?.steps.iter().map(Step::kind).collect())
    }

    /// `step` is a flow map's jump length (its output is then the average velocity over
    /// [t, t + step]; 0 for other graphs).
    pub fn velocity(&self, b: &B, x: &B::Tensor, t: f32, step: f32, labels: Option<&[u32]>) -> Result<B::Tensor> {
        let n = b.shape(x)[0];
        let d = &self.net.declaration;
        let len = d.t_shape(n).iter().product::<usize>();
        // Only a flow map reads the second time.
        let jump = if d.jump.is_some() { vec![d.jump_time(t, step); len] } else { Vec::new() };
        self.run(b, x, &vec![d.model_time(t); len], &jump, labels, Some(t))
    }

    /// The graph's raw output for x and its t input as the graph takes it (`t_input`: the
    /// values of a tensor of the declared t shape, in the model's units; `jump_input` likewise
    /// for a flow map's step or end input, empty otherwise): for parity tests against ONNX
    /// Runtime, where rows may have different times.
    pub fn forward_raw(
        &self,
        b: &B,
        x: &B::Tensor,
        t_input: &[f32],
        jump_input: &[f32],
        labels: Option<&[u32]>,
    ) -> Result<B::Tensor> {
        self.run(b, x, t_input, jump_input, labels, None)
    }

    fn run(
        &self,
        b: &B,
        x: &B::Tensor,
        t_input: &[f32],
        jump_input: &[f32],
        labels: Option<&[u32]>,
        convert_at: Option<f32>,
    ) -> Result<B::Tensor> {
        let n = b.shape(x)[0];
        let plan = self.plan(n, convert_at.is_some())?;
        let decl = &self.net.declaration;
        // The time program, at batch 1, on the host (one row of every time value).
        let mut time: SortedMap<&str, HostTensor> = SortedMap::new();
        if !plan.time_program.is_empty() {
            let t1 = decl.t_shape(1);
            let len = t1.iter().product::<usize>();
            time.insert(&decl.t, HostTensor::f32(t1.clone(), vec![t_input.first().copied().unwrap_or(0.0); len]));
            if let Some(j) = &decl.jump {
                time.insert(j.name(), HostTensor::f32(t1, vec![jump_input.first().copied().unwrap_or(0.0); len]));
            }
            for (op, inputs, outputs) in &plan.time_program {
                let args: Vec<Option<&HostTensor>> = inputs
                    .iter()
                    .map(|i| match i {
                        TimeIn::Const(c) => Some(&**c),
                        TimeIn::Value(name) => time.get(name.as_str()),
                        TimeIn::Absent => None,
                    })
                    .collect();
                let outs = fold::eval(op, &args, outputs.len())?;
                for (name, v) in outputs.iter().zip(outs) {
                    time.insert(name, v);
                }
            }
        }
        let mut slots: Vec<Option<Val<'_, B::Tensor>>> = (0..plan.slots).map(|_| None).collect();
        slots[X] = Some(Val::Borrowed(x));
        if plan.uses_t {
            slots[T] = Some(Val::Owned(b.upload(&Tensor::new(decl.t_shape(n), t_input.to_vec())?)?));
        }
        if plan.uses_h {
            slots[H] = Some(Val::Owned(b.upload(&Tensor::new(decl.t_shape(n), jump_input.to_vec())?)?));
        }
        let ids: Vec<u32> = match (labels, &decl.y) {
            (Some(l), Some(_)) => {
                // The sampler's null class is num_classes; the graph's may differ.
                let k = decl.num_classes as u32;
                l.iter().map(|&c| if c == k { decl.null_class as u32 } else { c }).collect()
            }
            _ => Vec::new(),
        };
        // The plan's constants (uploaded once per runner, shared by every batch size).
        let konst: Vec<Arc<B::Tensor>> =
            (0..plan.consts.len()).map(|i| self.constant(b, &plan, i)).collect::<Result<_>>()?;
        let k = |i: usize| -> &B::Tensor { &konst[i] };
        for (si, step) in plan.steps.iter().enumerate() {
            let operand = |o: &Operand| -> Result<&B::Tensor> {
                match o {
                    Operand::Slot(s) => slot(&slots, *s),
                    Operand::Const(i) => Ok(k(*i)),
                }
            };
            let out = match step {
                Step::Linear { x, w, b: bias, act, .. } => b.linear(slot(&slots, *x)?, k(*w), bias.map(k), *act)?,
                Step::Unary { x, op, .. } => b.unary(slot(&slots, *x)?, *op)?,
                Step::Binary { a, b: rhs, op, .. } => b.binary(operand(a)?, operand(rhs)?, *op)?,
                Step::Concat { a, b: rhs, .. } => b.concat_axis1(operand(a)?, operand(rhs)?)?,
                Step::MatMul { a, b: rhs, .. } => b.matmul(operand(a)?, operand(rhs)?)?,
                // A value read for the last time is relabelled, not copied.
                Step::Reshape { x, shape, .. } => match slots[*x].take() {
                    Some(Val::Owned(t)) if plan.frees[si].contains(x) && *x != plan.output => {
                        b.reshape_owned(t, shape)?
                    }
                    v => {
                        slots[*x] = v;
                        b.reshape(slot(&slots, *x)?, shape)?
                    }
                },
                Step::Conv { x, w, b: bias, stride, pad, .. } => {
                    b.conv2d(slot(&slots, *x)?, k(*w), bias.map(k), *stride, *pad)?
                }
                Step::GroupNorm { x, groups, gamma, beta, eps, act, .. } => {
                    b.group_norm(slot(&slots, *x)?, *groups, k(*gamma), k(*beta), *eps, *act)?
                }
                Step::Upsample2x { x, .. } => b.upsample_nearest2x(slot(&slots, *x)?)?,
                Step::StridedCopy { x, shape, offset, strides, .. } => {
                    b.strided_copy(slot(&slots, *x)?, shape, *offset, strides)?
                }
                Step::Softmax { x, .. } => b.softmax(slot(&slots, *x)?)?,
                Step::LayerNorm { x, gamma, beta, eps, .. } => {
                    b.layer_norm(slot(&slots, *x)?, k(*gamma), k(*beta), *eps)?
                }
                Step::TimeValue { value, zeros, .. } => {
                    let v = time.get(plan.time_values[*value].as_str()).ok_or_else(|| Error::Shape {
                        op: "onnx",
                        detail: "internal: a time value was not computed".into(),
                    })?;
                    let row = b.upload(&Tensor::new(v.shape.clone(), v.as_f32())?)?;
                    match zeros {
                        Some(z) => b.binary(&row, k(*z), BinaryOp::Add)?,
                        None => row,
                    }
                }
                Step::Embedding { table, shape, .. } => {
                    if ids.len() != n {
                        return Err(err("class input", format!("{} labels for {n} rows", ids.len())));
                    }
                    let e = b.embedding(k(*table), &ids)?;
                    if b.shape(&e) == &shape[..] { e } else { b.reshape_owned(e, shape)? }
                }
                Step::Convert { out } => {
                    let Some(t) = convert_at else {
                        // Raw output: no conversion.
                        let o = slot(&slots, *out)?;
                        slots[step.writes()] = Some(Val::Owned(b.lincomb(o, &[])?));
                        continue;
                    };
                    let (ka, kb) = decl.velocity_coefficients(t);
                    let o = slot(&slots, *out)?;
                    // v = ka·o + kb·x = o + (ka − 1)·o + kb·x.
                    if ka == 1.0 && kb == 0.0 { b.lincomb(o, &[])? } else { b.lincomb(o, &[(ka - 1.0, o), (kb, x)])? }
                }
            };
            slots[step.writes()] = Some(Val::Owned(out));
            for &f in &plan.frees[si] {
                if f != plan.output {
                    slots[f] = None;
                }
            }
        }
        match slots[plan.output].take() {
            Some(Val::Owned(t)) => Ok(t),
            Some(Val::Borrowed(t)) => b.lincomb(t, &[]),
            None => Err(Error::Shape { op: "onnx", detail: "internal: no output".into() }),
        }
    }
}

/// A value during a call: x (borrowed from the caller), or computed.
enum Val<'a, T> {
    Borrowed(&'a T),
    Owned(T),
}

impl<T> Val<'_, T> {
    fn get(&self) -> &T {
        match self {
            Val::Borrowed(t) => t,
            Val::Owned(t) => t,
        }
    }
}

fn slot<'s, T>(s: &'s [Option<Val<'_, T>>], i: usize) -> Result<&'s T> {
    s[i].as_ref()
        .map(Val::get)
        .ok_or_else(|| Error::Shape { op: "onnx", detail: format!("internal: slot {i} is empty") })
}

/// Plans the graph for a batch of `n`.
/// With `fold_time`, values of t and constants only are evaluated on the host once per call at
/// batch 1 (the sampler's rows share one t): a time embedding costs one row, not n rows of
/// sin/cos. Without it (raw forwards with a t per row), t is a backend input like x.
fn make_plan(g: &Graph, d: &Declaration, n: usize, fold_time: bool) -> Result<Plan> {
    let mut values: SortedMap<&str, PVal> = SortedMap::new();
    for (name, t) in &g.constants {
        values.insert(name, PVal::Const(t.clone()));
    }
    let sample: Vec<usize> = match d.data {
        crate::model::DataConfig::Points2d { .. } => vec![n, 2],
        crate::model::DataConfig::Image { channels, height, width, .. } => vec![n, channels, height, width],
    };
    values.insert(&d.x, PVal::Dyn { slot: X, shape: sample.clone() });
    // t and a flow map's second time: with fold_time, host values at batch 1.
    let times = [Some((d.t.as_str(), T)), d.jump.as_ref().map(|j| (j.name(), H))];
    for (name, slot) in times.into_iter().flatten() {
        values.insert(
            name,
            if fold_time {
                PVal::Time { shape: d.t_shape(n), shape1: d.t_shape(1) }
            } else {
                PVal::Dyn { slot, shape: d.t_shape(n) }
            },
        );
    }
    let mut time_program: Vec<(Op, Vec<TimeIn>, Vec<String>)> = Vec::new();
    let mut time_slots: SortedMap<String, usize> = SortedMap::new();
    let mut time_values: Vec<String> = Vec::new();
    if let Some(y) = &d.y {
        values.insert(y, PVal::Ids { shape: vec![n] });
    }
    // Consumers of each value (for fusion: a MatMul output read only by one Add).
    let mut uses: SortedMap<&str, usize> = SortedMap::new();
    for node in &g.nodes {
        for i in node.inputs.iter().filter(|s| !s.is_empty()) {
            *uses.value_mut(i) += 1;
        }
    }
    for o in &g.outputs {
        *uses.value_mut(o) += 1;
    }
    let mut pb = PlanBuilder {
        steps: Vec::new(),
        consts: Vec::new(),
        const_keys: Vec::new(),
        pinned: Vec::new(),
        slots: 3,
        producer: SortedMap::new(),
        sizes: vec![0, 0, 0],
        shapes: SortedMap::from([(X, sample.clone())]),
    };
    for node in &g.nodes {
        let ins: Vec<Option<&PVal>> =
            node.inputs.iter().map(|i| if i.is_empty() { None } else { values.get(i.as_str()) }).collect();
        if let Some(pos) = node.inputs.iter().zip(&ins).position(|(name, v)| !name.is_empty() && v.is_none()) {
            return Err(err(&node.name, format!("input `{}` is unknown", shown(&node.inputs[pos], 40))));
        }
        // Values of t and constants only: the per-call host program.
        if ins.iter().any(|v| matches!(v, Some(PVal::Time { .. })))
            && ins.iter().all(|v| matches!(v, None | Some(PVal::Const(_) | PVal::Time { .. })))
        {
            let known = |batch1: bool| -> Vec<Known<'_>> {
                ins.iter()
                    .map(|v| match v {
                        None => Known::Absent,
                        Some(PVal::Const(t)) => Known::Const(t),
                        Some(PVal::Time { shape, shape1 }) => Known::Shape(if batch1 { shape1 } else { shape }),
                        Some(PVal::Dyn { shape, .. } | PVal::Ids { shape }) => Known::Shape(shape),
                    })
                    .collect()
            };
            let shapes = fold::infer_shapes(&node.op, &known(false), node.outputs.len())
                .and_then(|sn| Ok((sn, fold::infer_shapes(&node.op, &known(true), node.outputs.len())?)))
                .map_err(|e| err(&node.name, format!("the time program: {e}")))?;
            let inputs: Vec<TimeIn> = node
                .inputs
                .iter()
                .zip(&ins)
                .map(|(name, v)| match v {
                    None => TimeIn::Absent,
                    Some(PVal::Const(t)) => TimeIn::Const(t.clone()),
                    Some(_) => TimeIn::Value(name.clone()),
                })
                .collect();
            time_program.push((node.op.clone(), inputs, node.outputs.clone()));
            for ((name, shape), shape1) in node.outputs.iter().zip(shapes.0).zip(shapes.1) {
                values.insert(name, PVal::Time { shape, shape1 });
            }
            continue;
        }
        // Everything known on the host: fold.
        if ins.iter().all(|v| matches!(v, None | Some(PVal::Const(_)))) {
            let consts: Vec<Option<&HostTensor>> =
                ins.iter().map(|v| v.and_then(|v| if let PVal::Const(t) = v { Some(&**t) } else { None })).collect();
            let outs = fold::eval(&node.op, &consts, node.outputs.len()).map_err(|e| err(&node.name, e.to_string()))?;
            for (name, t) in node.outputs.iter().zip(outs) {
                values.insert(name, PVal::Const(Arc::new(t)));
            }
            continue;
        }
        // A time value meeting x or y: uploaded per call, broadcast to its batch shape.
        let converted: Vec<Option<PVal>> = node
            .inputs
            .iter()
            .zip(&ins)
            .map(|(name, v)| match v {
                Some(PVal::Time { shape, shape1 }) => pb
                    .time_value(name, shape, shape1, &mut time_slots, &mut time_values)
                    .map(|slot| Some(PVal::Dyn { slot, shape: shape.clone() }))
                    .map_err(|e| err(&node.name, e.to_string())),
                v => Ok(v.cloned()),
            })
            .collect::<Result<_>>()?;
        let ins: Vec<Option<&PVal>> = converted.iter().map(Option::as_ref).collect();
        let outs = pb.emit(node, &ins, &uses).map_err(|e| match e {
            Error::Shape { detail, .. } if !detail.starts_with(&node.name) => err(&node.name, detail),
            e => e,
        })?;
        for (name, v) in node.outputs.iter().zip(outs) {
            if let PVal::Dyn { slot, shape } = &v {
                if pb.sizes.len() <= *slot {
                    pb.sizes.resize(slot + 1, 0);
                }
                pb.sizes[*slot] = shape.iter().product();
                pb.shapes.insert(*slot, shape.clone());
            }
            values.insert(name, v);
        }
    }
    // Intermediate slots (reshapes inside a MatMul, …) hold as much as the value they carry.
    for (i, st) in pb.steps.iter().enumerate() {
        let _ = i;
        let w = st.writes();
        if pb.sizes.len() <= w {
            pb.sizes.resize(w + 1, 0);
        }
        if pb.sizes[w] == 0 {
            pb.sizes[w] = match st {
                Step::Reshape { shape, .. } | Step::Embedding { shape, .. } | Step::StridedCopy { shape, .. } => {
                    shape.iter().product()
                }
                Step::GroupNorm { x, .. } | Step::Upsample2x { x, .. } => {
                    pb.sizes.get(*x).copied().unwrap_or(0) * if matches!(st, Step::Upsample2x { .. }) { 4 } else { 1 }
                }
                _ => 0,
            };
        }
    }
    let out_name = g.outputs.first().ok_or_else(|| err("graph", "no output".into()))?;
    let (slot, shape) = match values.get(out_name.as_str()) {
        Some(PVal::Dyn { slot, shape }) => (*slot, shape.clone()),
        Some(PVal::Time { shape, shape1 }) => {
            (pb.time_value(out_name, shape, shape1, &mut time_slots, &mut time_values)?, shape.clone())
        }
        _ => return Err(err("graph", format!("output `{}` does not depend on x", shown(out_name, 40)))),
    };
    let slot = if shape != sample {
        if shape.iter().product::<usize>() != sample.iter().product::<usize>() {
            return Err(err("graph", format!("output has shape {shape:?}, the data needs {sample:?}")));
        }
        pb.push(|out| Step::Reshape { x: slot, shape: sample.clone(), out })
    } else {
        slot
    };
    pb.steps.push(Step::Convert { out: slot });
    let output = slot;
    // Dead steps (e.g. a Sigmoid folded into SiLU) are dropped; then each slot is freed after
    // its last read.
    let mut live = vec![false; pb.slots];
    live[output] = true;
    let mut kept = Vec::new();
    for s in pb.steps.into_iter().rev() {
        if live[s.writes()] || matches!(s, Step::Convert { .. }) {
            for r in s.reads() {
                live[r] = true;
            }
            kept.push(s);
        }
    }
    kept.reverse();
    let mut last = vec![usize::MAX; pb.slots];
    for (i, s) in kept.iter().enumerate() {
        for r in s.reads() {
            last[r] = i;
        }
    }
    let mut frees = vec![Vec::new(); kept.len()];
    for (slot, &i) in last.iter().enumerate() {
        if i != usize::MAX && slot != X {
            frees[i].push(slot);
        }
    }
    let reads = |slot: usize| !fold_time && kept.iter().any(|s| s.reads().contains(&slot));
    let (uses_t, uses_h) = (reads(T), reads(H));
    let mut sizes = pb.sizes;
    sizes.resize(pb.slots, 0);
    sizes[X] = sample.iter().product();
    sizes[T] = d.t_shape(n).iter().product();
    sizes[H] = if d.jump.is_some() { sizes[T] } else { 0 };
    Ok(Plan {
        time_program,
        time_values,
        steps: kept,
        consts: pb.consts,
        const_keys: pb.const_keys,
        _pinned: pb.pinned,
        frees,
        output,
        slots: pb.slots,
        uses_t,
        uses_h,
        sizes,
    })
}

struct PlanBuilder {
    steps: Vec<Step>,
    consts: Vec<Arc<HostTensor>>,
    const_keys: Vec<String>,
    /// See `Plan::_pinned`.
    pinned: Vec<Arc<HostTensor>>,
    slots: usize,
    /// The step that wrote each slot.
    producer: SortedMap<usize, usize>,
    /// Values of each slot (set when its shape is known).
    sizes: Vec<usize>,
    /// Shapes of the slots that hold a node's output.
    shapes: SortedMap<usize, Vec<usize>>,
}

impl PlanBuilder {
    fn push(&mut self, f: impl FnOnce(usize) -> Step) -> usize {
        let out = self.slots;
        self.slots += 1;
        self.producer.insert(out, self.steps.len());
        self.steps.push(f(out));
        out
    }

    /// A constant, keyed by its content's identity so that every batch size's plan shares the
    /// uploaded copy of a weight.
    fn konst(&mut self, t: Arc<HostTensor>, tag: &str) -> usize {
        let key = format!("{}{tag}", self.identity(&t));
        self.konst_keyed(t, key)
    }

    /// A key naming tensor `t` itself (its address), valid for as long as the plan lives: the
    /// plan holds `t` so that no other tensor can take its address (see `Plan::_pinned`).
    fn identity(&mut self, t: &Arc<HostTensor>) -> String {
        self.pinned.push(t.clone());
        format!("{:p}", Arc::as_ptr(t))
    }

    /// A constant computed at plan time from others, keyed by what it was made from (`key`).
    fn konst_keyed(&mut self, t: Arc<HostTensor>, key: String) -> usize {
        if let Some(i) = self.const_keys.iter().position(|k| *k == key) {
            return i;
        }
        self.consts.push(t);
        self.const_keys.push(key);
        self.consts.len() - 1
    }

    /// The slot whose values `s` holds, looking back through reshapes (which keep the layout).
    fn before_reshapes(&self, mut s: usize) -> usize {
        while let Some(&pi) = self.producer.get(&s)
            && let Step::Reshape { x, .. } = self.steps[pi]
        {
            s = x;
        }
        s
    }

    /// The exporters' GroupNorm before its affine — x of shape [n, c, h, w] viewed as
    /// [n, groups, L], instance-normalised, viewed back as `shape` — as one group norm over x:
    /// each group is the same contiguous block of a row either way. `s` is the normalised value
    /// about to be reshaped to `shape`.
    fn group_norm_through_reshapes(&mut self, s: usize, shape: &[usize]) -> Option<usize> {
        let &pi = self.producer.get(&self.before_reshapes(s))?;
        let Step::GroupNorm { x, groups, gamma, beta, eps, act: Activation::None, .. } = self.steps[pi] else {
            return None;
        };
        let x0 = self.before_reshapes(x);
        let c = *shape.get(1)?;
        if shape.len() != 4 || self.shapes.get(&x0).map(Vec::as_slice) != Some(shape) || c % groups != 0 {
            return None;
        }
        // The instance norm's per-group scale and shift, repeated over each group's channels.
        let per = c / groups;
        let spread = |i: usize| -> Vec<f32> {
            let v = self.consts[i].as_f32();
            (0..c).map(|ch| v[ch / per]).collect()
        };
        let (g, b) = (spread(gamma), spread(beta));
        let key = format!("{}:{}:groups{c}", self.const_keys[gamma], self.const_keys[beta]);
        let gi = self.konst_keyed(Arc::new(HostTensor::f32(vec![c], g)), format!("{key}:gamma"));
        let bi = self.konst_keyed(Arc::new(HostTensor::f32(vec![c], b)), format!("{key}:beta"));
        Some(self.push(|out| Step::GroupNorm { x: x0, groups, gamma: gi, beta: bi, eps, act: Activation::None, out }))
    }

    /// The slot of time value `name` (of batch shape `shape`, `shape1` at batch 1), uploaded once
    /// per call and broadcast over the batch where its shape needs it.
    fn time_value(
        &mut self,
        name: &str,
        shape: &[usize],
        shape1: &[usize],
        slots: &mut SortedMap<String, usize>,
        values: &mut Vec<String>,
    ) -> Result<usize> {
        if let Some(&s) = slots.get(name) {
            return Ok(s);
        }
        if shape1.len() != shape.len() || crate::pointwise::broadcast(shape1, shape).ok().as_deref() != Some(shape) {
            return Err(Error::Shape {
                op: "onnx",
                detail: format!("a value of t has shape {shape1:?} at batch 1 but {shape:?} at this batch"),
            });
        }
        values.push(name.to_string());
        let value = values.len() - 1;
        let zeros = (shape1 != shape).then(|| {
            let z = Arc::new(HostTensor::f32(shape.to_vec(), vec![0.0; shape.iter().product()]));
            self.konst(z, "")
        });
        let slot = self.push(|out| Step::TimeValue { value, zeros, out });
        if self.sizes.len() <= slot {
            self.sizes.resize(slot + 1, 0);
        }
        self.sizes[slot] = shape.iter().product();
        slots.insert(name.to_string(), slot);
        Ok(slot)
    }

    /// A convolution in `groups` groups: each group's input channels (a strided copy) convolved
    /// with its slice of the kernel, then joined along the channels.
    #[allow(clippy::too_many_arguments)]
    fn conv_groups(
        &mut self,
        x: usize,
        xs: &[usize],
        w: &Arc<HostTensor>,
        bias: Option<&Arc<HostTensor>>,
        groups: usize,
        stride: usize,
        pad: usize,
    ) -> Result<usize> {
        let k = w.shape[2];
        if xs[2] + 2 * pad < k || xs[3] + 2 * pad < k {
            return Err(Error::Shape { op: "onnx", detail: format!("a {k}×{k} kernel on {xs:?} padded {pad}") });
        }
        if groups == 1 {
            let wi = self.konst(w.clone(), "");
            let bi = bias.map(|b| self.konst(b.clone(), ""));
            return Ok(self.push(|out| Step::Conv { x, w: wi, b: bi, stride, pad, out }));
        }
        let (cin_g, cout_g) = (xs[1] / groups, w.shape[0] / groups);
        if w.shape[1] != cin_g {
            return Err(Error::Shape {
                op: "onnx",
                detail: format!("grouped conv kernel {:?} for {} input channels in {groups} groups", w.shape, xs[1]),
            });
        }
        let (wv, bv) = (w.as_f32(), bias.map(|b| b.as_f32()));
        let st = row_major_strides(xs);
        let per = cout_g * cin_g * k * k;
        let mut acc: Option<Operand> = None;
        for g in 0..groups {
            let (shape, strides, offset) = (vec![xs[0], cin_g, xs[2], xs[3]], st.clone(), g * cin_g * st[1]);
            let part = self.push(|out| Step::StridedCopy { x, shape, offset, strides, out });
            let wg = self
                .konst(Arc::new(HostTensor::f32(vec![cout_g, cin_g, k, k], wv[g * per..(g + 1) * per].to_vec())), "");
            let bg = bv.as_ref().map(|b| {
                self.konst(Arc::new(HostTensor::f32(vec![cout_g], b[g * cout_g..(g + 1) * cout_g].to_vec())), "")
            });
            let y = self.push(|out| Step::Conv { x: part, w: wg, b: bg, stride, pad, out });
            acc = Some(match acc {
                None => Operand::Slot(y),
                Some(a) => Operand::Slot(self.push(|out| Step::Concat { a, b: Operand::Slot(y), out })),
            });
        }
        match acc {
            Some(Operand::Slot(s)) => Ok(s),
            _ => unreachable!("groups ≥ 2"),
        }
    }

    /// Bilinear 2× upsampling along `axis` (2: rows, 3: columns) of NCHW `x` with half-pixel
    /// centres (align_corners = false): out[2i] = ¾·x[i] + ¼·x[i−1], out[2i+1] = ¾·x[i] + ¼·x[i+1],
    /// edges clamped; even and odd outputs interleaved by joining them on a new axis.
    fn bilinear2x_axis(&mut self, x: usize, xs: &[usize], axis: usize) -> Result<usize> {
        let n = xs[axis];
        let st = row_major_strides(xs);
        let range = |this: &mut Self, from: usize, len: usize| {
            let mut shape = xs.to_vec();
            shape[axis] = len;
            let (strides, offset) = (st.clone(), from * st[axis]);
            this.push(|out| Step::StridedCopy { x, shape, offset, strides, out })
        };
        let outer: usize = xs[..axis].iter().product();
        let inner: usize = xs[axis + 1..].iter().product();
        // x shifted by one along the axis, the edge repeated.
        let (first, last) = (range(self, 0, 1), range(self, n - 1, 1));
        let (head, tail) =
            if n > 1 { (Some(range(self, 0, n - 1)), Some(range(self, 1, n - 1))) } else { (None, None) };
        let join = |this: &mut Self, a: usize, b: Option<usize>| -> Result<usize> {
            let Some(b) = b else { return Ok(a) };
            let mut shape = xs.to_vec();
            shape[axis] = n;
            let ap = PVal::Dyn {
                slot: a,
                shape: {
                    let mut s = xs.to_vec();
                    s[axis] = if a == first || a == last { 1 } else { n - 1 };
                    s
                },
            };
            let bp = PVal::Dyn {
                slot: b,
                shape: {
                    let mut s = xs.to_vec();
                    s[axis] = if b == first || b == last { 1 } else { n - 1 };
                    s
                },
            };
            this.concat(&[&ap, &bp], axis, &shape)
        };
        let prev = join(self, first, head)?;
        let next = match tail {
            Some(t) => join(self, t, Some(last))?,
            None => last,
        };
        let mix = |this: &mut Self, other: usize| {
            let t =
                this.push(|out| Step::Binary { a: Operand::Slot(other), b: Operand::Slot(x), op: BinaryOp::Sub, out });
            let q = this.konst(Arc::new(HostTensor::f32(vec![], vec![0.25])), "");
            let d = this.push(|out| Step::Binary { a: Operand::Slot(t), b: Operand::Const(q), op: BinaryOp::Mul, out });
            this.push(|out| Step::Binary { a: Operand::Slot(x), b: Operand::Slot(d), op: BinaryOp::Add, out })
        };
        let (even, odd) = (mix(self, prev), mix(self, next));
        // [outer, n, 1, inner] ++ [outer, n, 1, inner] on the new axis → [outer, 2n, inner].
        let e = PVal::Dyn { slot: even, shape: xs.to_vec() };
        let o = PVal::Dyn { slot: odd, shape: xs.to_vec() };
        let (ev, ov) = (self.view(&e, vec![outer * n, 1, inner])?, self.view(&o, vec![outer * n, 1, inner])?);
        let both = self.push(|out| Step::Concat { a: ev, b: ov, out });
        let mut shape = xs.to_vec();
        shape[axis] = 2 * n;
        Ok(self.push(|out| Step::Reshape { x: both, shape, out }))
    }

    /// `x` (of `shape`) with its axes in the order `perm` (a strided copy; none when `perm` is
    /// the identity).
    fn permute(&mut self, x: usize, shape: &[usize], perm: &[usize]) -> usize {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return x;
        }
        let st = row_major_strides(shape);
        let (out_shape, strides): (Vec<usize>, Vec<usize>) = perm.iter().map(|&d| (shape[d], st[d])).unzip();
        self.push(|out| Step::StridedCopy { x, shape: out_shape, offset: 0, strides, out })
    }

    /// `v` seen with another shape of the same size (a reshape step for a computed value, a
    /// relabelled constant otherwise).
    fn view(&mut self, v: &PVal, shape: Vec<usize>) -> Result<Operand> {
        Ok(match v {
            PVal::Dyn { slot, shape: s } if *s == shape => Operand::Slot(*slot),
            PVal::Dyn { slot, .. } => {
                let x = *slot;
                Operand::Slot(self.push(|out| Step::Reshape { x, shape, out }))
            }
            PVal::Const(t) if t.shape == shape => self.operand(v)?,
            PVal::Const(t) => Operand::Const(self.konst(Arc::new(HostTensor { shape, data: t.data.clone() }), "")),
            PVal::Ids { .. } | PVal::Time { .. } => self.operand(v)?,
        })
    }

    /// `parts` joined along `axis` into `shape`: along axis 1 directly, along any other as
    /// [outer, d, inner] views joined on their middle axis.
    fn concat(&mut self, parts: &[&PVal], axis: usize, shape: &[usize]) -> Result<usize> {
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let direct = axis == 1;
        let mut acc: Option<Operand> = None;
        for v in parts {
            let d = match v {
                PVal::Const(t) => t.shape[axis],
                PVal::Dyn { shape, .. } | PVal::Ids { shape } | PVal::Time { shape, .. } => shape[axis],
            };
            let b = if direct { self.operand(v)? } else { self.view(v, vec![outer, d, inner])? };
            acc = Some(match acc {
                None => b,
                Some(a) => Operand::Slot(self.push(|out| Step::Concat { a, b, out })),
            });
        }
        let Some(Operand::Slot(s)) = acc else {
            return Err(Error::Shape { op: "onnx", detail: "Concat of constants only (internal)".into() });
        };
        if direct {
            return Ok(s);
        }
        let s2 = shape.to_vec();
        Ok(self.push(|out| Step::Reshape { x: s, shape: s2, out }))
    }

    fn operand(&mut self, v: &PVal) -> Result<Operand> {
        match v {
            PVal::Dyn { slot, .. } => Ok(Operand::Slot(*slot)),
            PVal::Const(t) => Ok(Operand::Const(self.konst(t.clone(), ""))),
            // Time values are uploaded (made `Dyn`) before a node that reads them is emitted.
            PVal::Time { .. } => {
                Err(Error::Shape { op: "onnx", detail: "internal: a time value reached a step".into() })
            }
            PVal::Ids { .. } => Err(Error::Shape {
                op: "onnx",
                detail: "the class input is used other than to index an embedding table".into(),
            }),
        }
    }

    fn emit(
        &mut self,
        node: &super::graph::Node,
        ins: &[Option<&PVal>],
        uses: &SortedMap<&str, usize>,
    ) -> Result<Vec<PVal>> {
        let shape_of = |v: &PVal| -> Vec<usize> {
            match v {
                PVal::Const(t) => t.shape.clone(),
                PVal::Dyn { shape, .. } | PVal::Ids { shape } | PVal::Time { shape, .. } => shape.clone(),
            }
        };
        let known: Vec<Known<'_>> = ins
            .iter()
            .map(|v| match v {
                None => Known::Absent,
                Some(PVal::Const(t)) => Known::Const(t),
                Some(PVal::Dyn { shape, .. } | PVal::Ids { shape } | PVal::Time { shape, .. }) => Known::Shape(shape),
            })
            .collect();
        let in0 =
            ins.first().copied().flatten().ok_or_else(|| Error::Shape { op: "onnx", detail: "no input".into() })?;
        // A shape is known at plan time whatever the values are.
        if let Op::Shape { .. } = node.op {
            let s = shape_of(in0);
            let as_const = HostTensor::f32(s.clone(), vec![0.0; s.iter().product()]);
            let out = fold::eval(&node.op, &[Some(&as_const)], 1)?;
            return Ok(out.into_iter().map(|t| PVal::Const(Arc::new(t))).collect());
        }
        // Labels flow through shape-only ops unchanged.
        if let PVal::Ids { .. } = in0 {
            return match &node.op {
                Op::Identity
                | Op::Cast { to_float: false }
                | Op::Reshape { .. }
                | Op::Unsqueeze { .. }
                | Op::Squeeze { .. }
                | Op::Flatten { .. } => {
                    let s = fold::infer_shapes(&node.op, &known, 1)?.remove(0);
                    Ok(vec![PVal::Ids { shape: s }])
                }
                _ => Err(Error::Shape {
                    op: "onnx",
                    detail: format!("{} on the class input is not supported", node.op.name()),
                }),
            };
        }
        let out_shape = || fold::infer_shapes(&node.op, &known, node.outputs.len()).map(|mut v| v.remove(0));
        let dyn_out = |slot: usize, shape: Vec<usize>| PVal::Dyn { slot, shape };
        Ok(vec![match &node.op {
            Op::Identity | Op::Cast { to_float: true } => in0.clone(),
            Op::Unary(u) => {
                let PVal::Dyn { slot, shape } = in0 else { unreachable!("folded") };
                let (slot, shape) = (*slot, shape.clone());
                dyn_out(self.push(|out| Step::Unary { x: slot, op: *u, out }), shape)
            }
            Op::Binary(op) => {
                let (a, b) = (
                    ins[0].expect("checked"),
                    ins.get(1).copied().flatten().ok_or_else(|| err(&node.name, "missing input".into()))?,
                );
                let shape = out_shape()?;
                // x·sigmoid(x) → SiLU (one kernel instead of two and a temporary).
                if *op == BinaryOp::Mul
                    && let (PVal::Dyn { slot: sa, .. }, PVal::Dyn { slot: sb, .. }) = (a, b)
                {
                    for (k, (x, s)) in [(*sa, *sb), (*sb, *sa)].into_iter().enumerate() {
                        if let Some(&pi) = self.producer.get(&s)
                            && self.steps[pi] == (Step::Unary { x, op: UnaryOp::Sigmoid, out: s })
                            && shape_of(a) == shape_of(b)
                        {
                            // A linear layer or group norm read only by this SiLU takes it as
                            // its epilogue (the kernels apply it in registers).
                            if let Some(&li) = self.producer.get(&x)
                                && let Step::Linear { act: act @ Activation::None, .. }
                                | Step::GroupNorm { act: act @ Activation::None, .. } = &mut self.steps[li]
                                && uses.get(node.inputs[k].as_str()) == Some(&2)
                            {
                                *act = Activation::Silu;
                                return Ok(vec![dyn_out(x, shape)]);
                            }
                            return Ok(vec![dyn_out(
                                self.push(|out| Step::Unary { x, op: UnaryOp::Silu, out }),
                                shape,
                            )]);
                        }
                    }
                }
                // A group norm's output scaled or shifted per channel by a constant (the
                // exporters' GroupNorm affine) → the group norm's own gamma and beta.
                if matches!(op, BinaryOp::Mul | BinaryOp::Add) {
                    for (k, (v, c)) in [(a, b), (b, a)].into_iter().enumerate() {
                        if let (PVal::Dyn { slot, shape: vs }, PVal::Const(c)) = (v, c)
                            && *vs == shape
                            && uses.get(node.inputs[k].as_str()) == Some(&1)
                            && let Some(&pi) = self.producer.get(slot)
                            && let Step::GroupNorm { gamma, beta, act: Activation::None, .. } = self.steps[pi]
                            && let Some(cv) = per_channel(c, vs)
                        {
                            let (mut g, mut bt) = (self.consts[gamma].as_f32(), self.consts[beta].as_f32());
                            for ((g, bt), c) in g.iter_mut().zip(&mut bt).zip(&cv) {
                                if *op == BinaryOp::Mul {
                                    (*g, *bt) = (*g * c, *bt * c);
                                } else {
                                    *bt += c;
                                }
                            }
                            let c_key = self.identity(c);
                            let key = format!("{}:{}:{c_key}:{op:?}", self.const_keys[gamma], self.const_keys[beta]);
                            let n = g.len();
                            let gi = self.konst_keyed(Arc::new(HostTensor::f32(vec![n], g)), format!("{key}:gamma"));
                            let bi = self.konst_keyed(Arc::new(HostTensor::f32(vec![n], bt)), format!("{key}:beta"));
                            if let Step::GroupNorm { gamma, beta, .. } = &mut self.steps[pi] {
                                (*gamma, *beta) = (gi, bi);
                            }
                            return Ok(vec![v.clone()]);
                        }
                    }
                }
                // MatMul + bias → one linear with its bias.
                if *op == BinaryOp::Add {
                    for (lin, bias) in [(a, b), (b, a)] {
                        if let (PVal::Dyn { slot, .. }, PVal::Const(c)) = (lin, bias)
                            && let Some(&pi) = self.producer.get(slot)
                            && let Step::Linear { b: None, w, .. } = &self.steps[pi]
                            && c.shape.iter().product::<usize>() == *shape.last().unwrap_or(&0)
                            && c.shape.iter().rev().skip(1).all(|&d| d == 1)
                            && uses.get(node.inputs[if std::ptr::eq(lin, a) { 0 } else { 1 }].as_str()) == Some(&1)
                            && self.consts[*w].shape[0] == *shape.last().unwrap_or(&0)
                        {
                            let flat = Arc::new(HostTensor::f32(vec![c.len()], c.as_f32()));
                            // Keyed by the bias's own identity, not the flattened copy's.
                            let key = format!("{}:bias", self.identity(c));
                            let bi = self.konst_keyed(flat, key);
                            if let Step::Linear { b: slot_b, .. } = &mut self.steps[pi] {
                                *slot_b = Some(bi);
                            }
                            return Ok(vec![lin.clone()]);
                        }
                    }
                }
                let (oa, ob) = (self.operand(a)?, self.operand(b)?);
                dyn_out(self.push(|out| Step::Binary { a: oa, b: ob, op: *op, out }), shape)
            }
            Op::MatMul | Op::Gemm { .. } => {
                let (a, b) = (
                    ins[0].expect("checked"),
                    ins.get(1).copied().flatten().ok_or_else(|| err(&node.name, "missing input".into()))?,
                );
                let shape = out_shape()?;
                let (PVal::Dyn { slot, shape: xs }, PVal::Const(w)) = (a, b) else {
                    // Two computed values (attention's QKᵀ, AV), or a constant times a value.
                    if !matches!(node.op, Op::MatMul) || shape_of(a).len() < 2 || shape_of(b).len() < 2 {
                        return Err(err(
                            &node.name,
                            "Gemm of computed values, or MatMul of 1-D values, is not supported yet".into(),
                        ));
                    }
                    let (oa, ob) = (self.operand(a)?, self.operand(b)?);
                    return Ok(vec![dyn_out(self.push(|out| Step::MatMul { a: oa, b: ob, out }), shape)]);
                };
                let (trans_a, trans_b, alpha, beta) = match node.op {
                    Op::Gemm { trans_a, trans_b, alpha, beta } => (trans_a, trans_b, alpha, beta),
                    _ => (false, false, 1.0, 1.0),
                };
                if trans_a || w.shape.len() != 2 {
                    return Err(err(
                        &node.name,
                        format!(
                            "a product with a {}-D constant{} is not supported yet",
                            w.shape.len(),
                            if trans_a { " and transA" } else { "" }
                        ),
                    ));
                }
                let (k, m) = if trans_b { (w.shape[1], w.shape[0]) } else { (w.shape[0], w.shape[1]) };
                // The backend's linear takes W as [m, k] (PyTorch's layout): transpose once.
                let wt = if trans_b && alpha == 1.0 {
                    self.konst(w.clone(), ":w")
                } else {
                    let src = w.as_f32();
                    let mut t = vec![0f32; k * m];
                    for i in 0..k {
                        for j in 0..m {
                            t[j * k + i] = alpha * if trans_b { src[j * k + i] } else { src[i * m + j] };
                        }
                    }
                    let key = format!("{}:wT{}{:x}", self.identity(w), trans_b, alpha.to_bits());
                    let i = self.konst(Arc::new(HostTensor::f32(vec![m, k], t)), "");
                    self.const_keys[i] = key;
                    i
                };
                let rows = xs.iter().product::<usize>() / k.max(1);
                let (slot, xs) = (*slot, xs.clone());
                let x2 = if xs.len() == 2 {
                    slot
                } else {
                    self.push(|out| Step::Reshape { x: slot, shape: vec![rows, k], out })
                };
                let mut y = self.push(|out| Step::Linear { x: x2, w: wt, b: None, act: Activation::None, out });
                if let (Op::Gemm { .. }, Some(Some(PVal::Const(c)))) = (&node.op, ins.get(2)) {
                    let scaled =
                        Arc::new(HostTensor::f32(c.shape.clone(), c.as_f32().iter().map(|v| v * beta).collect()));
                    let ci = self.konst(scaled, "");
                    self.const_keys[ci] = format!("{}:c{:x}", self.identity(c), beta.to_bits());
                    if c.len() == m {
                        if let Step::Linear { b, .. } = &mut self.steps[self.producer[&y]] {
                            *b = Some(ci);
                        }
                    } else {
                        let yy = y;
                        y = self.push(|out| Step::Binary {
                            a: Operand::Slot(yy),
                            b: Operand::Const(ci),
                            op: BinaryOp::Add,
                            out,
                        });
                    }
                } else if let (Op::Gemm { .. }, Some(Some(c))) = (&node.op, ins.get(2)) {
                    let oc = self.operand(c)?;
                    let yy = y;
                    y = self.push(|out| Step::Binary { a: Operand::Slot(yy), b: oc, op: BinaryOp::Add, out });
                }
                if shape.len() != 2 {
                    let yy = y;
                    let s = shape.clone();
                    y = self.push(|out| Step::Reshape { x: yy, shape: s, out });
                }
                dyn_out(y, shape)
            }
            Op::Concat { axis } => {
                let shape = out_shape()?;
                let ax = fold::axis(*axis, shape.len(), "Concat")?;
                let parts: Vec<&PVal> = ins.iter().map(|v| v.expect("concat inputs are required")).collect();
                let slot = self.concat(&parts, ax, &shape)?;
                dyn_out(slot, shape)
            }
            Op::Pad { mode } => {
                let PVal::Dyn { shape: xs, .. } = in0 else { unreachable!("folded") };
                let konst = |i: usize| match ins.get(i).copied().flatten() {
                    Some(PVal::Const(t)) => Ok(Some(t.clone())),
                    None => Ok(None),
                    Some(_) => Err(err(&node.name, "Pad's pads, value and axes must be constants".into())),
                };
                let pads = konst(1)?.ok_or_else(|| err(&node.name, "Pad without pads".into()))?.as_i64();
                let value = konst(2)?.map_or(0.0, |v| v.as_f32().first().copied().unwrap_or(0.0));
                let rank = xs.len();
                let axes: Vec<usize> = match konst(3)? {
                    Some(a) => a.as_i64().iter().map(|&a| fold::axis(a, rank, "Pad")).collect::<Result<_>>()?,
                    None => (0..rank).collect(),
                };
                if mode != "constant" || pads.len() != 2 * axes.len() || pads.iter().any(|&p| p < 0) {
                    return Err(err(
                        &node.name,
                        format!("Pad {mode} with pads {pads:?}: only non-negative constant padding is supported yet"),
                    ));
                }
                let mut cur = in0.clone();
                let mut cur_shape = xs.clone();
                for (i, &a) in axes.iter().enumerate() {
                    let (before, after) = (pads[i] as usize, pads[i + axes.len()] as usize);
                    if before == 0 && after == 0 {
                        continue;
                    }
                    let fill = |len: usize| {
                        let mut s = cur_shape.clone();
                        s[a] = len;
                        PVal::Const(Arc::new(HostTensor::f32(s.clone(), vec![value; s.iter().product()])))
                    };
                    let mut parts = Vec::new();
                    let (fb, fa) = (fill(before), fill(after));
                    if before > 0 {
                        parts.push(&fb);
                    }
                    parts.push(&cur);
                    if after > 0 {
                        parts.push(&fa);
                    }
                    let mut out = cur_shape.clone();
                    out[a] += before + after;
                    let slot = self.concat(&parts, a, &out)?;
                    cur = PVal::Dyn { slot, shape: out.clone() };
                    cur_shape = out;
                }
                cur
            }
            Op::Where => {
                // With a constant condition: a·c + b·(1 − c).
                let (c, a, b) = match (in0, ins.get(1).copied().flatten(), ins.get(2).copied().flatten()) {
                    (PVal::Const(c), Some(a), Some(b)) => (c.clone(), a, b),
                    _ => {
                        return Err(err(
                            &node.name,
                            "Where with a condition computed from x, t or y is not supported yet".into(),
                        ));
                    }
                };
                let shape = out_shape()?;
                let on: Vec<f32> = c.as_f32().iter().map(|&v| if v != 0.0 { 1.0 } else { 0.0 }).collect();
                let off: Vec<f32> = on.iter().map(|v| 1.0 - v).collect();
                let ci = self.konst(Arc::new(HostTensor::f32(c.shape.clone(), on)), "");
                let ni = self.konst(Arc::new(HostTensor::f32(c.shape.clone(), off)), "");
                let (oa, ob) = (self.operand(a)?, self.operand(b)?);
                let x = self.push(|out| Step::Binary { a: oa, b: Operand::Const(ci), op: BinaryOp::Mul, out });
                let y = self.push(|out| Step::Binary { a: ob, b: Operand::Const(ni), op: BinaryOp::Mul, out });
                dyn_out(
                    self.push(|out| Step::Binary { a: Operand::Slot(x), b: Operand::Slot(y), op: BinaryOp::Add, out }),
                    shape,
                )
            }
            Op::BatchNorm { eps } => {
                // Inference: x·k + (β − μ·k) per channel, k = γ/√(σ² + ε).
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let c = |i: usize| match ins.get(i).copied().flatten() {
                    Some(PVal::Const(t)) => Ok(t.as_f32()),
                    _ => Err(err(
                        &node.name,
                        "BatchNormalization's scale, bias, mean and variance must be constants".into(),
                    )),
                };
                let (g, be, mu, var) = (c(1)?, c(2)?, c(3)?, c(4)?);
                let ch = *xs.get(1).ok_or_else(|| err(&node.name, "BatchNormalization of a 1-D value".into()))?;
                if [g.len(), be.len(), mu.len(), var.len()].iter().any(|&l| l != ch) {
                    return Err(err(&node.name, format!("BatchNormalization parameters for {ch} channels")));
                }
                let k: Vec<f32> = g.iter().zip(&var).map(|(g, v)| g / (v + eps).sqrt()).collect();
                let shift: Vec<f32> = be.iter().zip(&mu).zip(&k).map(|((b, m), k)| b - m * k).collect();
                let mut pshape = vec![ch];
                pshape.extend(std::iter::repeat_n(1, xs.len() - 2));
                let ki = self.konst(Arc::new(HostTensor::f32(pshape.clone(), k)), "");
                let si = self.konst(Arc::new(HostTensor::f32(pshape, shift)), "");
                let (slot, xs) = (*slot, xs.clone());
                let y = self.push(|out| Step::Binary {
                    a: Operand::Slot(slot),
                    b: Operand::Const(ki),
                    op: BinaryOp::Mul,
                    out,
                });
                dyn_out(
                    self.push(|out| Step::Binary {
                        a: Operand::Slot(y),
                        b: Operand::Const(si),
                        op: BinaryOp::Add,
                        out,
                    }),
                    xs,
                )
            }
            Op::ReduceMean { axes, .. } | Op::ReduceSum { axes, .. } => {
                // The reduced axes moved last, then one linear with a row of 1 (or 1/k).
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let shape = out_shape()?;
                let rank = xs.len();
                let axes: Vec<i64> = match axes {
                    Some(a) => a.clone(),
                    None => match ins.get(1).copied().flatten() {
                        Some(PVal::Const(a)) => a.as_i64(),
                        None => (0..rank as i64).collect(),
                        Some(_) => return Err(err(&node.name, "reduction axes must be constants".into())),
                    },
                };
                let listed: Vec<usize> = axes.iter().map(|&a| fold::axis(a, rank, "Reduce")).collect::<Result<_>>()?;
                // Ascending and without repeats (no sort: its code is ~5 KB of the wasm).
                let red: Vec<usize> = (0..rank).filter(|d| listed.contains(d)).collect();
                let keep: Vec<usize> = (0..rank).filter(|d| !red.contains(d)).collect();
                let perm: Vec<usize> = keep.iter().chain(&red).copied().collect();
                let k: usize = red.iter().map(|&d| xs[d]).product();
                let rows: usize = keep.iter().map(|&d| xs[d]).product();
                let moved = self.permute(*slot, xs, &perm);
                let flat = self.push(|out| Step::Reshape { x: moved, shape: vec![rows, k], out });
                let w = if matches!(node.op, Op::ReduceMean { .. }) { 1.0 / k as f32 } else { 1.0 };
                let wi = self.konst(Arc::new(HostTensor::f32(vec![1, k], vec![w; k])), "");
                let sum = self.push(|out| Step::Linear { x: flat, w: wi, b: None, act: Activation::None, out });
                let s2 = shape.clone();
                dyn_out(self.push(|out| Step::Reshape { x: sum, shape: s2, out }), shape)
            }
            Op::Split { axis, .. } => {
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let outs = fold::infer_shapes(&node.op, &known, node.outputs.len())?;
                let a = fold::axis(*axis, xs.len(), "Split")?;
                let st = row_major_strides(xs);
                let (slot, mut at) = (*slot, 0usize);
                let mut vals = Vec::new();
                for s in outs {
                    let (offset, shape, strides) = (at * st[a], s.clone(), st.clone());
                    at += s[a];
                    vals.push(dyn_out(self.push(|out| Step::StridedCopy { x: slot, shape, offset, strides, out }), s));
                }
                return Ok(vals);
            }
            Op::Expand => {
                // x broadcast to the target shape: x + zeros of that shape.
                let shape = out_shape()?;
                let a = self.operand(in0)?;
                let zeros = Arc::new(HostTensor::f32(shape.clone(), vec![0.0; shape.iter().product()]));
                let z = self.konst(zeros, "");
                dyn_out(self.push(|out| Step::Binary { a, b: Operand::Const(z), op: BinaryOp::Add, out }), shape)
            }
            Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze { .. } | Op::Unsqueeze { .. } => {
                let shape = out_shape()?;
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                if *xs == shape {
                    in0.clone()
                } else if let Some(y) = self.group_norm_through_reshapes(*slot, &shape) {
                    dyn_out(y, shape)
                } else {
                    // A reshape of a reshape is one reshape (the middle one is dropped if unread).
                    let (slot, s) = (self.before_reshapes(*slot), shape.clone());
                    dyn_out(self.push(|out| Step::Reshape { x: slot, shape: s, out }), shape)
                }
            }
            Op::Gather { axis } if !matches!(in0, PVal::Dyn { .. }) => {
                let (data, idx) =
                    (in0, ins.get(1).copied().flatten().ok_or_else(|| err(&node.name, "missing indices".into()))?);
                match (data, idx) {
                    (PVal::Const(table), PVal::Ids { shape: ids_shape }) if fold::axis(*axis, table.shape.len(), "Gather")? == 0 && table.shape.len() == 2 => {
                        if ids_shape.iter().product::<usize>() != ids_shape.first().copied().unwrap_or(0) {
                            return Err(err(&node.name, "class labels must be one per row".into()));
                        }
                        let shape = out_shape()?;
                        let ti = self.konst(table.clone(), "");
                        let s = shape.clone();
                        dyn_out(self.push(|out| Step::Embedding { table: ti, shape: s, out }), shape)
                    }
                    _ => return Err(err(&node.name, "Gather on computed values is not supported on the backend yet (only an embedding table indexed by the class input)".into())),
                }
            }
            Op::Conv { strides, pads, dilations, group, auto_pad } => {
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let w = match ins.get(1).copied().flatten() {
                    Some(PVal::Const(w)) if w.shape.len() == 4 && xs.len() == 4 => w.clone(),
                    _ => {
                        return Err(err(
                            &node.name,
                            "Conv: 2-D convolutions with constant weights are supported".into(),
                        ));
                    }
                };
                let bias = match ins.get(2).copied().flatten() {
                    Some(PVal::Const(b)) => Some(b.clone()),
                    None => None,
                    Some(_) => return Err(err(&node.name, "Conv: the bias must be a constant".into())),
                };
                let same = |v: &[i64], d: i64| v.iter().all(|&x| x == v.first().copied().unwrap_or(d));
                let (stride, pad) = (strides.first().copied().unwrap_or(1), pads.first().copied().unwrap_or(0));
                let dil = dilations.first().copied().unwrap_or(1);
                if !same(strides, 1)
                    || !same(pads, 0)
                    || !same(dilations, 1)
                    || auto_pad != "NOTSET" && auto_pad != "VALID"
                    || w.shape[2] != w.shape[3]
                    || stride < 1
                    || pad < 0
                    || dil < 1
                    || *group < 1
                    || xs[1] % *group as usize != 0
                    || w.shape[0] % *group as usize != 0
                {
                    return Err(err(
                        &node.name,
                        format!(
                            "Conv with group {group}, strides {strides:?}, pads {pads:?}, dilations {dilations:?}, kernel {:?} is not supported yet (square kernels, equal strides, pads and dilations)",
                            &w.shape[2..]
                        ),
                    ));
                }
                // A dilated kernel is the dense kernel with zeros between its taps.
                let w = if dil == 1 { w } else { Arc::new(dilate_kernel(&w, dil as usize)) };
                let (slot, xs) = (*slot, xs.clone());
                let y =
                    self.conv_groups(slot, &xs, &w, bias.as_ref(), *group as usize, stride as usize, pad as usize)?;
                let (k, st) = (w.shape[2], stride as usize);
                let shape = vec![
                    xs[0],
                    w.shape[0],
                    (xs[2] + 2 * pad as usize - k) / st + 1,
                    (xs[3] + 2 * pad as usize - k) / st + 1,
                ];
                dyn_out(y, shape)
            }
            Op::ConvTranspose { strides, pads, output_padding, group } => {
                // Stride 2: the input with zeros between its pixels (nearest 2× upsampling times a
                // 0/1 mask), then a stride-1 convolution with the kernel flipped and its channel
                // axes swapped, padded k − 1 − p; output_padding 0 crops the extra last row/column.
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let w = match ins.get(1).copied().flatten() {
                    Some(PVal::Const(w)) if w.shape.len() == 4 && xs.len() == 4 => w.clone(),
                    _ => return Err(err(&node.name, "ConvTranspose: 2-D with constant weights is supported".into())),
                };
                let bias = match ins.get(2).copied().flatten() {
                    Some(PVal::Const(b)) => Some(b.clone()),
                    None => None,
                    Some(_) => return Err(err(&node.name, "ConvTranspose: the bias must be a constant".into())),
                };
                let k = w.shape[2];
                let p = pads.first().copied().unwrap_or(0);
                let op = output_padding.first().copied().unwrap_or(0);
                let ok = *group == 1
                    && strides.iter().all(|&s| s == 2)
                    && strides.len() == 2
                    && pads.iter().all(|&q| q == p)
                    && output_padding.iter().all(|&q| q == op)
                    && (0..=1).contains(&op)
                    && w.shape[3] == k
                    && p >= 0
                    && (p as usize) < k;
                if !ok {
                    return Err(err(
                        &node.name,
                        format!(
                            "ConvTranspose with strides {strides:?}, pads {pads:?}, output_padding {output_padding:?}, group {group}, kernel {:?} is not supported yet (stride 2, square, group 1)",
                            &w.shape[2..]
                        ),
                    ));
                }
                let (cin, cout) = (w.shape[0], w.shape[1]);
                let src = w.as_f32();
                let mut flipped = vec![0f32; cout * cin * k * k];
                for i in 0..cin {
                    for o in 0..cout {
                        for y in 0..k {
                            for x in 0..k {
                                flipped[((o * cin + i) * k + y) * k + x] =
                                    src[((i * cout + o) * k + (k - 1 - y)) * k + (k - 1 - x)];
                            }
                        }
                    }
                }
                let wt = Arc::new(HostTensor::f32(vec![cout, cin, k, k], flipped));
                let (slot, xs) = (*slot, xs.clone());
                let (h2, w2) = (2 * xs[2], 2 * xs[3]);
                let up = self.push(|out| Step::Upsample2x { x: slot, out });
                let mut mask = vec![0f32; h2 * w2];
                for y in (0..h2).step_by(2) {
                    for x in (0..w2).step_by(2) {
                        mask[y * w2 + x] = 1.0;
                    }
                }
                let mi = self.konst(Arc::new(HostTensor::f32(vec![h2, w2], mask)), "");
                let zs = self.push(|out| Step::Binary {
                    a: Operand::Slot(up),
                    b: Operand::Const(mi),
                    op: BinaryOp::Mul,
                    out,
                });
                let zshape = vec![xs[0], xs[1], h2, w2];
                let q = k - 1 - p as usize;
                let y = self.conv_groups(zs, &zshape, &wt, bias.as_ref(), 1, 1, q)?;
                let full = vec![xs[0], cout, h2 + 2 * q + 1 - k, w2 + 2 * q + 1 - k];
                let want = vec![
                    xs[0],
                    cout,
                    2 * (xs[2] - 1) + k - 2 * p as usize + op as usize,
                    2 * (xs[3] - 1) + k - 2 * p as usize + op as usize,
                ];
                if full == want {
                    dyn_out(y, want)
                } else {
                    let st = row_major_strides(&full);
                    let w2 = want.clone();
                    dyn_out(self.push(|out| Step::StridedCopy { x: y, shape: w2, offset: 0, strides: st, out }), want)
                }
            }
            Op::AveragePool { kernel, strides, pads } | Op::MaxPool { kernel, strides, pads } => {
                // Each window offset is a strided copy; their sum (average) or maximum.
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let max = matches!(node.op, Op::MaxPool { .. });
                if xs.len() != 4 || kernel.len() != 2 || pads.iter().any(|&p| p != 0) || kernel.iter().any(|&k| k < 1) {
                    return Err(err(
                        &node.name,
                        format!(
                            "pooling with kernel {kernel:?}, pads {pads:?} of {xs:?} is not supported yet (2-D, no padding)"
                        ),
                    ));
                }
                let (kh, kw) = (kernel[0] as usize, kernel[1] as usize);
                let (sh, sw) = (
                    strides.first().copied().unwrap_or(1).max(1) as usize,
                    strides.get(1).copied().unwrap_or(1).max(1) as usize,
                );
                if xs[2] < kh || xs[3] < kw {
                    return Err(err(&node.name, format!("a {kh}×{kw} window on {xs:?}")));
                }
                let shape = vec![xs[0], xs[1], (xs[2] - kh) / sh + 1, (xs[3] - kw) / sw + 1];
                let st = row_major_strides(xs);
                let strides = vec![st[0], st[1], st[2] * sh, st[3] * sw];
                let slot = *slot;
                let mut acc: Option<usize> = None;
                for dy in 0..kh {
                    for dx in 0..kw {
                        let (s2, str2, offset) = (shape.clone(), strides.clone(), dy * st[2] + dx * st[3]);
                        let tap = self.push(|out| Step::StridedCopy { x: slot, shape: s2, offset, strides: str2, out });
                        acc = Some(match acc {
                            None => tap,
                            Some(a) => self.push(|out| Step::Binary {
                                a: Operand::Slot(a),
                                b: Operand::Slot(tap),
                                op: if max { BinaryOp::Max } else { BinaryOp::Add },
                                out,
                            }),
                        });
                    }
                }
                let mut y = acc.expect("a window has a tap");
                if !max {
                    let inv = self.konst(Arc::new(HostTensor::f32(vec![], vec![1.0 / (kh * kw) as f32])), "");
                    let a = y;
                    y = self.push(|out| Step::Binary {
                        a: Operand::Slot(a),
                        b: Operand::Const(inv),
                        op: BinaryOp::Mul,
                        out,
                    });
                }
                dyn_out(y, shape)
            }
            Op::InstanceNorm { eps } | Op::GroupNorm { eps, .. } => {
                // Instance norm of [n, c, …] is group norm with one group per channel, on the
                // values viewed as [n, c, L, 1].
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let (gamma, beta) = match (ins.get(1).copied().flatten(), ins.get(2).copied().flatten()) {
                    (Some(PVal::Const(g)), Some(PVal::Const(b))) => (g.clone(), b.clone()),
                    _ => return Err(err(&node.name, "normalisation scale and bias must be constants".into())),
                };
                if xs.len() < 3 {
                    return Err(err(&node.name, format!("normalisation of a rank-{} value", xs.len())));
                }
                let c = xs[1];
                let groups = match node.op {
                    Op::GroupNorm { groups, .. } => groups,
                    _ => c,
                };
                if c % groups != 0 || gamma.len() != c || beta.len() != c {
                    return Err(err(
                        &node.name,
                        format!("{groups} groups, scale {:?} and bias {:?} for {c} channels", gamma.shape, beta.shape),
                    ));
                }
                let (gi, bi) = (self.konst(gamma, ""), self.konst(beta, ""));
                let four = vec![xs[0], c, xs[2..].iter().product(), 1];
                let (slot, xs, eps) = (*slot, xs.clone(), *eps);
                let x4 = if xs.len() == 4 {
                    slot
                } else {
                    let f = four.clone();
                    self.push(|out| Step::Reshape { x: slot, shape: f, out })
                };
                let act = Activation::None;
                let y = self.push(|out| Step::GroupNorm { x: x4, groups, gamma: gi, beta: bi, eps, act, out });
                let y = if xs.len() == 4 {
                    y
                } else {
                    let s = xs.clone();
                    self.push(|out| Step::Reshape { x: y, shape: s, out })
                };
                dyn_out(y, xs)
            }
            Op::Transpose { perm } => {
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let rank = xs.len();
                let perm: Vec<usize> = match perm {
                    Some(p) => p.iter().map(|&i| fold::axis(i, rank, "Transpose")).collect::<Result<_>>()?,
                    None => (0..rank).rev().collect(),
                };
                let st = row_major_strides(xs);
                let shape: Vec<usize> = perm.iter().map(|&i| xs[i]).collect();
                let strides: Vec<usize> = perm.iter().map(|&i| st[i]).collect();
                let (slot, s2) = (*slot, shape.clone());
                dyn_out(self.push(|out| Step::StridedCopy { x: slot, shape: s2, offset: 0, strides, out }), shape)
            }
            Op::Slice => {
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let konst = |i: usize, what: &str| -> Result<Vec<i64>> {
                    match ins.get(i).copied().flatten() {
                        Some(PVal::Const(t)) => Ok(t.as_i64()),
                        None => Err(err(&node.name, format!("Slice without {what}"))),
                        Some(_) => Err(err(&node.name, format!("Slice {what} must be constants"))),
                    }
                };
                // The ends are in the inferred output shape.
                let starts = konst(1, "starts")?;
                konst(2, "ends")?;
                let axes = if ins.get(3).copied().flatten().is_some() {
                    konst(3, "axes")?
                } else {
                    (0..starts.len() as i64).collect()
                };
                let steps =
                    if ins.get(4).copied().flatten().is_some() { konst(4, "steps")? } else { vec![1; starts.len()] };
                let shape = out_shape()?;
                let st = row_major_strides(xs);
                let mut strides = st.clone();
                let mut offset = 0usize;
                for (i, &a) in axes.iter().enumerate() {
                    let a = fold::axis(a, xs.len(), "Slice")?;
                    if steps[i] < 1 {
                        return Err(err(&node.name, "Slice with a negative step is not supported yet".into()));
                    }
                    let d = xs[a] as i64;
                    let lo = if starts[i] < 0 { starts[i] + d } else { starts[i] }.clamp(0, d);
                    offset += lo as usize * st[a];
                    strides[a] = st[a] * steps[i] as usize;
                }
                let (slot, s2) = (*slot, shape.clone());
                dyn_out(self.push(|out| Step::StridedCopy { x: slot, shape: s2, offset, strides, out }), shape)
            }
            Op::Gather { axis } if matches!(in0, PVal::Dyn { .. }) => {
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!() };
                let Some(PVal::Const(idx)) = ins.get(1).copied().flatten() else {
                    return Err(err(&node.name, "Gather from a computed value needs constant indices".into()));
                };
                let a = fold::axis(*axis, xs.len(), "Gather")?;
                let ids = idx.as_i64();
                if ids.len() != 1 {
                    return Err(err(
                        &node.name,
                        "Gather of several indices from a computed value is not supported yet".into(),
                    ));
                }
                let i = if ids[0] < 0 { ids[0] + xs[a] as i64 } else { ids[0] };
                if !(0..xs[a] as i64).contains(&i) {
                    return Err(err(&node.name, format!("Gather index {} out of 0..{}", ids[0], xs[a])));
                }
                let st = row_major_strides(xs);
                // The picked slice, with the index's own dimensions (none for a scalar index).
                let mut shape: Vec<usize> = xs[..a].to_vec();
                shape.extend(&idx.shape);
                shape.extend(&xs[a + 1..]);
                let mut strides: Vec<usize> = st[..a].to_vec();
                strides.extend(idx.shape.iter().map(|_| 0));
                strides.extend(&st[a + 1..]);
                let (slot, s2, offset) = (*slot, shape.clone(), i as usize * st[a]);
                dyn_out(self.push(|out| Step::StridedCopy { x: slot, shape: s2, offset, strides, out }), shape)
            }
            Op::Softmax { axis } => {
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let (rank, a) = (xs.len(), fold::axis(*axis, xs.len(), "Softmax")?);
                let (slot, xs) = (*slot, xs.clone());
                if a + 1 == rank {
                    dyn_out(self.push(|out| Step::Softmax { x: slot, out }), xs)
                } else {
                    // The axis moved last and back.
                    let perm: Vec<usize> = (0..rank).filter(|&d| d != a).chain([a]).collect();
                    let moved = self.permute(slot, &xs, &perm);
                    let mshape: Vec<usize> = perm.iter().map(|&d| xs[d]).collect();
                    let sm = self.push(|out| Step::Softmax { x: moved, out });
                    let mut back = vec![0; rank];
                    for (i, &d) in perm.iter().enumerate() {
                        back[d] = i;
                    }
                    dyn_out(self.permute(sm, &mshape, &back), xs)
                }
            }
            Op::LayerNorm { axis, eps } => {
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let a = fold::axis(*axis, xs.len(), "LayerNormalization")?;
                let inner: Vec<usize> = xs[a..].to_vec();
                let count: usize = inner.iter().product();
                let as_inner = |t: &HostTensor| -> Option<Arc<HostTensor>> {
                    // A scale/bias that broadcasts over the normalised dims, spelled out.
                    let s = crate::pointwise::broadcast(&t.shape, &inner).ok()?;
                    (s == inner).then(|| {
                        let v = t.as_f32();
                        let st = crate::pointwise::broadcast_strides(&t.shape, &inner);
                        let data = (0..count)
                            .map(|flat| {
                                let (mut rem, mut off) = (flat, 0);
                                for d in (0..inner.len()).rev() {
                                    off += (rem % inner[d]) * st[d];
                                    rem /= inner[d];
                                }
                                v[off]
                            })
                            .collect();
                        Arc::new(HostTensor::f32(inner.clone(), data))
                    })
                };
                let gamma = match ins.get(1).copied().flatten() {
                    Some(PVal::Const(g)) => {
                        as_inner(g).ok_or_else(|| err(&node.name, format!("scale {:?} for {inner:?}", g.shape)))?
                    }
                    _ => return Err(err(&node.name, "LayerNormalization scale must be a constant".into())),
                };
                let beta = match ins.get(2).copied().flatten() {
                    Some(PVal::Const(b)) => {
                        as_inner(b).ok_or_else(|| err(&node.name, format!("bias {:?} for {inner:?}", b.shape)))?
                    }
                    None => Arc::new(HostTensor::f32(inner.clone(), vec![0.0; count])),
                    _ => return Err(err(&node.name, "LayerNormalization bias must be a constant".into())),
                };
                if node.outputs.iter().skip(1).any(|o| !o.is_empty()) {
                    return Err(err(&node.name, "LayerNormalization's mean/inv-std outputs are not supported".into()));
                }
                let (gi, bi) = (self.konst(gamma, ""), self.konst(beta, ""));
                let (slot, xs, eps) = (*slot, xs.clone(), *eps);
                dyn_out(self.push(|out| Step::LayerNorm { x: slot, gamma: gi, beta: bi, eps, out }), xs)
            }
            Op::Resize { mode, coord, .. } => {
                let PVal::Dyn { slot, shape: xs } = in0 else { unreachable!("folded") };
                let target: Option<Vec<usize>> = match (ins.get(2).copied().flatten(), ins.get(3).copied().flatten()) {
                    (_, Some(PVal::Const(sizes))) if !sizes.is_empty() => {
                        Some(sizes.as_i64().iter().map(|&v| v.max(0) as usize).collect())
                    }
                    (Some(PVal::Const(scales)), _) if !scales.is_empty() => {
                        Some(scales.as_f32().iter().zip(xs).map(|(s, &d)| (s * d as f32).floor() as usize).collect())
                    }
                    _ => None,
                };
                let twice = xs.len() == 4 && target.as_deref() == Some(&[xs[0], xs[1], 2 * xs[2], 2 * xs[3]][..]);
                let shape = vec![xs[0], xs[1], 2 * xs[2], 2 * xs[3]];
                let (slot, xs) = (*slot, xs.clone());
                match (mode.as_str(), twice) {
                    ("nearest", true) => dyn_out(self.push(|out| Step::Upsample2x { x: slot, out }), shape),
                    ("linear", true) if coord == "half_pixel" || coord == "pytorch_half_pixel" => {
                        let h = self.bilinear2x_axis(slot, &xs, 2)?;
                        let mid = vec![xs[0], xs[1], 2 * xs[2], xs[3]];
                        dyn_out(self.bilinear2x_axis(h, &mid, 3)?, shape)
                    }
                    _ => {
                        return Err(err(
                            &node.name,
                            format!(
                                "Resize {mode} ({coord}) to {target:?} from {xs:?}: only 2× upsampling of NCHW, nearest or bilinear (half_pixel), is supported yet"
                            ),
                        ));
                    }
                }
            }
            other => {
                return Err(err(
                    &node.name,
                    format!("{} on values computed from x, t or y is not supported on the backend yet", other.name()),
                ));
            }
        }])
    }
}

/// A 4-D kernel with `d − 1` zeros between its taps (dilation `d` as a dense kernel).
/// A constant that scales or shifts each channel (axis 1) of a value of `shape` alike, as one
/// value per channel; `None` if it varies along any other axis.
fn per_channel(c: &HostTensor, shape: &[usize]) -> Option<Vec<f32>> {
    let (r, ch) = (shape.len(), *shape.get(1)?);
    if c.shape.len() > r || c.shape.len() + 1 < r && c.len() != 1 {
        return None;
    }
    let padded: Vec<usize> = std::iter::repeat_n(1, r - c.shape.len()).chain(c.shape.iter().copied()).collect();
    if padded.iter().enumerate().any(|(i, &d)| d != 1 && i != 1) || padded[1] != 1 && padded[1] != ch {
        return None;
    }
    let v = c.as_f32();
    Some(if v.len() == 1 { vec![v[0]; ch] } else { v })
}

fn dilate_kernel(w: &HostTensor, d: usize) -> HostTensor {
    let (o, i, k) = (w.shape[0], w.shape[1], w.shape[2]);
    let ke = (k - 1) * d + 1;
    let src = w.as_f32();
    let mut out = vec![0f32; o * i * ke * ke];
    for c in 0..o * i {
        for y in 0..k {
            for x in 0..k {
                out[(c * ke + y * d) * ke + x * d] = src[(c * k + y) * k + x];
            }
        }
    }
    HostTensor::f32(vec![o, i, ke, ke], out)
}

/// Row-major element strides of `shape`.
fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

impl HostTensor {
    /// The f32 view of a constant for the backend (integers widened).
    pub fn host_f32(&self) -> Vec<f32> {
        match &self.data {
            HostData::F32(v) => v.clone(),
            HostData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}
