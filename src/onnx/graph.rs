//! The graph: ONNX nodes with their attributes parsed into a typed [`Op`] once, at load. An op
//! outside the supported set, or an attribute the executor does not implement, is a load-time
//! error naming the node — never a wrong answer at sampling time.

use super::proto::{Attribute, AttributeValue, DataType, Dim, ModelProto, NodeProto, TensorData, TensorProto};
use crate::error::{Error, NAME, Result, shown};
use crate::pointwise::{BinaryOp, UnaryOp};
use crate::sorted_map::{SortedMap, SortedSet};

/// A constant on the host: f32 data, or i64 (shapes, indices, axes).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl HostTensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self { shape, data: HostData::F32(data) }
    }

    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Self {
        Self { shape, data: HostData::I64(data) }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            HostData::F32(v) => v.len(),
            HostData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as i64 (floats truncated toward zero, as ONNX Cast does).
    pub fn as_i64(&self) -> Vec<i64> {
        match &self.data {
            HostData::I64(v) => v.clone(),
            HostData::F32(v) => v.iter().map(|&x| x as i64).collect(),
        }
    }

    /// The values as f32.
    pub fn as_f32(&self) -> Vec<f32> {
        match &self.data {
            HostData::F32(v) => v.clone(),
            HostData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    pub fn is_int(&self) -> bool {
        matches!(self.data, HostData::I64(_))
    }

    fn from_proto(t: &TensorProto) -> Result<Self> {
        let shape = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| bad_tensor(&t.name, format!("dimension {d}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(match &t.data {
            TensorData::F32(v) => HostTensor::f32(shape, v.clone()),
            TensorData::I64(v) => HostTensor::i64(shape, v.clone()),
        })
    }
}

fn bad_tensor(name: &str, what: String) -> Error {
    Error::WeightsFormat(format!("ONNX tensor `{}`: {what}", shown(name, NAME)))
}

/// An ONNX op the executor implements, with its attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `Constant`: its value.
    Constant(HostTensor),
    Identity,
    /// Float ↔ int conversion (`to`: true for a float type).
    Cast {
        to_float: bool,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `Equal`, `Less`, `Greater` (host only: shape arithmetic).
    Compare(Compare),
    /// Integer remainder (host only: shape arithmetic).
    Mod,
    Where,
    MatMul,
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    Concat {
        axis: i64,
    },
    Reshape {
        allow_zero: bool,
    },
    Flatten {
        axis: i64,
    },
    /// Axes from the attribute (opset < 13) or the second input.
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Transpose {
        perm: Option<Vec<i64>>,
    },
    Gather {
        axis: i64,
    },
    Shape {
        start: i64,
        end: Option<i64>,
    },
    ConstantOfShape {
        value: HostTensor,
    },
    Range,
    Expand,
    Slice,
    Split {
        axis: i64,
        split: Option<Vec<i64>>,
        num_outputs: Option<i64>,
    },
    Softmax {
        axis: i64,
    },
    ReduceMean {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
    },
    ReduceSum {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
    },
    LayerNorm {
        axis: i64,
        eps: f32,
    },
    GroupNorm {
        groups: usize,
        eps: f32,
    },
    InstanceNorm {
        eps: f32,
    },
    BatchNorm {
        eps: f32,
    },
    Conv {
        strides: Vec<i64>,
        pads: Vec<i64>,
        dilations: Vec<i64>,
        group: i64,
        auto_pad: String,
    },
    ConvTranspose {
        strides: Vec<i64>,
        pads: Vec<i64>,
        output_padding: Vec<i64>,
        group: i64,
    },
    Resize {
        mode: String,
        coord: String,
        nearest: String,
    },
    AveragePool {
        kernel: Vec<i64>,
        strides: Vec<i64>,
        pads: Vec<i64>,
    },
    MaxPool {
        kernel: Vec<i64>,
        strides: Vec<i64>,
        pads: Vec<i64>,
    },
    Pad {
        mode: String,
    },
}

impl Op {
    /// The op's name for messages (its `Debug` would print f32 attributes, and with them core's
    /// float formatting into the browser build).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Constant(..) => "Constant",
            Op::Identity => "Identity",
            Op::Cast { .. } => "Cast",
            Op::Unary(..) => "Unary",
            Op::Binary(..) => "Binary",
            Op::Compare(..) => "Compare",
            Op::Mod => "Mod",
            Op::Where => "Where",
            Op::MatMul => "MatMul",
            Op::Gemm { .. } => "Gemm",
            Op::Concat { .. } => "Concat",
            Op::Reshape { .. } => "Reshape",
            Op::Flatten { .. } => "Flatten",
            Op::Squeeze { .. } => "Squeeze",
            Op::Unsqueeze { .. } => "Unsqueeze",
            Op::Transpose { .. } => "Transpose",
            Op::Gather { .. } => "Gather",
            Op::Shape { .. } => "Shape",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Range => "Range",
            Op::Expand => "Expand",
            Op::Slice => "Slice",
            Op::Split { .. } => "Split",
            Op::Softmax { .. } => "Softmax",
            Op::ReduceMean { .. } => "ReduceMean",
            Op::ReduceSum { .. } => "ReduceSum",
            Op::LayerNorm { .. } => "LayerNorm",
            Op::GroupNorm { .. } => "GroupNorm",
            Op::InstanceNorm { .. } => "InstanceNorm",
            Op::BatchNorm { .. } => "BatchNorm",
            Op::Conv { .. } => "Conv",
            Op::ConvTranspose { .. } => "ConvTranspose",
            Op::Resize { .. } => "Resize",
            Op::AveragePool { .. } => "AveragePool",
            Op::MaxPool { .. } => "MaxPool",
            Op::Pad { .. } => "Pad",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Equal,
    Less,
    Greater,
}

/// One node: its op, input names ("" = omitted optional input) and output names.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// A graph input that is not an initializer.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphInput {
    pub name: String,
    pub int: bool,
    pub shape: Option<Vec<Dim>>,
}

/// A loaded graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Initializers by name (shared: every batch size's plan reads the same weights).
    pub constants: SortedMap<String, std::sync::Arc<HostTensor>>,
    pub inputs: Vec<GraphInput>,
    pub outputs: Vec<String>,
    pub opset: i64,
}

