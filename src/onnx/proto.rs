//! The subset of `onnx.proto` (ONNX IR 3–10, opsets 13–21) a velocity network needs, read by a
//! strict, bounded protobuf decoder: every length and count is checked against the bytes present
//! before anything is allocated; unknown fields are skipped by wire type; external data, sparse
//! initializers, subgraph attributes and non-default domains are refused with an error naming
//! the node and the field.

use crate::error::{Error, NAME, Result, shown};
use crate::model::format::f16_to_f32;

/// ONNX tensor element types (`TensorProto.DataType`) the reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Float,
    Float16,
    Double,
    Int64,
    Int32,
    Bool,
}

/// A constant tensor (an initializer, a `Constant` node's value or a tensor attribute),
/// decoded: floats widened to f32, integers to i64.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorProto {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: DataType,
    pub data: TensorData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    Float(f32),
    Int(i64),
    String(Vec<u8>),
    Tensor(TensorProto),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: AttributeValue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeProto {
    pub name: String,
    pub op_type: String,
    /// Empty or "ai.onnx"; anything else is refused by the reader.
    pub domain: String,
    /// Input names; "" is an omitted optional input.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<Attribute>,
}

/// A dimension of a graph input/output: a number, a symbolic name (e.g. "batch"), or unknown.
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    Value(i64),
    Param(String),
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: Option<DataType>,
    /// `None` when the shape is not given.
    pub shape: Option<Vec<Dim>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GraphProto {
    pub name: String,
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelProto {
    pub ir_version: i64,
    /// (domain, version) pairs; the default domain is "".
    pub opset_imports: Vec<(String, i64)>,
    pub producer_name: String,
    pub graph: GraphProto,
    /// `metadata_props` as (key, value) pairs.
    pub metadata: Vec<(String, String)>,
}

impl ModelProto {
    /// The default-domain opset version.
    pub fn opset(&self) -> Option<i64> {
        self.opset_imports.iter().find(|(d, _)| d.is_empty() || d == "ai.onnx").map(|(_, v)| *v)
    }
}

/// Whether `bytes` look like an ONNX model rather than a safetensors file: not a safetensors
/// layout (an 8-byte little-endian header length that fits the file, then `{`), and the first
/// field a well-formed `ModelProto` field with its wire type (torch writes `ir_version` first:
/// `0x08`).
pub fn looks_like_onnx(bytes: &[u8]) -> bool {
    if let (Some(n), Some(b'{')) = (bytes.get(..8), bytes.get(8)) {
        let n = u64::from_le_bytes([n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]]);
        if n <= (bytes.len() - 8) as u64 {
            return false;
        }
    }
    let mut f = Fields { buf: bytes, pos: 0, base: 0 };
    matches!(f.next(), Ok(Some((1 | 5, Val::Varint(_)) | (2 | 3 | 4 | 6 | 7 | 8 | 14 | 20 | 25 | 26, Val::Bytes(_)))))
}

// ---------------------------------------------------------------------------------------------
// Limits. Every count is checked before its vector is allocated; every length against the
// bytes left in the enclosing message before anything is sliced.

/// Most nodes in the graph (the U-Nets shipped export ~600; a small DiT a few thousand).
pub const MAX_NODES: usize = 100_000;
/// Most initializers in the graph.
pub const MAX_INITIALIZERS: usize = 100_000;
/// Most graph inputs, and most graph outputs (IR 3 lists every initializer as an input too).
pub const MAX_GRAPH_VALUES: usize = 100_000;
/// Most inputs, and most outputs, of one node (`Concat`/`Sum` are the variadic ones).
pub const MAX_NODE_VALUES: usize = 4096;
/// Most attributes on one node (operators define at most ~10); names must be distinct.
pub const MAX_ATTRIBUTES: usize = 64;
/// Most elements of one `ints`/`floats`/`strings` attribute.
pub const MAX_LIST: usize = 1 << 20;
/// Most dimensions of a tensor or of a graph input/output's shape (the safetensors limit).
pub const MAX_DIMS: usize = 8;
/// Most `opset_import` entries.
pub const MAX_OPSET_IMPORTS: usize = 64;
/// Most `metadata_props` entries; keys must be distinct.
pub const MAX_METADATA: usize = 256;
/// Longest name in bytes: node, op_type, domain, value, tensor, attribute, dim_param, producer,
/// metadata key. (Metadata values and string attributes are bounded by the file alone.)
pub const MAX_NAME_BYTES: usize = 4096;
/// Deepest message nesting read. The subset read is not recursive (subgraph attributes and
/// sequence/map/optional types are refused), so 7 is the deepest a valid file reaches:
/// Model → Graph → ValueInfo → TypeProto → TypeProto.Tensor → TensorShapeProto → Dimension.
pub const MAX_DEPTH: usize = 7;
/// IR versions accepted (2017-11 to 2024-03; opset 21 is IR 10).
pub const IR_VERSIONS: std::ops::RangeInclusive<i64> = 3..=10;
/// Default-domain opset versions accepted.
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;
/// Heap the reader may allocate, beyond the fixed slack, per byte of input: weights take 1× as
/// FLOAT, 2× as FLOAT16 (widened), 8× as BOOL or small packed INT64 (as i64); the structure is
/// charged at its in-memory size. A file that would need more is refused before allocating.
pub const ALLOC_PER_INPUT_BYTE: usize = 4;
/// Fixed allowance on top (error messages are built outside it; the fuzzer's bound is
/// `4 × input + 64 KiB` for everything allocated during a parse).
pub const ALLOC_SLACK: usize = 48 * 1024;

/// The most heap `parse_model` will charge for a file of `len` bytes.
pub fn alloc_budget(len: usize) -> usize {
    len.saturating_mul(ALLOC_PER_INPUT_BYTE).saturating_add(ALLOC_SLACK)
}

// ---------------------------------------------------------------------------------------------
// Wire format.

fn bad(msg: String) -> Error {
    Error::WeightsFormat(msg)
}

/// Prepends `what` to a format error (other errors, e.g. `NonFiniteWeight`, pass unchanged).
fn within<T>(r: Result<T>, what: &dyn Fn() -> String) -> Result<T> {
    r.map_err(|e| context(e, what))
}

fn context(e: Error, what: &dyn Fn() -> String) -> Error {
    match e {
        Error::WeightsFormat(m) => Error::WeightsFormat(format!("{}: {m}", what())),
        e => e,
    }
}

/// A name from the file as an error message shows it.
fn quoted(b: &[u8]) -> String {
    format!("`{}`", shown(&String::from_utf8_lossy(b), NAME))
}

#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl Val<'_> {
    fn wire_name(&self) -> &'static str {
        match self {
            Val::Varint(_) => "varint",
            Val::Fixed64(_) => "64-bit",
            Val::Bytes(_) => "length-delimited",
            Val::Fixed32(_) => "32-bit",
        }
    }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> std::result::Result<u64, &'static str> {
    let mut v = 0u64;
    for i in 0..10 {
        let Some(&b) = buf.get(*pos) else { return Err("truncated varint") };
        *pos += 1;
        if i == 9 && b > 1 {
            return Err("varint longer than 64 bits");
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes")
}

/// The fields of one message, in order. `base` is the message's offset in the file (for errors).
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Fields<'a> {
    fn next(&mut self) -> Result<Option<(u32, Val<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.base + self.pos;
        let tag = read_varint(self.buf, &mut self.pos).map_err(|e| bad(format!("{e} in a field tag at byte {at}")))?;
        let num = tag >> 3;
        if num == 0 || num >= 1 << 29 {
            return Err(bad(format!("invalid field number {num} at byte {at}")));
        }
        let num = num as u32;
        let left = |s: &Self| s.buf.len() - s.pos;
        let short = |what: String, left: usize| {
            bad(format!("field {num} at byte {at}: {what} runs past the end of its message ({left} bytes left)"))
        };
        let val = match tag & 7 {
            0 => Val::Varint(
                read_varint(self.buf, &mut self.pos).map_err(|e| bad(format!("field {num} at byte {at}: {e}")))?,
            ),
            1 => match self.take(8) {
                Some(b) => Val::Fixed64(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])),
                None => return Err(short("its 8-byte value".into(), left(self))),
            },
            5 => match self.take(4) {
                Some(b) => Val::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                None => return Err(short("its 4-byte value".into(), left(self))),
            },
            2 => {
                let len = read_varint(self.buf, &mut self.pos)
                    .map_err(|e| bad(format!("field {num} at byte {at}: {e} in its length")))?;
                match self.take(usize::try_from(len).unwrap_or(usize::MAX)) {
                    Some(b) => Val::Bytes(b),
                    None => return Err(short(format!("length {len}"), left(self))),
                }
            }
            w @ (3 | 4) => return Err(bad(format!("field {num} at byte {at}: group wire type {w} is not supported"))),
            w => return Err(bad(format!("field {num} at byte {at}: invalid wire type {w}"))),
        };
        Ok(Some((num, val)))
    }

    /// The next `n` bytes, if the message has them.
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() - self.pos {
            return None;
        }
        self.pos += n;
        Some(&self.buf[self.pos - n..self.pos])
    }
}

/// Element type of a packable repeated scalar field.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Packed {
    Varint,
    Fixed32,
    Fixed64,
}

/// Field numbers below this are tallied by `scan` (every field this reader uses is).
const TRACKED: usize = 32;

/// A first pass over one message: for each field number, how many values it has (elements,
/// for the packable fields listed) and its last value. Lets singular fields be read and
/// repeated ones be counted (and their vectors sized exactly) before anything is allocated.
struct Scan<'a> {
    buf: &'a [u8],
    base: usize,
    count: [usize; TRACKED],
    last: [Option<Val<'a>>; TRACKED],
}

fn packed_count(b: &[u8], kind: Packed) -> Option<usize> {
    match kind {
        Packed::Varint => (b.last().is_none_or(|&x| x < 0x80)).then(|| b.iter().filter(|&&x| x < 0x80).count()),
        Packed::Fixed32 => b.len().is_multiple_of(4).then_some(b.len() / 4),
        Packed::Fixed64 => b.len().is_multiple_of(8).then_some(b.len() / 8),
    }
}

impl<'a> Scan<'a> {
    fn new(cx: &Cx, buf: &'a [u8], packed: &[(u32, Packed)]) -> Result<Self> {
        let base = cx.offset(buf);
        let mut s = Scan { buf, base, count: [0; TRACKED], last: [None; TRACKED] };
        let mut f = Fields { buf, pos: 0, base };
        while let Some((num, val)) = f.next()? {
            let i = num as usize;
            if i >= TRACKED {
                continue;
            }
            s.count[i] += match (val, packed.iter().find(|p| p.0 == num)) {
                (Val::Bytes(b), Some(&(_, kind))) => packed_count(b, kind).ok_or_else(|| {
                    bad(format!(
                        "field {num} at byte {}: packed values of {} bytes are truncated",
                        cx.offset(b),
                        b.len()
                    ))
                })?,
                _ => 1,
            };
            s.last[i] = Some(val);
        }
        Ok(s)
    }