impl Graph {
    /// Parses every node's op; refuses unsupported ops, attributes and graphs that are not in
    /// topological order (as ONNX requires).
    pub fn from_proto(m: &ModelProto) -> Result<Self> {
        let opset =
            m.opset().ok_or_else(|| Error::WeightsFormat("the ONNX model imports no default-domain opset".into()))?;
        let mut constants = SortedMap::new();
        for t in &m.graph.initializers {
            constants.insert(t.name.clone(), std::sync::Arc::new(HostTensor::from_proto(t)?));
        }
        let inputs: Vec<GraphInput> = m
            .graph
            .inputs
            .iter()
            .filter(|i| !constants.contains_key(&i.name))
            .map(|i| GraphInput {
                name: i.name.clone(),
                int: matches!(i.elem_type, Some(DataType::Int64 | DataType::Int32)),
                shape: i.shape.clone(),
            })
            .collect();
        let mut known: SortedSet<&str> = constants.keys().map(String::as_str).collect();
        known.extend(inputs.iter().map(|i| i.name.as_str()));
        let mut nodes = Vec::with_capacity(m.graph.nodes.len());
        for (i, n) in m.graph.nodes.iter().enumerate() {
            let label = node_label(n, i);
            for input in n.inputs.iter().filter(|s| !s.is_empty()) {
                if !known.contains(input.as_str()) {
                    return Err(Error::WeightsFormat(format!(
                        "ONNX {label}: input `{}` is not produced before it (graph not in topological order, or a dangling name)",
                        shown(input, NAME)
                    )));
                }
            }
            let parsed = match decompose(n, &label, &mut nodes) {
                Ok(true) => Ok(()),
                Ok(false) => parse_op(n, opset).map(|op| {
                    nodes.push(Node { name: label.clone(), op, inputs: n.inputs.clone(), outputs: n.outputs.clone() })
                }),
                Err(e) => Err(e),
            };
            parsed.map_err(|e| match e {
                Error::WeightsFormat(m) => Error::WeightsFormat(format!("ONNX {label}: {m}")),
                e => e,
            })?;
            known.extend(n.outputs.iter().map(String::as_str));
        }
        let outputs: Vec<String> = m.graph.outputs.iter().map(|o| o.name.clone()).collect();
        if let Some(o) = outputs.iter().find(|o| !known.contains(o.as_str())) {
            return Err(Error::WeightsFormat(format!("ONNX graph output `{}` is never produced", shown(o, NAME))));
        }
        Ok(Graph { nodes, constants, inputs, outputs, opset })
    }
}