    fn fields(&self) -> Fields<'a> {
        Fields { buf: self.buf, pos: 0, base: self.base }
    }

    fn has(&self, num: u32) -> bool {
        self.count[num as usize] > 0
    }

    /// A singular field's value; present twice is an error.
    fn one(&self, num: u32, field: &str) -> Result<Option<Val<'a>>> {
        match self.count[num as usize] {
            0 | 1 => Ok(self.last[num as usize]),
            n => Err(bad(format!("field {field} appears {n} times"))),
        }
    }

    fn varint(&self, num: u32, field: &str) -> Result<Option<u64>> {
        match self.one(num, field)? {
            None => Ok(None),
            Some(Val::Varint(v)) => Ok(Some(v)),
            Some(v) => Err(wire(field, v, "varint")),
        }
    }

    fn int32(&self, num: u32, field: &str) -> Result<Option<i32>> {
        self.varint(num, field)?.map(|v| int32(v, field)).transpose()
    }

    fn bytes(&self, num: u32, field: &str) -> Result<Option<&'a [u8]>> {
        match self.one(num, field)? {
            None => Ok(None),
            Some(Val::Bytes(b)) => Ok(Some(b)),
            Some(v) => Err(wire(field, v, "length-delimited")),
        }
    }

    /// Every value of a repeated length-delimited field (strings, bytes, messages), in order.
    fn each_bytes(&self, num: u32, field: &str, f: &mut dyn FnMut(&'a [u8]) -> Result<()>) -> Result<()> {
        let mut it = self.fields();
        while let Some((n, v)) = it.next()? {
            if n == num {
                match v {
                    Val::Bytes(b) => f(b)?,
                    v => return Err(wire(field, v, "length-delimited")),
                }
            }
        }
        Ok(())
    }

    /// Every element of a repeated scalar field, packed or not (both may be mixed): varints as
    /// they are, fixed-width values as their bits.
    fn each_scalar(&self, num: u32, kind: Packed, field: &str, f: &mut dyn FnMut(u64) -> Result<()>) -> Result<()> {
        let mut it = self.fields();
        while let Some((n, v)) = it.next()? {
            if n != num {
                continue;
            }
            match (v, kind) {
                (Val::Varint(x), Packed::Varint) => f(x)?,
                (Val::Fixed32(x), Packed::Fixed32) => f(u64::from(x))?,
                (Val::Fixed64(x), Packed::Fixed64) => f(x)?,
                (Val::Bytes(b), Packed::Varint) => {
                    let mut pos = 0;
                    while pos < b.len() {
                        f(read_varint(b, &mut pos)
                            .map_err(|e| bad(format!("field {field}: {e} in packed values")))?)?;
                    }
                }
                (Val::Bytes(b), Packed::Fixed32) => {
                    for c in b.chunks_exact(4) {
                        f(u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))?;
                    }
                }
                (Val::Bytes(b), Packed::Fixed64) => {
                    for c in b.chunks_exact(8) {
                        f(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))?;
                    }
                }
                (v, _) => {
                    let want = match kind {
                        Packed::Varint => "varint",
                        Packed::Fixed32 => "32-bit",
                        Packed::Fixed64 => "64-bit",
                    };
                    return Err(wire(field, v, want));
                }
            }
        }
        Ok(())
    }
}

fn wire(field: &str, v: Val<'_>, want: &str) -> Error {
    bad(format!("field {field} is {}, expected {want}", v.wire_name()))
}

fn int32(v: u64, field: &str) -> Result<i32> {
    i32::try_from(v as i64).map_err(|_| bad(format!("field {field}: {} is out of the int32 range", v as i64)))
}

// ---------------------------------------------------------------------------------------------
// Allocation budget and nesting.

struct Cx {
    /// Start of the file, to report absolute byte offsets.
    start: usize,
    /// Bytes the reader may still allocate.
    left: usize,
    budget: usize,
    depth: usize,
}

impl Cx {
    fn offset(&self, b: &[u8]) -> usize {
        (b.as_ptr() as usize).wrapping_sub(self.start)
    }

    fn charge(&mut self, bytes: usize, what: &str) -> Result<()> {
        if bytes > self.left {
            return Err(bad(format!(
                "{what} would need {bytes} more bytes of memory; the reader allows 4 × the file + 48 KiB \
                 ({} bytes) and {} are left",
                self.budget, self.left
            )));
        }
        self.left -= bytes;
        Ok(())
    }

    /// An empty vector with room for exactly `n` elements, charged to the budget.
    fn vec<T>(&mut self, n: usize, what: &str) -> Result<Vec<T>> {
        self.charge(n.saturating_mul(size_of::<T>()), what)?;
        Ok(Vec::with_capacity(n))
    }

    /// A UTF-8 string field of at most `max` bytes.
    fn text(&mut self, b: &[u8], field: &str, max: usize) -> Result<String> {
        if b.len() > max {
            return Err(bad(format!("field {field} is {} bytes long, over the {max}-byte limit", b.len())));
        }
        let s = std::str::from_utf8(b).map_err(|_| bad(format!("field {field} is not UTF-8")))?;
        self.charge(b.len(), field)?;
        Ok(s.to_owned())
    }

    fn name(&mut self, b: Option<&[u8]>, field: &str) -> Result<String> {
        self.text(b.unwrap_or_default(), field, MAX_NAME_BYTES)
    }

    /// Runs `f` one message level deeper.
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_DEPTH {
            return Err(bad(format!("messages nested deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }
}

fn check_count(n: usize, max: usize, what: &str) -> Result<()> {
    if n > max {
        return Err(bad(format!("{n} {what}, over the limit of {max}")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Messages.

/// Parses an ONNX `ModelProto`.
///
/// Field numbers are those of `onnx/onnx.proto` (onnx/onnx main, 2025). Unknown fields and
/// known ones the sampler does not need (doc strings, `value_info`, `functions`,
/// `training_info`, …) are skipped by wire type; a field read here with the wrong wire type, or
/// a singular one given twice, is an error. Refused with an error naming the message, the node
/// and the field: groups; external data; sparse initializers; subgraph, type, sparse and
/// tensor-list attributes; nodes outside the default domain; non-tensor graph inputs/outputs;
/// data types other than FLOAT, FLOAT16, DOUBLE, INT64, INT32 and BOOL; IR versions outside
/// [`IR_VERSIONS`] and default-domain opsets outside [`OPSETS`]; anything past the limits above.
/// Initializers holding NaN or ±Inf are `Error::NonFiniteWeight` (tensor attributes such as a
/// `Constant`'s value are not checked: −inf is a legitimate mask value there).
///
/// Memory: everything kept is charged to a budget of [`alloc_budget`]`(bytes.len())` before it
/// is allocated, and vectors are sized exactly from a first pass over each message.
pub fn parse_model(bytes: &[u8]) -> Result<ModelProto> {
    let budget = alloc_budget(bytes.len());
    let mut cx = Cx { start: bytes.as_ptr() as usize, left: budget, budget, depth: 0 };
    within(model(&mut cx, bytes), &|| "ONNX ModelProto".into())
}

fn model(cx: &mut Cx, buf: &[u8]) -> Result<ModelProto> {
    let s = Scan::new(cx, buf, &[])?;
    let ir_version = match s.varint(1, "ir_version")? {
        None => return Err(bad("has no ir_version".into())),
        Some(v) => v as i64,
    };
    if !IR_VERSIONS.contains(&ir_version) {
        return Err(bad(format!(
            "ir_version {ir_version} is not supported (IR versions {}..={} are)",
            IR_VERSIONS.start(),
            IR_VERSIONS.end()
        )));
    }

    check_count(s.count[8], MAX_OPSET_IMPORTS, "opset_import entries")?;
    let mut opset_imports = cx.vec::<(String, i64)>(s.count[8], "opset_import")?;
    s.each_bytes(8, "opset_import", &mut |b| {
        let i = opset_imports.len();
        let entry = cx.nested(|cx| {
            let e = Scan::new(cx, b, &[])?;
            let domain = cx.name(e.bytes(1, "domain")?, "domain")?;
            let version = e.varint(2, "version")?.unwrap_or(0) as i64;
            Ok((domain, version))
        });
        let (domain, version) = within(entry, &|| format!("opset_import #{i} (OperatorSetIdProto)"))?;
        let default = |d: &str| d.is_empty() || d == "ai.onnx";
        if opset_imports.iter().any(|(d, _)| *d == domain || (default(d) && default(&domain))) {
            return Err(bad(format!("opset_import lists domain `{}` twice", shown(&domain, NAME))));
        }
        opset_imports.push((domain, version));
        Ok(())
    })?;
    let opset = opset_imports.iter().find(|(d, _)| d.is_empty() || d == "ai.onnx").map(|(_, v)| *v);
    match opset {
        None => return Err(bad("opset_import has no entry for the default domain (\"\" or \"ai.onnx\")".into())),
        Some(v) if !OPSETS.contains(&v) => {
            return Err(bad(format!(
                "opset_import: default-domain opset {v} is not supported (opsets {}..={} are; \
                 export with torch.onnx.export(..., opset_version=17))",
                OPSETS.start(),
                OPSETS.end()
            )));
        }
        Some(_) => {}
    }

    let producer_name = cx.name(s.bytes(2, "producer_name")?, "producer_name")?;

    check_count(s.count[14], MAX_METADATA, "metadata_props entries")?;
    let mut metadata = cx.vec::<(String, String)>(s.count[14], "metadata_props")?;
    s.each_bytes(14, "metadata_props", &mut |b| {
        let i = metadata.len();
        let entry = cx.nested(|cx| {
            let e = Scan::new(cx, b, &[])?;
            let key = cx.name(e.bytes(1, "key")?, "key")?;
            let value = cx.text(e.bytes(2, "value")?.unwrap_or_default(), "value", usize::MAX)?;
            Ok((key, value))
        });
        let (key, value) = within(entry, &|| format!("metadata_props #{i} (StringStringEntryProto)"))?;
        if metadata.iter().any(|(k, _)| *k == key) {
            return Err(bad(format!("metadata_props has key `{}` twice", shown(&key, NAME))));
        }
        metadata.push((key, value));
        Ok(())
    })?;

    let Some(g) = s.bytes(7, "graph")? else { return Err(bad("has no graph".into())) };
    let graph = within(cx.nested(|cx| graph(cx, g)), &|| "GraphProto".into())?;
    Ok(ModelProto { ir_version, opset_imports, producer_name, graph, metadata })
}

fn graph(cx: &mut Cx, buf: &[u8]) -> Result<GraphProto> {
    let s = Scan::new(cx, buf, &[])?;
    if s.has(15) {
        return Err(bad("sparse_initializer is not supported: store the initializers dense".into()));
    }
    let name = cx.name(s.bytes(2, "name")?, "name")?;
    check_count(s.count[1], MAX_NODES, "nodes")?;
    check_count(s.count[5], MAX_INITIALIZERS, "initializers")?;
    check_count(s.count[11], MAX_GRAPH_VALUES, "inputs")?;
    check_count(s.count[12], MAX_GRAPH_VALUES, "outputs")?;
    let mut nodes = cx.vec(s.count[1], "node")?;
    let mut initializers = cx.vec(s.count[5], "initializer")?;
    let mut inputs = cx.vec(s.count[11], "input")?;
    let mut outputs = cx.vec(s.count[12], "output")?;
    s.each_bytes(11, "input", &mut |b| {
        inputs.push(value_info(cx, b, "input", inputs.len())?);
        Ok(())
    })?;
    s.each_bytes(12, "output", &mut |b| {
        outputs.push(value_info(cx, b, "output", outputs.len())?);
        Ok(())
    })?;
    s.each_bytes(5, "initializer", &mut |b| {
        let i = initializers.len();
        initializers.push(cx.nested(|cx| tensor(cx, b, Role::Initializer(i)))?);
        Ok(())
    })?;
    s.each_bytes(1, "node", &mut |b| {
        let i = nodes.len();
        nodes.push(cx.nested(|cx| node(cx, b, i))?);
        Ok(())
    })?;
    Ok(GraphProto { name, nodes, initializers, inputs, outputs })
}

fn value_info(cx: &mut Cx, buf: &[u8], kind: &str, index: usize) -> Result<ValueInfo> {
    cx.nested(|cx| {
        let s = Scan::new(cx, buf, &[])?;
        let raw_name = s.bytes(1, "name")?.unwrap_or_default();
        let what = || match raw_name {
            [] => format!("{kind} #{index} (ValueInfoProto)"),
            n => format!("{kind} {} (ValueInfoProto)", quoted(n)),
        };
        within(
            (|| {
                if raw_name.is_empty() {
                    return Err(bad("has no name".into()));
                }
                let name = cx.name(Some(raw_name), "name")?;
                let (elem_type, shape) = match s.bytes(2, "type")? {
                    None => (None, None),
                    Some(t) => within(cx.nested(|cx| type_proto(cx, t)), &|| "TypeProto".into())?,
                };
                Ok(ValueInfo { name, elem_type, shape })
            })(),
            &what,
        )
    })
}

type TypeInfo = (Option<DataType>, Option<Vec<Dim>>);

fn type_proto(cx: &mut Cx, buf: &[u8]) -> Result<TypeInfo> {
    let s = Scan::new(cx, buf, &[])?;
    for (num, kind) in [(4, "sequence"), (5, "map"), (7, "opaque"), (8, "sparse tensor"), (9, "optional")] {
        if s.has(num) {
            return Err(bad(format!("is a {kind} type; only tensors are supported")));
        }
    }
    let Some(t) = s.bytes(1, "tensor_type")? else { return Ok((None, None)) };
    within(
        cx.nested(|cx| {
            let s = Scan::new(cx, t, &[])?;
            let elem_type = match s.int32(1, "elem_type")?.unwrap_or(0) {
                0 => None,
                n => Some(data_type(n).ok_or_else(|| bad(format!("elem_type {} is not supported", type_name(n))))?),
            };
            let shape = match s.bytes(2, "shape")? {
                None => None,
                Some(b) => Some(within(cx.nested(|cx| shape(cx, b)), &|| "TensorShapeProto".into())?),
            };
            Ok((elem_type, shape))
        }),
        &|| "TypeProto.Tensor".into(),
    )
}

fn shape(cx: &mut Cx, buf: &[u8]) -> Result<Vec<Dim>> {
    let s = Scan::new(cx, buf, &[])?;
    check_count(s.count[1], MAX_DIMS, "dimensions")?;
    let mut dims = cx.vec(s.count[1], "dim")?;
    s.each_bytes(1, "dim", &mut |b| {
        let i = dims.len();
        let d = cx.nested(|cx| {
            let d = Scan::new(cx, b, &[])?;
            match (d.varint(1, "dim_value")?, d.bytes(2, "dim_param")?) {
                (Some(_), Some(_)) => Err(bad("sets both dim_value and dim_param".into())),
                (Some(v), None) if (v as i64) < 0 => Err(bad(format!("dim_value {} is negative", v as i64))),
                (Some(v), None) => Ok(Dim::Value(v as i64)),
                (None, Some(p)) => Ok(Dim::Param(cx.name(Some(p), "dim_param")?)),
                (None, None) => Ok(Dim::Unknown),
            }
        });
        dims.push(within(d, &|| format!("dim #{i}"))?);
        Ok(())
    })?;
    Ok(dims)
}

fn node(cx: &mut Cx, buf: &[u8], index: usize) -> Result<NodeProto> {
    let s = Scan::new(cx, buf, &[]).map_err(|e| context(e, &|| format!("NodeProto #{index}")))?;
    let raw_name = s.bytes(3, "name").ok().flatten().unwrap_or_default();
    let raw_op = s.bytes(4, "op_type").ok().flatten().unwrap_or_default();
    // Built only on error: nothing here may allocate on the way to a successful parse.
    let what = || {
        let op = || shown(&String::from_utf8_lossy(raw_op), NAME);
        match (raw_name, raw_op) {
            ([], []) => format!("NodeProto #{index}"),
            ([], _) => format!("NodeProto #{index} ({})", op()),
            (n, []) => format!("NodeProto {} (#{index})", quoted(n)),
            (n, _) => format!("NodeProto {} ({}, #{index})", quoted(n), op()),
        }
    };
    within(node_fields(cx, &s), &what)
}

fn node_fields(cx: &mut Cx, s: &Scan<'_>) -> Result<NodeProto> {
    let name = cx.name(s.bytes(3, "name")?, "name")?;
    let op_type = cx.name(s.bytes(4, "op_type")?, "op_type")?;
    if op_type.is_empty() {
        return Err(bad("has no op_type".into()));
    }
    let domain = cx.name(s.bytes(7, "domain")?, "domain")?;
    if !(domain.is_empty() || domain == "ai.onnx") {
        return Err(bad(format!(
            "is in domain `{}`; only the default ONNX domain (\"\" or \"ai.onnx\") is supported",
            shown(&domain, NAME)
        )));
    }
    check_count(s.count[1], MAX_NODE_VALUES, "inputs")?;
    check_count(s.count[2], MAX_NODE_VALUES, "outputs")?;
    check_count(s.count[5], MAX_ATTRIBUTES, "attributes")?;
    let mut inputs = cx.vec(s.count[1], "input")?;
    s.each_bytes(1, "input", &mut |b| {
        inputs.push(cx.name(Some(b), "input")?);
        Ok(())
    })?;
    let mut outputs = cx.vec(s.count[2], "output")?;
    s.each_bytes(2, "output", &mut |b| {
        outputs.push(cx.name(Some(b), "output")?);
        Ok(())
    })?;
    let mut attributes: Vec<Attribute> = cx.vec(s.count[5], "attribute")?;
    s.each_bytes(5, "attribute", &mut |b| {
        let a = cx.nested(|cx| attribute(cx, b, attributes.len()))?;
        if attributes.iter().any(|x| x.name == a.name) {
            return Err(bad(format!("has attribute `{}` twice", shown(&a.name, NAME))));
        }
        attributes.push(a);
        Ok(())
    })?;
    Ok(NodeProto { name, op_type, domain, inputs, outputs, attributes })
}

// AttributeProto.type values.
const A_FLOAT: i32 = 1;
const A_INT: i32 = 2;
const A_STRING: i32 = 3;
const A_TENSOR: i32 = 4;
const A_GRAPH: i32 = 5;
const A_FLOATS: i32 = 6;
const A_INTS: i32 = 7;
const A_STRINGS: i32 = 8;
const A_GRAPHS: i32 = 10;

fn attribute(cx: &mut Cx, buf: &[u8], index: usize) -> Result<Attribute> {
    let s = Scan::new(cx, buf, &[(7, Packed::Fixed32), (8, Packed::Varint)])
        .map_err(|e| context(e, &|| format!("AttributeProto #{index}")))?;
    let raw_name = s.bytes(1, "name").ok().flatten().unwrap_or_default();
    let what = || match raw_name {
        [] => format!("AttributeProto #{index}"),
        n => format!("AttributeProto {}", quoted(n)),
    };
    within(attribute_fields(cx, &s), &what)
}

fn attribute_fields(cx: &mut Cx, s: &Scan<'_>) -> Result<Attribute> {
    let name = cx.name(s.bytes(1, "name")?, "name")?;
    if name.is_empty() {
        return Err(bad("has no name".into()));
    }
    let declared = s.int32(20, "type")?.unwrap_or(0);
    if s.has(6) || s.has(11) || declared == A_GRAPH || declared == A_GRAPHS {
        return Err(bad("holds a subgraph (GraphProto): control flow (If, Loop, Scan) is not supported; \
             export the model without data-dependent control flow"
            .into()));
    }
    for (num, field) in [
        (10, "tensors"),
        (14, "tp"),
        (15, "type_protos"),
        (21, "ref_attr_name"),
        (22, "sparse_tensor"),
        (23, "sparse_tensors"),
    ] {
        if s.has(num) {
            return Err(bad(format!("field {field} is not supported")));
        }
    }
    // The value fields set, by attribute type.
    let fields = [(2, A_FLOAT), (3, A_INT), (4, A_STRING), (5, A_TENSOR), (7, A_FLOATS), (8, A_INTS), (9, A_STRINGS)];
    let mut used = fields.iter().filter(|(num, _)| s.has(*num)).map(|&(_, ty)| ty);
    let (first, second) = (used.next(), used.next());
    if second.is_some() {
        return Err(bad("sets more than one value field".into()));
    }
    let ty = match (declared, first) {
        (0, None) => return Err(bad("has no type and no value".into())),
        (0, Some(ty)) => ty,
        (d, Some(ty)) if d != ty => {
            return Err(bad(format!(
                "declares type {} but sets the value of type {}",
                attr_type_name(d),
                attr_type_name(ty)
            )));
        }
        (d, _) => d,
    };
    let value = match ty {
        A_FLOAT => AttributeValue::Float(match s.one(2, "f")? {
            None => 0.0,
            Some(Val::Fixed32(b)) => f32::from_bits(b),
            Some(v) => return Err(wire("f", v, "32-bit")),
        }),
        A_INT => AttributeValue::Int(s.varint(3, "i")?.unwrap_or(0) as i64),
        A_STRING => AttributeValue::String({
            let b = s.bytes(4, "s")?.unwrap_or_default();
            cx.charge(b.len(), "s")?;
            b.to_vec()
        }),
        A_TENSOR => match s.bytes(5, "t")? {
            None => return Err(bad("has type TENSOR but no tensor".into())),
            Some(b) => AttributeValue::Tensor(cx.nested(|cx| tensor(cx, b, Role::Attribute))?),
        },
        A_FLOATS => {
            check_count(s.count[7], MAX_LIST, "floats")?;
            let mut v = cx.vec(s.count[7], "floats")?;
            s.each_scalar(7, Packed::Fixed32, "floats", &mut |x| {
                v.push(f32::from_bits(x as u32));
                Ok(())
            })?;
            AttributeValue::Floats(v)
        }
        A_INTS => {
            check_count(s.count[8], MAX_LIST, "ints")?;
            let mut v = cx.vec(s.count[8], "ints")?;
            s.each_scalar(8, Packed::Varint, "ints", &mut |x| {
                v.push(x as i64);
                Ok(())
            })?;
            AttributeValue::Ints(v)
        }
        A_STRINGS => {
            check_count(s.count[9], MAX_LIST, "strings")?;
            let mut v = cx.vec(s.count[9], "strings")?;
            s.each_bytes(9, "strings", &mut |b| {
                cx.charge(b.len(), "strings")?;
                v.push(b.to_vec());
                Ok(())
            })?;
            AttributeValue::Strings(v)
        }
        t => return Err(bad(format!("type {} is not supported", attr_type_name(t)))),
    };
    Ok(Attribute { name, value })
}

fn attr_type_name(t: i32) -> String {
    const NAMES: [&str; 15] = [
        "UNDEFINED",
        "FLOAT",
        "INT",
        "STRING",
        "TENSOR",
        "GRAPH",
        "FLOATS",
        "INTS",
        "STRINGS",
        "TENSORS",
        "GRAPHS",
        "SPARSE_TENSOR",
        "SPARSE_TENSORS",
        "TYPE_PROTO",
        "TYPE_PROTOS",
    ];
    match usize::try_from(t).ok().and_then(|i| NAMES.get(i)) {
        Some(n) => format!("{n} ({t})"),
        None => format!("{t}"),
    }
}

// TensorProto.DataType values.
const T_FLOAT: i32 = 1;
const T_INT32: i32 = 6;
const T_INT64: i32 = 7;
const T_BOOL: i32 = 9;
const T_FLOAT16: i32 = 10;
const T_DOUBLE: i32 = 11;

fn data_type(t: i32) -> Option<DataType> {
    Some(match t {
        T_FLOAT => DataType::Float,
        T_FLOAT16 => DataType::Float16,
        T_DOUBLE => DataType::Double,
        T_INT64 => DataType::Int64,
        T_INT32 => DataType::Int32,
        T_BOOL => DataType::Bool,
        _ => return None,
    })
}

fn type_name(t: i32) -> String {
    const NAMES: [&str; 17] = [
        "UNDEFINED",
        "FLOAT",
        "UINT8",
        "INT8",
        "UINT16",
        "INT16",
        "INT32",
        "INT64",
        "STRING",
        "BOOL",
        "FLOAT16",
        "DOUBLE",
        "UINT32",
        "UINT64",
        "COMPLEX64",
        "COMPLEX128",
        "BFLOAT16",
    ];
    match usize::try_from(t).ok().and_then(|i| NAMES.get(i)) {
        Some(n) => format!("{n} ({t})"),
        None => format!("{t}"),
    }
}

#[derive(Clone, Copy)]
enum Role {
    /// The graph's initializer #i: must be named, must be finite.
    Initializer(usize),
    /// A tensor attribute's value.
    Attribute,
}

fn tensor(cx: &mut Cx, buf: &[u8], role: Role) -> Result<TensorProto> {
    let s = Scan::new(
        cx,
        buf,
        &[
            (1, Packed::Varint),
            (4, Packed::Fixed32),
            (5, Packed::Varint),
            (7, Packed::Varint),
            (10, Packed::Fixed64),
            (11, Packed::Varint),
        ],
    );
    let raw_name = s.as_ref().ok().and_then(|s| s.bytes(8, "name").ok().flatten()).unwrap_or_default();
    let what = || match (role, raw_name) {
        (Role::Initializer(i), []) => format!("initializer #{i} (TensorProto)"),
        (Role::Initializer(_), n) => format!("initializer {} (TensorProto)", quoted(n)),
        (Role::Attribute, []) => "TensorProto".into(),
        (Role::Attribute, n) => format!("TensorProto {}", quoted(n)),
    };
    within(s.and_then(|s| tensor_fields(cx, &s, role)), &what)
}

fn tensor_fields(cx: &mut Cx, s: &Scan<'_>, role: Role) -> Result<TensorProto> {
    let name = cx.name(s.bytes(8, "name")?, "name")?;
    if name.is_empty() && matches!(role, Role::Initializer(_)) {
        return Err(bad("has no name".into()));
    }
    if s.has(13) || s.int32(14, "data_location")? == Some(1) {
        return Err(bad("uses external data: re-export with the weights inside the file \
             (torch.onnx.export(..., external_data=False))"
            .into()));
    }
    match s.int32(14, "data_location")? {
        None | Some(0) => {}
        Some(v) => return Err(bad(format!("data_location {v} is not DEFAULT (0) or EXTERNAL (1)"))),
    }
    if s.has(3) {
        return Err(bad("field segment (a tensor split across messages) is not supported".into()));
    }
    check_count(s.count[1], MAX_DIMS, "dimensions")?;
    let mut dims = cx.vec::<i64>(s.count[1], "dims")?;
    let mut elements: usize = 1;
    s.each_scalar(1, Packed::Varint, "dims", &mut |d| {
        let d = d as i64;
        if d < 0 {
            return Err(bad(format!("dims[{}] is {d}, negative", dims.len())));
        }
        elements = usize::try_from(d)
            .ok()
            .and_then(|d| elements.checked_mul(d))
            .ok_or_else(|| bad("the product of dims overflows".into()))?;
        dims.push(d);
        Ok(())
    })?;
    let code = match s.int32(2, "data_type")? {
        None | Some(0) => return Err(bad("has no data_type".into())),
        Some(t) => t,
    };
    let Some(data_type) = data_type(code) else {
        return Err(bad(format!(
            "has data type {}; supported: FLOAT, FLOAT16, DOUBLE, INT64, INT32, BOOL",
            type_name(code)
        )));
    };
    // The typed field this data type stores its values in, and the raw_data width.
    let (typed, typed_name, kind, width) = match data_type {
        DataType::Float => (4, "float_data", Packed::Fixed32, 4),
        DataType::Float16 => (5, "int32_data", Packed::Varint, 2),
        DataType::Double => (10, "double_data", Packed::Fixed64, 8),
        DataType::Int64 => (7, "int64_data", Packed::Varint, 8),
        DataType::Int32 => (5, "int32_data", Packed::Varint, 4),
        DataType::Bool => (5, "int32_data", Packed::Varint, 1),
    };
    for (num, field) in [
        (4, "float_data"),
        (5, "int32_data"),
        (6, "string_data"),
        (7, "int64_data"),
        (10, "double_data"),
        (11, "uint64_data"),
    ] {
        if num != typed && s.has(num) {
            return Err(bad(format!("sets {field}, which does not hold data type {}", type_name(code))));
        }
    }
    let raw = s.bytes(9, "raw_data")?;
    if raw.is_some() && s.has(typed) {
        return Err(bad(format!("sets both raw_data and {typed_name}")));
    }
    let present = match raw {
        Some(r) => {
            let need = elements.checked_mul(width);
            if need != Some(r.len()) {
                return Err(bad(format!(
                    "has {} bytes of raw_data, but dims {dims:?} of {} need {}",
                    r.len(),
                    type_name(code),
                    need.map_or("more than fit in memory".into(), |n| n.to_string())
                )));
            }
            elements
        }
        None => s.count[typed as usize],
    };
    if present != elements {
        return Err(bad(format!("has {present} values in {typed_name}, but dims {dims:?} have {elements} elements")));
    }
    let data = match data_type {
        DataType::Float | DataType::Float16 | DataType::Double => {
            let mut v = cx.vec::<f32>(elements, "data")?;
            match (raw, data_type) {
                (Some(r), DataType::Float) => {
                    v.extend(r.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                }
                (Some(r), DataType::Float16) => {
                    v.extend(r.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))))
                }
                (Some(r), _) => v.extend(
                    r.chunks_exact(8)
                        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32),
                ),
                (None, _) => s.each_scalar(typed, kind, typed_name, &mut |x| {
                    v.push(match data_type {
                        DataType::Float => f32::from_bits(x as u32),
                        DataType::Double => f64::from_bits(x) as f32,
                        _ => f16_to_f32(
                            u16::try_from(x)
                                .map_err(|_| bad(format!("{typed_name}: FLOAT16 value {} is not 16 bits", x as i64)))?,
                        ),
                    });
                    Ok(())
                })?,
            }
            if let (Role::Initializer(_), Some(index)) = (role, v.iter().position(|x| !x.is_finite())) {
                return Err(Error::NonFiniteWeight { name, index });
            }
            TensorData::F32(v)
        }
        DataType::Int64 | DataType::Int32 | DataType::Bool => {
            let mut v = cx.vec::<i64>(elements, "data")?;
            let check = |x: i64, v: &Vec<i64>| -> Result<i64> {
                match data_type {
                    DataType::Bool if !(0..=1).contains(&x) => {
                        Err(bad(format!("BOOL element {} is {x}, not 0 or 1", v.len())))
                    }
                    _ => Ok(x),
                }
            };
            match raw {
                Some(r) => {
                    for c in r.chunks_exact(width) {
                        let x = match width {
                            8 => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                            4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                            _ => i64::from(c[0]),
                        };
                        v.push(check(x, &v)?);
                    }
                }
                None => s.each_scalar(typed, kind, typed_name, &mut |x| {
                    let x = if typed == 5 { i64::from(int32(x, typed_name)?) } else { x as i64 };
                    v.push(check(x, &v)?);
                    Ok(())
                })?,
            }
            TensorData::I64(v)
        }
    };
    Ok(TensorProto { name, dims, data_type, data })
}