fn node_label(n: &NodeProto, i: usize) -> String {
    if n.name.is_empty() {
        format!("node {i} ({})", shown(&n.op_type, NAME))
    } else {
        format!("node `{}` ({})", shown(&n.name, NAME), shown(&n.op_type, NAME))
    }
}

struct Attrs<'a>(&'a [Attribute]);

impl Attrs<'_> {
    fn get(&self, k: &str) -> Option<&AttributeValue> {
        self.0.iter().find(|a| a.name == k).map(|a| &a.value)
    }
    fn int(&self, k: &str, d: i64) -> Result<i64> {
        match self.get(k) {
            None => Ok(d),
            Some(AttributeValue::Int(v)) => Ok(*v),
            Some(_) => Err(attr_err(k, "must be an integer")),
        }
    }
    fn float(&self, k: &str, d: f32) -> Result<f32> {
        match self.get(k) {
            None => Ok(d),
            Some(AttributeValue::Float(v)) => Ok(*v),
            Some(_) => Err(attr_err(k, "must be a float")),
        }
    }
    fn ints(&self, k: &str) -> Result<Option<Vec<i64>>> {
        match self.get(k) {
            None => Ok(None),
            Some(AttributeValue::Ints(v)) => Ok(Some(v.clone())),
            Some(_) => Err(attr_err(k, "must be a list of integers")),
        }
    }
    fn string(&self, k: &str, d: &str) -> Result<String> {
        match self.get(k) {
            None => Ok(d.to_string()),
            Some(AttributeValue::String(v)) => Ok(String::from_utf8_lossy(v).into_owned()),
            Some(_) => Err(attr_err(k, "must be a string")),
        }
    }
    /// Refuses any attribute not in `known` (an attribute the executor ignored would change the
    /// answer silently).
    fn only(&self, known: &[&str]) -> Result<()> {
        match self.0.iter().find(|a| !known.contains(&a.name.as_str())) {
            Some(a) => Err(attr_err(&a.name, "is not supported")),
            None => Ok(()),
        }
    }
}

fn attr_err(k: &str, what: &str) -> Error {
    Error::WeightsFormat(format!("attribute `{}` {what}", shown(k, NAME)))
}

fn unsupported(what: String) -> Error {
    Error::WeightsFormat(what)
}

/// Ops written as a few supported ones, pushed to `nodes` (false: any other op). Their
/// intermediate values are named after the node's output with a suffix no exporter writes.
fn decompose(n: &NodeProto, label: &str, nodes: &mut Vec<Node>) -> Result<bool> {
    let a = Attrs(&n.attributes);
    let arg = |k: usize| n.inputs.get(k).map_or("", String::as_str).to_string();
    let out = n.outputs.first().cloned().unwrap_or_default();
    let mut parts = Parts { nodes, label, out: &out, first: 0 };
    parts.first = parts.nodes.len();
    let mut then = |op: Op, inputs: &[&String]| parts.then(op, inputs);
    let mut cur = arg(0);
    match n.op_type.as_str() {
        // clamp: max with the lower bound, then min with the upper (both optional inputs).
        "Clip" => {
            a.only(&[])?;
            for (k, op) in [(1, BinaryOp::Max), (2, BinaryOp::Min)] {
                if !arg(k).is_empty() {
                    cur = then(Op::Binary(op), &[&cur, &arg(k)]);
                }
            }
            then(Op::Identity, &[&cur]);
        }
        // The L2 norm over axes (F.normalize): the square root of the sum of squares.
        "ReduceL2" => {
            a.only(&["axes", "keepdims", "noop_with_empty_axes"])?;
            let sq = then(Op::Binary(BinaryOp::Mul), &[&cur, &cur]);
            let sum = Op::ReduceSum { axes: a.ints("axes")?, keep_dims: a.int("keepdims", 1)? != 0 };
            // The axes, an input from opset 18.
            let sum = then(sum, &[&sq, &arg(1)]);
            then(Op::Unary(UnaryOp::Sqrt), &[&sum]);
        }
        // A batched matrix product written as an equation (`bhdn,bhen->bhde`): both operands
        // transposed to [batch…, rows, k] and [batch…, k, cols], multiplied, and the result
        // transposed to the equation's order. Native only for now: its 1.2 KB of gzip do not fit
        // the browser bundle's 300 KB budget (the browser refuses the op, naming it).
        #[cfg(not(target_arch = "wasm32"))]
        "Einsum" => {
            a.only(&["equation"])?;
            let eq = a.string("equation", "")?;
            let bad = || {
                attr_err(
                    "equation",
                    &format!(
                        "`{}` is not supported: two operands, each index once, one summed index, one free index \
                         per operand, the others shared batch indices",
                        shown(&eq, NAME)
                    ),
                )
            };
            // The indices of each term, and which terms (bits 1: first operand, 2: second, 4:
            // result) each index is in. Plain loops: iterator chains cost the browser build.
            let mut seen = [0u8; 128];
            let mut terms: [Vec<u8>; 3] = Default::default();
            let mut term = 0;
            for c in eq.bytes() {
                match c {
                    b',' | b'>' => term += 1,
                    b'-' | b' ' => {}
                    c if c.is_ascii_alphabetic() && term < 3 && seen[c as usize] & (1 << term) == 0 => {
                        seen[c as usize] |= 1 << term;
                        terms[term].push(c);
                    }
                    _ => return Err(bad()),
                }
            }
            let (mut fa, mut fb, mut summed) = (0, 0, 0);
            let mut ok = n.inputs.len() == 2 && term == 2;
            for (c, &mask) in seen.iter().enumerate() {
                match (mask, c as u8) {
                    (0 | 7, _) => {}
                    (3, c) if summed == 0 => summed = c,
                    (5, c) if fa == 0 => fa = c,
                    (6, c) if fb == 0 => fb = c,
                    _ => ok = false,
                }
            }
            if !ok || summed == 0 || fa == 0 || fb == 0 {
                return Err(bad());
            }
            // Transposes to [batch…, rows, k] · [batch…, k, cols], batch in the result's order.
            let mut batch = Vec::new();
            for &c in &terms[2] {
                if seen[c as usize] == 7 {
                    batch.push(c);
                }
            }
            let order = |x: u8, y: u8| {
                let mut o = batch.clone();
                o.extend_from_slice(&[x, y]);
                o
            };
            let mut operand = |k: usize, o: Vec<u8>| match transpose(&terms[k], &o) {
                Some(perm) => then(Op::Transpose { perm: Some(perm) }, &[&arg(k)]),
                None => arg(k),
            };
            let x = operand(0, order(fa, summed));
            let y = operand(1, order(summed, fb));
            let product = then(Op::MatMul, &[&x, &y]);
            match transpose(&order(fa, fb), &terms[2]) {
                Some(perm) => then(Op::Transpose { perm: Some(perm) }, &[&product]),
                None => then(Op::Identity, &[&product]),
            };
        }
        _ => return Ok(false),
    }
    // The last part writes the node's output.
    if let Some(last) = parts.nodes.last_mut() {
        last.outputs = vec![out.clone()];
    }
    Ok(true)
}

/// The permutation that takes indices `from` to `to` (None when they are in the same order).
#[cfg(not(target_arch = "wasm32"))]
fn transpose(from: &[u8], to: &[u8]) -> Option<Vec<i64>> {
    let mut perm = Vec::with_capacity(to.len());
    let mut moved = false;
    for (i, c) in to.iter().enumerate() {
        let j = from.iter().position(|d| d == c)?;
        moved |= i != j;
        perm.push(j as i64);
    }
    moved.then_some(perm)
}

/// The nodes one ONNX node is written as.
struct Parts<'a> {
    nodes: &'a mut Vec<Node>,
    label: &'a str,
    out: &'a str,
    first: usize,
}

impl Parts<'_> {
    /// Appends a node of `op` on `inputs`; returns the name of its output.
    /// An empty name is an omitted optional input, as in ONNX.
    fn then(&mut self, op: Op, inputs: &[&String]) -> String {
        let o = format!("{}\u{1}{}", self.out, self.nodes.len() - self.first);
        let inputs = inputs.iter().map(|s| s.to_string()).collect();
        self.nodes.push(Node { name: self.label.to_string(), op, inputs, outputs: vec![o.clone()] });
        o
    }
}

fn parse_op(n: &NodeProto, opset: i64) -> Result<Op> {
    let a = Attrs(&n.attributes);
    let unary = |op: UnaryOp| -> Result<Op> {
        a.only(&[])?;
        Ok(Op::Unary(op))
    };
    let binary = |op: BinaryOp| -> Result<Op> {
        a.only(&[])?;
        Ok(Op::Binary(op))
    };
    let reduce_axes = || -> Result<Option<Vec<i64>>> { a.ints("axes") };
    Ok(match n.op_type.as_str() {
        "Constant" => {
            a.only(&["value", "value_float", "value_floats", "value_int", "value_ints"])?;
            Op::Constant(match n.attributes.first().map(|x| (&x.name[..], &x.value)) {
                Some(("value", AttributeValue::Tensor(t))) => HostTensor::from_proto(t)?,
                Some(("value_float", AttributeValue::Float(v))) => HostTensor::f32(vec![], vec![*v]),
                Some(("value_floats", AttributeValue::Floats(v))) => HostTensor::f32(vec![v.len()], v.clone()),
                Some(("value_int", AttributeValue::Int(v))) => HostTensor::i64(vec![], vec![*v]),
                Some(("value_ints", AttributeValue::Ints(v))) => HostTensor::i64(vec![v.len()], v.clone()),
                _ => return Err(attr_err("value", "is missing or of an unsupported kind")),
            })
        }
        "Identity" | "Dropout" => {
            a.only(&["seed", "ratio"])?;
            Op::Identity
        }
        "Cast" => {
            a.only(&["to", "saturate"])?;
            let to = a.int("to", 1)?;
            Op::Cast {
                to_float: match to {
                    1 | 10 | 11 => true,
                    6 | 7 | 9 => false,
                    t => return Err(attr_err("to", &format!("= {t}: only float and integer types are supported"))),
                },
            }
        }
        "Neg" => unary(UnaryOp::Neg)?,
        "Abs" => unary(UnaryOp::Abs)?,
        "Reciprocal" => unary(UnaryOp::Reciprocal)?,
        "Sqrt" => unary(UnaryOp::Sqrt)?,
        "Exp" => unary(UnaryOp::Exp)?,
        "Log" => unary(UnaryOp::Log)?,
        "Sin" => unary(UnaryOp::Sin)?,
        "Cos" => unary(UnaryOp::Cos)?,
        "Tanh" => unary(UnaryOp::Tanh)?,
        "Erf" => unary(UnaryOp::Erf)?,
        "Sigmoid" => unary(UnaryOp::Sigmoid)?,
        "Relu" => unary(UnaryOp::Relu)?,
        "Softplus" => unary(UnaryOp::Softplus)?,
        "LeakyRelu" => {
            a.only(&["alpha"])?;
            Op::Unary(UnaryOp::LeakyRelu(a.float("alpha", 0.01)?))
        }
        "Elu" => {
            a.only(&["alpha"])?;
            Op::Unary(UnaryOp::Elu(a.float("alpha", 1.0)?))
        }
        "Selu" => {
            a.only(&["alpha", "gamma"])?;
            if (a.float("alpha", 1.673_263_2)? - 1.673_263_2).abs() > 1e-6
                || (a.float("gamma", 1.050_701)? - 1.050_701).abs() > 1e-6
            {
                return Err(attr_err("alpha/gamma", "other than SELU's standard constants are not supported"));
            }
            Op::Unary(UnaryOp::Selu)
        }
        "Gelu" => {
            a.only(&["approximate"])?;
            match a.string("approximate", "none")?.as_str() {
                "none" => Op::Unary(UnaryOp::Gelu),
                "tanh" => Op::Unary(UnaryOp::GeluTanh),
                other => return Err(attr_err("approximate", &format!("= {other} is not supported"))),
            }
        }
        "Add" => binary(BinaryOp::Add)?,
        "Sub" => binary(BinaryOp::Sub)?,
        "Mul" => binary(BinaryOp::Mul)?,
        "Div" => binary(BinaryOp::Div)?,
        "Pow" => binary(BinaryOp::Pow)?,
        "Max" if n.inputs.len() == 2 => binary(BinaryOp::Max)?,
        "Min" if n.inputs.len() == 2 => binary(BinaryOp::Min)?,
        "Mod" => {
            a.only(&["fmod"])?;
            Op::Mod
        }
        "Equal" => Op::Compare(Compare::Equal),
        "Less" => Op::Compare(Compare::Less),
        "Greater" => Op::Compare(Compare::Greater),
        "Where" => Op::Where,
        "MatMul" => {
            a.only(&[])?;
            Op::MatMul
        }
        "Gemm" => {
            a.only(&["alpha", "beta", "transA", "transB"])?;
            Op::Gemm {
                alpha: a.float("alpha", 1.0)?,
                beta: a.float("beta", 1.0)?,
                trans_a: a.int("transA", 0)? != 0,
                trans_b: a.int("transB", 0)? != 0,
            }
        }
        "Concat" => {
            a.only(&["axis"])?;
            Op::Concat { axis: a.int("axis", 0)? }
        }
        "Reshape" => {
            a.only(&["allowzero"])?;
            Op::Reshape { allow_zero: a.int("allowzero", 0)? != 0 }
        }
        "Flatten" => {
            a.only(&["axis"])?;
            Op::Flatten { axis: a.int("axis", 1)? }
        }
        "Squeeze" => {
            a.only(&["axes"])?;
            Op::Squeeze { axes: a.ints("axes")? }
        }
        "Unsqueeze" => {
            a.only(&["axes"])?;
            Op::Unsqueeze { axes: a.ints("axes")? }
        }
        "Transpose" => {
            a.only(&["perm"])?;
            Op::Transpose { perm: a.ints("perm")? }
        }
        "Gather" => {
            a.only(&["axis"])?;
            Op::Gather { axis: a.int("axis", 0)? }
        }
        "Shape" => {
            a.only(&["start", "end"])?;
            Op::Shape { start: a.int("start", 0)?, end: a.get("end").map(|_| a.int("end", 0)).transpose()? }
        }
        "ConstantOfShape" => {
            a.only(&["value"])?;
            Op::ConstantOfShape {
                value: match a.get("value") {
                    Some(AttributeValue::Tensor(t)) => HostTensor::from_proto(t)?,
                    None => HostTensor::f32(vec![1], vec![0.0]),
                    Some(_) => return Err(attr_err("value", "must be a tensor")),
                },
            }
        }
        "Range" => Op::Range,
        "Expand" => Op::Expand,
        "Slice" => {
            if opset < 10 {
                return Err(unsupported("Slice before opset 10 is not supported".into()));
            }
            a.only(&[])?;
            Op::Slice
        }
        "Split" => {
            a.only(&["axis", "split", "num_outputs"])?;
            Op::Split {
                axis: a.int("axis", 0)?,
                split: a.ints("split")?,
                num_outputs: a.get("num_outputs").map(|_| a.int("num_outputs", 0)).transpose()?,
            }
        }
        "Softmax" => {
            a.only(&["axis"])?;
            Op::Softmax { axis: a.int("axis", -1)? }
        }
        "ReduceMean" => {
            a.only(&["axes", "keepdims", "noop_with_empty_axes"])?;
            Op::ReduceMean { axes: reduce_axes()?, keep_dims: a.int("keepdims", 1)? != 0 }
        }
        "ReduceSum" => {
            a.only(&["axes", "keepdims", "noop_with_empty_axes"])?;
            Op::ReduceSum { axes: reduce_axes()?, keep_dims: a.int("keepdims", 1)? != 0 }
        }
        "LayerNormalization" => {
            a.only(&["axis", "epsilon", "stash_type"])?;
            Op::LayerNorm { axis: a.int("axis", -1)?, eps: a.float("epsilon", 1e-5)? }
        }
        "GroupNormalization" => {
            a.only(&["num_groups", "epsilon", "stash_type"])?;
            let groups = a.int("num_groups", 0)?;
            if groups < 1 {
                return Err(attr_err("num_groups", "must be ≥ 1"));
            }
            Op::GroupNorm { groups: groups as usize, eps: a.float("epsilon", 1e-5)? }
        }
        "InstanceNormalization" => {
            a.only(&["epsilon"])?;
            Op::InstanceNorm { eps: a.float("epsilon", 1e-5)? }
        }
        "BatchNormalization" => {
            a.only(&["epsilon", "momentum", "training_mode"])?;
            if a.int("training_mode", 0)? != 0 {
                return Err(attr_err("training_mode", "= 1: only inference BatchNormalization is supported"));
            }
            Op::BatchNorm { eps: a.float("epsilon", 1e-5)? }
        }
        "Conv" => {
            a.only(&["strides", "pads", "dilations", "group", "auto_pad", "kernel_shape"])?;
            Op::Conv {
                strides: a.ints("strides")?.unwrap_or_default(),
                pads: a.ints("pads")?.unwrap_or_default(),
                dilations: a.ints("dilations")?.unwrap_or_default(),
                group: a.int("group", 1)?,
                auto_pad: a.string("auto_pad", "NOTSET")?,
            }
        }
        "ConvTranspose" => {
            a.only(&["strides", "pads", "output_padding", "group", "kernel_shape", "dilations"])?;
            if a.ints("dilations")?.is_some_and(|d| d.iter().any(|&v| v != 1)) {
                return Err(attr_err("dilations", "other than 1 are not supported"));
            }
            Op::ConvTranspose {
                strides: a.ints("strides")?.unwrap_or_default(),
                pads: a.ints("pads")?.unwrap_or_default(),
                output_padding: a.ints("output_padding")?.unwrap_or_default(),
                group: a.int("group", 1)?,
            }
        }
        "Resize" | "Upsample" => {
            a.only(&[
                "mode",
                "coordinate_transformation_mode",
                "nearest_mode",
                "cubic_coeff_a",
                "exclude_outside",
                "antialias",
                "keep_aspect_ratio_policy",
                "axes",
                "extrapolation_value",
            ])?;
            Op::Resize {
                mode: a.string("mode", "nearest")?,
                coord: a.string("coordinate_transformation_mode", "half_pixel")?,
                nearest: a.string("nearest_mode", "round_prefer_floor")?,
            }
        }
        "AveragePool" | "MaxPool" => {
            a.only(&[
                "kernel_shape",
                "strides",
                "pads",
                "ceil_mode",
                "count_include_pad",
                "auto_pad",
                "dilations",
                "storage_order",
            ])?;
            if a.int("ceil_mode", 0)? != 0 {
                return Err(attr_err("ceil_mode", "= 1 is not supported"));
            }
            let kernel = a.ints("kernel_shape")?.ok_or_else(|| attr_err("kernel_shape", "is required"))?;
            let (strides, pads) = (a.ints("strides")?.unwrap_or_default(), a.ints("pads")?.unwrap_or_default());
            if n.op_type == "AveragePool" {
                Op::AveragePool { kernel, strides, pads }
            } else {
                Op::MaxPool { kernel, strides, pads }
            }
        }
        "Pad" => {
            a.only(&["mode"])?;
            Op::Pad { mode: a.string("mode", "constant")? }
        }
        other => {
            return Err(unsupported(format!(
                "op `{}` is not supported (see ARCHITECTURE.md, \"ONNX\", for the supported set)",
                shown(other, NAME)
            )));
        }
    })
}
