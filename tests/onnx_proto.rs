//! The ONNX protobuf reader (`pushforward::onnx::proto`): the real exports in the repository (the
//! two benchmark graphs in `www/bench/models/` and the parity fixtures in `tests/fixtures/onnx/`)
//! read exactly as the `onnx` package reads them, and hand-built messages (a tiny encoder
//! below) for every rule: wire-level damage, limits, external data, data types, packed and
//! unpacked fields, unknown fields, refused constructs, opset and IR ranges, non-finite weights.
//!
//! The reference digests of the real files come from `onnx` 1.23.2 (its C++ protobuf reader; a
//! regenerated fixture needs its digest recomputed with this):
//! `summary()` below writes the same canonical text as this Python, and both hash it with
//! FNV-1a 64 (floats as their f32 bits, tensor data as the FNV-1a of its little-endian f32 or
//! i64 bytes after widening/narrowing):
//!
//! ```python
//! def fnv(b):
//!     h = 0xcbf29ce484222325
//!     for x in b: h = ((h ^ x) * 0x100000001b3) & 0xffffffffffffffff
//!     return h
//! def data(t):
//!     a = numpy_helper.to_array(t)
//!     a = a.astype(np.float32) if t.data_type in (1, 10, 11) else a.astype(np.int64)
//!     return "%016x" % fnv(a.astype(a.dtype.newbyteorder("<")).tobytes())
//! def tensor(t): return "%s %d [%s] %s" % (t.name, t.data_type, ",".join(map(str, t.dims)), data(t))
//! def dims(v):
//!     tt = v.type.tensor_type
//!     if not tt.HasField("shape"): return "none"
//!     return "[" + ",".join(str(d.dim_value) if d.HasField("dim_value") else
//!                           ("$" + d.dim_param if d.HasField("dim_param") else "?") for d in tt.shape.dim) + "]"
//! def f32bits(x): return "%08x" % int(np.array([x], dtype=np.float32).view(np.uint32)[0])
//! def attr(a):
//!     k = a.type
//!     if k == 1: return "f " + f32bits(a.f)
//!     if k == 2: return "i %d" % a.i
//!     if k == 3: return "s " + a.s.hex()
//!     if k == 4: return "t " + tensor(a.t)
//!     if k == 6: return "fs " + ",".join(f32bits(x) for x in a.floats)
//!     if k == 7: return "is " + ",".join(map(str, a.ints))
//!     if k == 8: return "ss " + ",".join(s.hex() for s in a.strings)
//! def summary(m):
//!     out = ["ir %d" % m.ir_version]
//!     out += ["opset %s %d" % (o.domain, o.version) for o in m.opset_import]
//!     out.append("producer " + m.producer_name)
//!     out += ["meta %s=%s" % (p.key, p.value) for p in m.metadata_props]
//!     g = m.graph
//!     out.append("graph " + g.name)
//!     for kind, vs in (("input", g.input), ("output", g.output)):
//!         for v in vs:
//!             e = v.type.tensor_type.elem_type
//!             out.append("%s %s %s %s" % (kind, v.name, e if e else "-", dims(v)))
//!     out += ["init " + tensor(t) for t in g.initializer]
//!     for n in g.node:
//!         out.append("node %s|%s|%s|%s|%s" % (n.name, n.op_type, n.domain, ",".join(n.input), ",".join(n.output)))
//!         out += ["attr %s %s" % (a.name, attr(a)) for a in n.attribute]
//!     return "\n".join(out) + "\n"
//! print("%016x" % fnv(summary(onnx.load(path)).encode()))
//! ```

use pushforward::Error;
use pushforward::onnx::proto::{
    self, AttributeValue, DataType, Dim, MAX_ATTRIBUTES, MAX_DIMS, MAX_INITIALIZERS, MAX_NODES, ModelProto, TensorData,
    TensorProto, ValueInfo, looks_like_onnx, parse_model,
};
use std::collections::BTreeMap;
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------------
// A tiny protobuf encoder.

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[derive(Clone, Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn new() -> Self {
        Msg(Vec::new())
    }
    fn tag(mut self, num: u32, wire: u8) -> Self {
        put_varint(&mut self.0, (u64::from(num) << 3) | u64::from(wire));
        self
    }
    fn varint(self, num: u32, v: u64) -> Self {
        let mut m = self.tag(num, 0);
        put_varint(&mut m.0, v);
        m
    }
    fn int(self, num: u32, v: i64) -> Self {
        self.varint(num, v as u64)
    }
    fn fixed32(self, num: u32, v: u32) -> Self {
        let mut m = self.tag(num, 5);
        m.0.extend_from_slice(&v.to_le_bytes());
        m
    }
    fn fixed64(self, num: u32, v: u64) -> Self {
        let mut m = self.tag(num, 1);
        m.0.extend_from_slice(&v.to_le_bytes());
        m
    }
    fn bytes(self, num: u32, b: &[u8]) -> Self {
        let mut m = self.tag(num, 2);
        put_varint(&mut m.0, b.len() as u64);
        m.0.extend_from_slice(b);
        m
    }
    fn str(self, num: u32, s: &str) -> Self {
        self.bytes(num, s.as_bytes())
    }
    fn msg(self, num: u32, m: Msg) -> Self {
        self.bytes(num, &m.0)
    }
    fn packed_varints(self, num: u32, vs: &[i64]) -> Self {
        let mut b = Vec::new();
        for &v in vs {
            put_varint(&mut b, v as u64);
        }
        self.bytes(num, &b)
    }
    fn packed_f32(self, num: u32, vs: &[f32]) -> Self {
        self.bytes(num, &vs.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

// ONNX builders (field numbers from onnx/onnx.proto).

fn tensor_raw(name: &str, data_type: i64, dims: &[i64], raw: &[u8]) -> Msg {
    dims.iter().fold(Msg::new(), |m, &d| m.int(1, d)).int(2, data_type).str(8, name).bytes(9, raw)
}

fn tensor_f32(name: &str, dims: &[i64], vs: &[f32]) -> Msg {
    tensor_raw(name, 1, dims, &vs.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())
}

fn value_info(name: &str, elem: i64, dims: &[Option<i64>]) -> Msg {
    let shape = dims.iter().fold(Msg::new(), |m, d| {
        m.msg(
            1,
            match d {
                Some(v) => Msg::new().int(1, *v),
                None => Msg::new().str(2, "n"),
            },
        )
    });
    Msg::new().str(1, name).msg(2, Msg::new().msg(1, Msg::new().int(1, elem).msg(2, shape)))
}

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<Msg>) -> Msg {
    let m = inputs.iter().fold(Msg::new(), |m, i| m.str(1, i));
    let m = outputs.iter().fold(m, |m, o| m.str(2, o)).str(3, name).str(4, op);
    attrs.into_iter().fold(m, |m, a| m.msg(5, a))
}

fn attr_int(name: &str, v: i64) -> Msg {
    Msg::new().str(1, name).int(3, v).int(20, 2)
}

/// `y = x + b` with `b` = [1, 2] and x: [n, 2].
fn base_graph() -> Msg {
    Msg::new()
        .msg(1, node("add", "Add", &["x", "b"], &["y"], vec![]))
        .str(2, "g")
        .msg(5, tensor_f32("b", &[2], &[1.0, 2.0]))
        .msg(11, value_info("x", 1, &[None, Some(2)]))
        .msg(12, value_info("y", 1, &[None, Some(2)]))
}

fn model_with(graph: Msg, ir: i64, opset: i64) -> Vec<u8> {
    Msg::new().int(1, ir).str(2, "test").msg(7, graph).msg(8, Msg::new().str(1, "").int(2, opset)).0
}

fn model(graph: Msg) -> Vec<u8> {
    model_with(graph, 8, 17)
}

/// A model whose graph holds one initializer `w` and nothing else.
fn with_initializer(t: Msg) -> Vec<u8> {
    model(Msg::new().str(2, "g").msg(5, t))
}

fn only_initializer(bytes: &[u8]) -> TensorProto {
    let m = parse_model(bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.graph.initializers.len(), 1);
    m.graph.initializers.into_iter().next().unwrap()
}

fn err(bytes: &[u8]) -> String {
    match parse_model(bytes) {
        Ok(_) => panic!("parsed, expected an error"),
        Err(Error::WeightsFormat(m)) => {
            assert!(m.starts_with("ONNX ModelProto"), "{m}");
            m
        }
        Err(e) => panic!("expected WeightsFormat, got {e:?}"),
    }
}

fn assert_err(bytes: &[u8], parts: &[&str]) {
    let m = err(bytes);
    for p in parts {
        assert!(m.contains(p), "error `{m}` does not mention `{p}`");
    }
}

// ---------------------------------------------------------------------------------------------
// The real exports.

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn real(name: &str) -> Vec<u8> {
    std::fs::read(root().join("www/bench/models").join(name)).unwrap()
}

/// The ONNX files in the repository when this was written, and the FNV-1a 64 of their
/// `summary()` as onnx reads them. Files added since are still read, walked and checked against
/// their manifest (`repository_onnx_files`), just without a reference digest.
const DIGESTS: [(&str, &str); 14] = [
    ("www/bench/models/moons_heun_step.onnx", "5dbefc79091cf79b"),
    ("www/bench/models/mnist_heun_step.onnx", "92ccae6f068de167"),
    ("www/bench/models/moons.onnx", "d8992ba271db855e"),
    ("www/bench/models/mnist.onnx", "b4caa7176e9eafd6"),
    ("tests/fixtures/onnx/mlp_selu_raw_t.onnx", "f633a580da647780"),
    ("tests/fixtures/onnx/mlp_fourier_gelu.onnx", "57e1fd52bccf704b"),
    ("tests/fixtures/onnx/moons_onnx.onnx", "8d909e133ac17ac3"),
    ("tests/fixtures/onnx/mnist_onnx.onnx", "87defa96682e7aa3"),
    ("tests/fixtures/onnx/unet_attn.onnx", "310716cce378bfbf"),
    ("tests/fixtures/onnx/dit_small.onnx", "ed87a2a700f0cab3"),
    ("tests/fixtures/onnx/mlp_opset13.onnx", "b0f4ffea2af08bbf"),
    ("tests/fixtures/onnx/op_zoo.onnx", "f4633f30679358aa"),
    ("tests/fixtures/onnx/unet_classic.onnx", "0f4f36eba6df8d72"),
    ("tests/fixtures/onnx/upsample_bilinear.onnx", "156e2b85fd2d3e31"),
];

/// Every `.onnx` file in `www/bench/models/` and `tests/fixtures/onnx/`, as paths from the root.
fn repository_onnx_files() -> Vec<String> {
    let mut v = Vec::new();
    for dir in ["www/bench/models", "tests/fixtures/onnx"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".onnx") {
                v.push(format!("{dir}/{name}"));
            }
        }
    }
    v.sort();
    v
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h = (*h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
}

fn fnv_of(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325;
    fnv(&mut h, &bytes.into_iter().collect::<Vec<_>>());
    format!("{h:016x}")
}

fn type_code(t: DataType) -> i32 {
    match t {
        DataType::Float => 1,
        DataType::Float16 => 10,
        DataType::Double => 11,
        DataType::Int64 => 7,
        DataType::Int32 => 6,
        DataType::Bool => 9,
    }
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

fn tensor_line(t: &TensorProto) -> String {
    let data = match &t.data {
        TensorData::F32(v) => fnv_of(v.iter().flat_map(|x| x.to_le_bytes())),
        TensorData::I64(v) => fnv_of(v.iter().flat_map(|x| x.to_le_bytes())),
    };
    format!("{} {} [{}] {data}", t.name, type_code(t.data_type), join(&t.dims))
}

fn value_line(kind: &str, v: &ValueInfo) -> String {
    let elem = v.elem_type.map_or("-".to_string(), |t| type_code(t).to_string());
    let dims = match &v.shape {
        None => "none".to_string(),
        Some(d) => {
            let d: Vec<String> = d
                .iter()
                .map(|d| match d {
                    Dim::Value(v) => v.to_string(),
                    Dim::Param(p) => format!("${p}"),
                    Dim::Unknown => "?".into(),
                })
                .collect();
            format!("[{}]", d.join(","))
        }
    };
    format!("{kind} {} {elem} {dims}\n", v.name)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The canonical text the Python in the module docs writes.
fn summary(m: &ModelProto) -> String {
    let mut s = format!("ir {}\n", m.ir_version);
    for (d, v) in &m.opset_imports {
        s += &format!("opset {d} {v}\n");
    }
    s += &format!("producer {}\n", m.producer_name);
    for (k, v) in &m.metadata {
        s += &format!("meta {k}={v}\n");
    }
    let g = &m.graph;
    s += &format!("graph {}\n", g.name);
    for v in &g.inputs {
        s += &value_line("input", v);
    }
    for v in &g.outputs {
        s += &value_line("output", v);
    }
    for t in &g.initializers {
        s += &format!("init {}\n", tensor_line(t));
    }
    for n in &g.nodes {
        s += &format!("node {}|{}|{}|{}|{}\n", n.name, n.op_type, n.domain, n.inputs.join(","), n.outputs.join(","));
        for a in &n.attributes {
            let v = match &a.value {
                AttributeValue::Float(f) => format!("f {:08x}", f.to_bits()),
                AttributeValue::Int(i) => format!("i {i}"),
                AttributeValue::String(b) => format!("s {}", hex(b)),
                AttributeValue::Tensor(t) => format!("t {}", tensor_line(t)),
                AttributeValue::Floats(v) => {
                    format!("fs {}", v.iter().map(|f| format!("{:08x}", f.to_bits())).collect::<Vec<_>>().join(","))
                }
                AttributeValue::Ints(v) => format!("is {}", join(v)),
                AttributeValue::Strings(v) => format!("ss {}", v.iter().map(|b| hex(b)).collect::<Vec<_>>().join(",")),
            };
            s += &format!("attr {} {v}\n", a.name);
        }
    }
    s
}

/// Top-level fields of a message, by an independent minimal walker: (field, wire type, value
/// or payload).
fn walk(b: &[u8]) -> Vec<(u64, u64, &[u8], u64)> {
    fn varint(b: &[u8], p: &mut usize) -> u64 {
        let (mut v, mut s) = (0u64, 0);
        loop {
            let x = b[*p];
            *p += 1;
            v |= u64::from(x & 0x7f) << s;
            s += 7;
            if x < 0x80 {
                return v;
            }
        }
    }
    let (mut out, mut p) = (Vec::new(), 0);
    while p < b.len() {
        let tag = varint(b, &mut p);
        let (payload, v): (&[u8], u64) = match tag & 7 {
            0 => (&[], varint(b, &mut p)),
            1 => {
                p += 8;
                (&b[p - 8..p], 0)
            }
            5 => {
                p += 4;
                (&b[p - 4..p], 0)
            }
            2 => {
                let n = varint(b, &mut p) as usize;
                p += n;
                (&b[p - n..p], 0)
            }
            w => panic!("wire type {w}"),
        };
        out.push((tag >> 3, tag & 7, payload, v));
    }
    out
}

struct Expected {
    file: &'static str,
    nodes: usize,
    initializers: usize,
    init_elements: usize,
    inputs: &'static [(&'static str, DataType, &'static [Option<i64>])],
    outputs: &'static [(&'static str, DataType, &'static [Option<i64>])],
    ops: &'static [(&'static str, usize)],
}

const N: Option<i64> = None;

const EXPECTED: [Expected; 2] = [
    Expected {
        file: "moons_heun_step.onnx",
        nodes: 81,
        initializers: 10,
        init_elements: 54274,
        inputs: &[
            ("x", DataType::Float, &[N, Some(2)]),
            ("e0", DataType::Float, &[Some(1), Some(32)]),
            ("e1", DataType::Float, &[Some(1), Some(32)]),
            ("h", DataType::Float, &[Some(1)]),
        ],
        outputs: &[("x_next", DataType::Float, &[N, Some(2)])],
        ops: &[
            ("Add", 3),
            ("Concat", 6),
            ("Constant", 15),
            ("ConstantOfShape", 4),
            ("Equal", 2),
            ("Expand", 2),
            ("Gather", 4),
            ("Gemm", 10),
            ("Mul", 13),
            ("Reshape", 2),
            ("Shape", 6),
            ("Sigmoid", 8),
            ("Unsqueeze", 4),
            ("Where", 2),
        ],
    },
    Expected {
        file: "mnist_heun_step.onnx",
        nodes: 627,
        initializers: 97,
        init_elements: 392569,
        inputs: &[
            ("x", DataType::Float, &[N, Some(1), Some(28), Some(28)]),
            ("e0", DataType::Float, &[Some(1), Some(24)]),
            ("e1", DataType::Float, &[Some(1), Some(24)]),
            ("h", DataType::Float, &[Some(1)]),
            ("y", DataType::Int64, &[N]),
            ("w", DataType::Float, &[Some(1)]),
        ],
        outputs: &[("x_next", DataType::Float, &[N, Some(1), Some(28), Some(28)])],
        ops: &[
            ("Add", 65),
            ("Concat", 13),
            ("Constant", 155),
            ("ConstantOfShape", 5),
            ("Conv", 48),
            ("Equal", 2),
            ("Expand", 2),
            ("Gather", 5),
            ("Gemm", 18),
            ("Identity", 30),
            ("InstanceNormalization", 30),
            ("Mul", 73),
            ("Reshape", 62),
            ("Resize", 4),
            ("Shape", 37),
            ("Sigmoid", 34),
            ("Slice", 4),
            ("Sub", 2),
            ("Unsqueeze", 36),
            ("Where", 2),
        ],
    },
];

#[test]
fn benchmark_exports_have_the_known_structure() {
    for e in &EXPECTED {
        let bytes = real(e.file);
        assert!(looks_like_onnx(&bytes), "{}", e.file);
        let m = parse_model(&bytes).unwrap_or_else(|err| panic!("{}: {err}", e.file));
        assert_eq!(m.ir_version, 8);
        assert_eq!(m.opset(), Some(17));
        assert_eq!(m.opset_imports, vec![(String::new(), 17)]);
        assert_eq!(m.producer_name, "pytorch");
        assert!(m.metadata.is_empty());
        assert_eq!(m.graph.name, "main_graph");
        assert_eq!(m.graph.nodes.len(), e.nodes, "{}", e.file);
        assert_eq!(m.graph.initializers.len(), e.initializers, "{}", e.file);
        let io = |v: &[(&str, DataType, &[Option<i64>])]| -> Vec<ValueInfo> {
            v.iter()
                .map(|(name, t, dims)| ValueInfo {
                    name: name.to_string(),
                    elem_type: Some(*t),
                    shape: Some(dims.iter().map(|d| d.map_or(Dim::Param("n".into()), Dim::Value)).collect()),
                })
                .collect()
        };
        assert_eq!(m.graph.inputs, io(e.inputs), "{}", e.file);
        assert_eq!(m.graph.outputs, io(e.outputs), "{}", e.file);
        let mut ops = BTreeMap::<&str, usize>::new();
        for n in &m.graph.nodes {
            *ops.entry(n.op_type.as_str()).or_default() += 1;
            assert_eq!(n.domain, "");
            assert!(!n.name.is_empty());
        }
        assert_eq!(ops.into_iter().collect::<Vec<_>>(), e.ops.to_vec(), "{}", e.file);
        // Every tensor's data matches its dims; all initializers are FLOAT.
        let mut total = 0;
        for t in &m.graph.initializers {
            let TensorData::F32(v) = &t.data else { panic!("{} is not F32", t.name) };
            assert_eq!(t.data_type, DataType::Float);
            assert_eq!(v.len(), t.dims.iter().product::<i64>() as usize, "{}", t.name);
            total += v.len();
        }
        assert_eq!(total, e.init_elements, "{}", e.file);
        for n in &m.graph.nodes {
            for a in &n.attributes {
                if let AttributeValue::Tensor(t) = &a.value {
                    let len = match &t.data {
                        TensorData::F32(v) => v.len(),
                        TensorData::I64(v) => v.len(),
                    };
                    assert_eq!(len, t.dims.iter().product::<i64>() as usize, "{} of {}", a.name, n.name);
                }
            }
        }
    }
}

/// The whole structure, every value and every weight of every ONNX file in the repository, as
/// onnx 1.23.2 reads it.
#[test]
fn every_onnx_file_in_the_repository_reads_as_onnx_reads_it() {
    let files = repository_onnx_files();
    for (path, _) in DIGESTS {
        assert!(files.iter().any(|f| f == path), "{path} is gone: update DIGESTS");
    }
    for path in &files {
        let bytes = std::fs::read(root().join(path)).unwrap();
        assert!(looks_like_onnx(&bytes), "{path}");
        let m = parse_model(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        let Some((_, digest)) = DIGESTS.iter().find(|(p, _)| p == path) else {
            println!("{path}: read, no reference digest (added after this test)");
            continue;
        };
        let text = summary(&m);
        assert_eq!(
            fnv_of(text.bytes()),
            *digest,
            "{path}: the summary differs from onnx's (a regenerated file needs its digest recomputed \
             with the Python in this file's docs); it starts:\n{}",
            &text[..text.len().min(2000)]
        );
    }
}

/// The parity fixtures against what their exporters wrote in `manifest*.json`: node count, op
/// histogram, opset, and the declaration in `metadata_props["pushforward"]`.
#[test]
fn parity_fixtures_match_their_manifests() {
    let dir = root().join("tests/fixtures/onnx");
    let mut seen = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let file = e.unwrap().file_name().into_string().unwrap();
        if !(file.starts_with("manifest") && file.ends_with(".json")) {
            continue;
        }
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(&file)).unwrap()).unwrap();
        for (name, f) in manifest["fixtures"].as_object().unwrap() {
            let onnx = f["onnx"].as_str().unwrap();
            seen.push(format!("tests/fixtures/onnx/{onnx}"));
            let m = parse_model(&std::fs::read(dir.join(onnx)).unwrap()).unwrap();
            assert_eq!(m.opset(), f["opset"].as_i64(), "{name}");
            assert_eq!(m.graph.nodes.len() as u64, f["nodes"].as_u64().unwrap(), "{name}");
            let mut ops = BTreeMap::<String, u64>::new();
            for n in &m.graph.nodes {
                *ops.entry(n.op_type.clone()).or_default() += 1;
            }
            let want: BTreeMap<String, u64> =
                f["op_types"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
            assert_eq!(ops, want, "{name}");
            let (key, value) = &m.metadata[0];
            assert_eq!((key.as_str(), m.metadata.len()), ("pushforward", 1), "{name}");
            let declared: serde_json::Value = serde_json::from_str(value).unwrap();
            assert_eq!(declared, f["declaration"], "{name}");
        }
    }
    seen.sort();
    let fixtures: Vec<String> =
        repository_onnx_files().into_iter().filter(|f| f.starts_with("tests/fixtures/onnx/")).collect();
    assert_eq!(seen, fixtures, "every fixture in a manifest, every manifest entry a file");
}

/// IEEE binary16 → f32 by its definition (sign, 5-bit exponent with bias 15, 10-bit fraction;
/// subnormals, infinities, NaN).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let (e, f) = (((h >> 10) & 0x1f) as i32, (h & 0x3ff) as f32);
    sign * match e {
        0 => f / 1024.0 * 2f32.powi(-14),
        31 if f == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + f / 1024.0) * 2f32.powi(e - 15),
    }
}

/// The same facts by an independent walk of the bytes: the graph's node and initializer
/// fields, and each initializer's name, dims and raw_data bytes.
#[test]
fn real_exports_agree_with_a_naive_walk() {
    for path in repository_onnx_files() {
        let bytes = std::fs::read(root().join(&path)).unwrap();
        let m = parse_model(&bytes).unwrap();
        let top = walk(&bytes);
        let graph = top.iter().find(|f| f.0 == 7).unwrap().2;
        let fields = walk(graph);
        assert_eq!(fields.iter().filter(|f| f.0 == 1).count(), m.graph.nodes.len());
        let inits: Vec<_> = fields.iter().filter(|f| f.0 == 5).collect();
        assert_eq!(inits.len(), m.graph.initializers.len());
        for (f, t) in inits.iter().zip(&m.graph.initializers) {
            let tf = walk(f.2);
            let name = tf.iter().find(|x| x.0 == 8).unwrap().2;
            assert_eq!(name, t.name.as_bytes());
            let dims: Vec<i64> = tf.iter().filter(|x| x.0 == 1).map(|x| x.3 as i64).collect();
            assert_eq!(dims, t.dims);
            let raw = tf.iter().find(|x| x.0 == 9).unwrap().2;
            let ours: Vec<u8> = match (&t.data, t.data_type) {
                (TensorData::F32(v), DataType::Float) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                (TensorData::I64(v), DataType::Int64) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                (TensorData::I64(v), DataType::Int32) => v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect(),
                (TensorData::I64(v), DataType::Bool) => v.iter().map(|&x| x as u8).collect(),
                // Widened on load: compare values, the raw halves widened here independently.
                (TensorData::F32(v), DataType::Float16) => {
                    let halves: Vec<f32> =
                        raw.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect();
                    assert_eq!(&halves, v, "{path}: {}", t.name);
                    continue;
                }
                (d, t) => panic!("{path}: no raw FLOAT16/DOUBLE in the repository's exports ({t:?}, {d:?})"),
            };
            assert_eq!(raw, ours, "{path}: {}", t.name);
        }
    }
}

#[test]
fn known_attributes_of_the_mnist_export() {
    let m = parse_model(&real("mnist_heun_step.onnx")).unwrap();
    let conv = m.graph.nodes.iter().find(|n| n.op_type == "Conv").unwrap();
    assert_eq!(conv.name, "/model/conv_in/Conv");
    assert_eq!(conv.inputs, ["/Concat_output_0", "model.conv_in.weight", "model.conv_in.bias"]);
    let attrs: Vec<(&str, &AttributeValue)> = conv.attributes.iter().map(|a| (a.name.as_str(), &a.value)).collect();
    assert_eq!(
        attrs,
        [
            ("dilations", &AttributeValue::Ints(vec![1, 1])),
            ("group", &AttributeValue::Int(1)),
            ("kernel_shape", &AttributeValue::Ints(vec![3, 3])),
            ("pads", &AttributeValue::Ints(vec![1, 1, 1, 1])),
            ("strides", &AttributeValue::Ints(vec![1, 1])),
        ]
    );
    let resize = m.graph.nodes.iter().find(|n| n.op_type == "Resize").unwrap();
    assert_eq!(resize.inputs[1], "", "an omitted optional input is an empty name");
    let get = |n: &str| &resize.attributes.iter().find(|a| a.name == n).unwrap().value;
    assert_eq!(get("mode"), &AttributeValue::String(b"nearest".to_vec()));
    assert_eq!(get("cubic_coeff_a"), &AttributeValue::Float(-0.75));
    let first = &m.graph.initializers[0];
    assert_eq!((first.name.as_str(), first.dims.as_slice()), ("model.time_mlp.0.weight", &[96, 24][..]));
    let TensorData::F32(v) = &first.data else { panic!() };
    assert_eq!(
        &v[..3],
        &[0.007667463272809982f64 as f32, 0.08062060922384262f64 as f32, -0.16386370360851288f64 as f32]
    );
}

#[test]
fn looks_like_onnx_tells_the_formats_apart() {
    assert!(looks_like_onnx(&real("moons_heun_step.onnx")));
    for f in ["models/moons.safetensors", "models/mnist.safetensors", "tests/fixtures/fresh_mlp.safetensors"] {
        assert!(!looks_like_onnx(&std::fs::read(root().join(f)).unwrap()), "{f}");
    }
    assert!(looks_like_onnx(&model(base_graph())));
    // A graph-first file (no ir_version up front) still looks like ONNX.
    assert!(looks_like_onnx(&Msg::new().msg(7, base_graph()).int(1, 8).0));
    for junk in
        [&b""[..], b"\x08", b"\x0a\x05ab", b"{\"a\":1}", b"\x2a\x00", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"]
    {
        assert!(!looks_like_onnx(junk), "{junk:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-built messages.

#[test]
fn a_minimal_model_reads_completely() {
    let m = parse_model(&model(base_graph())).unwrap();
    assert_eq!((m.ir_version, m.opset(), m.producer_name.as_str()), (8, Some(17), "test"));
    assert_eq!(m.graph.name, "g");
    let n = &m.graph.nodes[0];
    assert_eq!((n.name.as_str(), n.op_type.as_str(), n.domain.as_str()), ("add", "Add", ""));
    assert_eq!((n.inputs.clone(), n.outputs.clone()), (vec!["x".to_string(), "b".to_string()], vec!["y".to_string()]));
    assert_eq!(
        m.graph.initializers,
        [TensorProto {
            name: "b".into(),
            dims: vec![2],
            data_type: DataType::Float,
            data: TensorData::F32(vec![1.0, 2.0])
        }]
    );
    assert_eq!(m.graph.inputs[0].shape, Some(vec![Dim::Param("n".into()), Dim::Value(2)]));
    // A value without a type, a type without a shape, a dimension with neither value nor name.
    let g = base_graph()
        .msg(11, Msg::new().str(1, "untyped"))
        .msg(11, Msg::new().str(1, "unshaped").msg(2, Msg::new().msg(1, Msg::new().int(1, 7))))
        .msg(11, Msg::new().str(1, "scalar").msg(2, Msg::new().msg(1, Msg::new().int(1, 1).msg(2, Msg::new()))))
        .msg(11, Msg::new().str(1, "q").msg(2, Msg::new().msg(1, Msg::new().msg(2, Msg::new().msg(1, Msg::new())))));
    let m = parse_model(&model(g)).unwrap();
    let v = &m.graph.inputs;
    assert_eq!((v[1].elem_type, &v[1].shape), (None, &None));
    assert_eq!((v[2].elem_type, &v[2].shape), (Some(DataType::Int64), &None));
    assert_eq!((v[3].elem_type, &v[3].shape), (Some(DataType::Float), &Some(vec![])));
    assert_eq!((v[4].elem_type, &v[4].shape), (None, &Some(vec![Dim::Unknown])));
    // Metadata, several opsets, "ai.onnx" as the default domain's other name.
    let bytes = Msg::new()
        .int(1, 10)
        .msg(7, base_graph())
        .msg(8, Msg::new().str(1, "ai.onnx.ml").int(2, 3))
        .msg(8, Msg::new().str(1, "ai.onnx").int(2, 21))
        .msg(14, Msg::new().str(1, "pushforward").str(2, "{\"x\": 0}"))
        .msg(14, Msg::new().str(1, "other"))
        .0;
    let m = parse_model(&bytes).unwrap();
    assert_eq!(m.opset(), Some(21));
    assert_eq!(m.metadata, [("pushforward".to_string(), "{\"x\": 0}".to_string()), ("other".into(), String::new())]);
}

#[test]
fn wire_damage_is_a_format_error_with_the_byte() {
    let good = model(base_graph());
    // Truncated varint: a tag, then a value whose continuation bit runs off the end.
    let mut b = good.clone();
    b.extend_from_slice(&[0x28, 0x80, 0x80]);
    assert_err(&b, &["truncated varint", &format!("byte {}", good.len())]);
    let mut b = good.clone();
    b.push(0x80);
    assert_err(&b, &["truncated varint in a field tag"]);
    // Varints longer than 64 bits.
    let mut b = good.clone();
    b.extend_from_slice(&[0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
    assert_err(&b, &["longer than 64 bits"]);
    // Length past the end, at the top level and inside the graph.
    let mut b = good.clone();
    b.extend_from_slice(&[0x32, 0x10, b'a']);
    assert_err(&b, &["length 16 runs past the end", "1 bytes left"]);
    let bad_graph = base_graph().raw(&[0x52, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_err(&model(bad_graph), &["GraphProto: field 10", "runs past the end"]);
    // Fixed-width values cut short.
    assert_err(&model(base_graph().raw(&[0x0d, 1, 2])), &["GraphProto: field 1", "its 4-byte value runs past the end"]);
    // Group wire types, invalid wire types, field number 0.
    assert_err(&model(base_graph().raw(&[0x0b])), &["group wire type 3"]);
    assert_err(&model(base_graph().raw(&[0x0c])), &["group wire type 4"]);
    assert_err(&model(base_graph().raw(&[0x0e])), &["invalid wire type 6"]);
    assert_err(&model(base_graph().raw(&[0x02, 0x00])), &["invalid field number 0"]);
    // A known field with the wrong wire type; a singular field twice.
    assert_err(
        &Msg::new().str(1, "8").msg(7, base_graph()).0,
        &["field ir_version is length-delimited, expected varint"],
    );
    let twice = Msg::new().int(1, 8).msg(7, base_graph()).msg(7, base_graph()).msg(8, Msg::new().int(2, 17)).0;
    assert_err(&twice, &["field graph appears 2 times"]);
    // Not UTF-8.
    let g = Msg::new().msg(1, Msg::new().bytes(3, b"\xff\xfe").str(4, "Relu"));
    assert_err(&model(g), &["NodeProto", "field name is not UTF-8"]);
    // Empty input.
    assert_err(&[], &["has no ir_version"]);
}

#[test]
fn counts_over_the_limits_are_refused_before_allocating() {
    // MAX_NODES + 1 nodes of the smallest kind.
    let one = Msg::new().str(4, "A").0;
    let mut g = Msg::new();
    for _ in 0..=MAX_NODES {
        g = g.bytes(1, &one);
    }
    assert_err(&model(g), &["GraphProto: 100001 nodes, over the limit of 100000"]);
    let mut g = Msg::new();
    let t = tensor_f32("t", &[], &[1.0]).0;
    for _ in 0..=MAX_INITIALIZERS {
        g = g.bytes(5, &t);
    }
    assert_err(&model(g), &["100001 initializers, over the limit of 100000"]);
    // MAX_DIMS + 1 dimensions (of size 1) on a tensor and on a graph input.
    let dims = vec![1i64; MAX_DIMS + 1];
    assert_err(
        &with_initializer(tensor_f32("w", &dims, &[1.0])),
        &["initializer `w`", "9 dimensions, over the limit of 8"],
    );
    let vi = value_info("x", 1, &[Some(1); MAX_DIMS + 1]);
    assert_err(&model(base_graph().msg(11, vi)), &["input `x`", "TensorShapeProto", "9 dimensions"]);
    // Attributes.
    let attrs: Vec<Msg> = (0..=MAX_ATTRIBUTES).map(|i| attr_int(&format!("a{i}"), 1)).collect();
    assert_err(
        &model(Msg::new().msg(1, node("n", "Relu", &["x"], &["y"], attrs))),
        &["NodeProto `n` (Relu, #0)", "65 attributes"],
    );
    // The opset list, the metadata.
    let mut m = Msg::new().int(1, 8);
    for i in 0..=proto::MAX_OPSET_IMPORTS {
        m = m.msg(8, Msg::new().str(1, &format!("d{i}")).int(2, 1));
    }
    assert_err(&m.0, &["65 opset_import entries"]);
    // A packed count that claims millions of elements but has no bytes behind it is only as
    // long as its bytes: the element count of `dims` comes from the bytes present.
    let t = Msg::new().raw(&[0x0a, 0x05, 0xff, 0xff, 0xff, 0xff, 0x0f]).int(2, 1).str(8, "w");
    assert_err(
        &with_initializer(t),
        &["initializer `w`", "has 0 values in float_data, but dims [4294967295] have 4294967295 elements"],
    );
    // A huge length prefix is refused by the bytes left, not allocated.
    let t =
        Msg::new().int(1, 2).int(2, 1).str(8, "w").raw(&[0x4a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert_err(&with_initializer(t), &["initializer #0", "runs past the end"]);
}

#[test]
fn tensor_dims_must_be_sane() {
    let t = Msg::new().int(1, 2).int(1, -3).int(2, 1).str(8, "w");
    assert_err(&with_initializer(t), &["initializer `w`", "dims[1] is -3, negative"]);
    let t = Msg::new().int(1, 1 << 40).int(1, 1 << 40).int(2, 1).str(8, "w");
    assert_err(&with_initializer(t), &["initializer `w`", "the product of dims overflows"]);
    // A product that fits but whose byte size does not.
    let t = Msg::new().int(1, 1 << 62).int(2, 1).str(8, "w").bytes(9, &[0; 4]);
    assert_err(&with_initializer(t), &["has 4 bytes of raw_data", "more than fit in memory"]);
    // Data length against the element count, raw and typed.
    assert_err(
        &with_initializer(tensor_f32("w", &[3], &[1.0, 2.0])),
        &["initializer `w`", "has 8 bytes of raw_data, but dims [3] of FLOAT (1) need 12"],
    );
    let t = Msg::new().int(1, 3).int(2, 1).str(8, "w").packed_f32(4, &[1.0, 2.0]);
    assert_err(&with_initializer(t), &["initializer `w`", "has 2 values in float_data, but dims [3] have 3 elements"]);
    let t = Msg::new().int(1, 2).int(2, 7).str(8, "w").packed_varints(7, &[1, 2, 3]);
    assert_err(&with_initializer(t), &["has 3 values in int64_data, but dims [2] have 2 elements"]);
    // Empty tensors are fine (exporters emit empty `roi`/`scales` for Resize).
    let t = only_initializer(&with_initializer(Msg::new().int(1, 0).int(2, 1).str(8, "roi")));
    assert_eq!((t.dims, t.data), (vec![0], TensorData::F32(vec![])));
    // A scalar has one element.
    let t = only_initializer(&with_initializer(tensor_f32("s", &[], &[3.5])));
    assert_eq!((t.dims, t.data), (vec![], TensorData::F32(vec![3.5])));
}

#[test]
fn external_data_is_refused_with_the_fix() {
    let fix =
        "uses external data: re-export with the weights inside the file (torch.onnx.export(..., external_data=False))";
    let ext = Msg::new().str(1, "location").str(2, "weights.bin");
    let t = Msg::new().int(1, 2).int(2, 1).str(8, "layer.weight").msg(13, ext).int(14, 1);
    assert_err(&with_initializer(t), &["initializer `layer.weight`", fix]);
    let t = Msg::new().int(1, 2).int(2, 1).str(8, "w").int(14, 1);
    assert_err(&with_initializer(t), &["initializer `w`", fix]);
    let t = Msg::new().int(1, 2).int(2, 1).str(8, "w").msg(13, Msg::new().str(1, "location").str(2, "w.bin"));
    assert_err(&with_initializer(t), &["initializer `w`", fix]);
    let t = tensor_f32("w", &[1], &[1.0]).int(14, 2);
    assert_err(&with_initializer(t), &["data_location 2"]);
    // DEFAULT (0) stated explicitly is fine.
    assert_eq!(only_initializer(&with_initializer(tensor_f32("w", &[1], &[1.0]).int(14, 0))).name, "w");
}

/// IEEE binary16 → f32 by arithmetic in f64, independent of the reader's bit manipulation.
fn f16_reference(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    let v = match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + mant / 1024.0) * 2f64.powi(e - 15),
    };
    (sign * v) as f32
}

#[test]
fn float16_widens_exactly() {
    // Every finite half (infinities and NaNs are non-finite weights), raw and in int32_data.
    let finite: Vec<u16> = (0..=u16::MAX).filter(|h| (h >> 10) & 0x1f != 0x1f).collect();
    let expected: Vec<u32> = finite.iter().map(|&h| f16_reference(h).to_bits()).collect();
    let raw: Vec<u8> = finite.iter().flat_map(|h| h.to_le_bytes()).collect();
    let n = finite.len() as i64;
    for t in [
        tensor_raw("h", 10, &[n], &raw),
        Msg::new()
            .int(1, n)
            .int(2, 10)
            .str(8, "h")
            .packed_varints(5, &finite.iter().map(|&h| i64::from(h)).collect::<Vec<_>>()),
    ] {
        let t = only_initializer(&with_initializer(t));
        assert_eq!(t.data_type, DataType::Float16);
        let TensorData::F32(v) = t.data else { panic!() };
        assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), expected);
    }
    // Signed zero, the smallest subnormal, the largest finite.
    let t = only_initializer(&with_initializer(tensor_raw("h", 10, &[3], &[0x00, 0x80, 0x01, 0x00, 0xff, 0x7b])));
    assert_eq!(t.data, TensorData::F32(vec![-0.0, 2f32.powi(-24), 65504.0]));
    // A half infinity or NaN in an initializer is a non-finite weight.
    let e = parse_model(&with_initializer(tensor_raw("h", 10, &[2], &[0x00, 0x3c, 0x00, 0x7c]))).unwrap_err();
    assert_eq!(e, Error::NonFiniteWeight { name: "h".into(), index: 1 });
    // int32_data must hold 16-bit patterns.
    let t = Msg::new().int(1, 1).int(2, 10).str(8, "h").packed_varints(5, &[70000]);
    assert_err(&with_initializer(t), &["FLOAT16 value 70000 is not 16 bits"]);
}

#[test]
fn double_narrows_to_f32() {
    let vals = [0.1f64, -2.5, 1e-40, f64::from(f32::MAX), 123_456_789.123_456, 1.0 + f64::EPSILON];
    let expected: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
    let raw: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let packed = Msg::new().int(1, 6).int(2, 11).str(8, "d").bytes(10, &raw);
    let unpacked = vals.iter().fold(Msg::new().int(1, 6).int(2, 11).str(8, "d"), |m, v| m.fixed64(10, v.to_bits()));
    for t in [tensor_raw("d", 11, &[6], &raw), packed, unpacked] {
        let t = only_initializer(&with_initializer(t));
        assert_eq!((t.data_type, t.data), (DataType::Double, TensorData::F32(expected.clone())));
    }
    // Beyond f32's range it becomes infinite: a non-finite weight.
    let e = parse_model(&with_initializer(tensor_raw(
        "d",
        11,
        &[2],
        &[1f64.to_le_bytes(), 1e300f64.to_le_bytes()].concat(),
    )));
    assert_eq!(e.unwrap_err(), Error::NonFiniteWeight { name: "d".into(), index: 1 });
}

#[test]
fn integer_and_bool_tensors() {
    let vals = [0i64, -1, i64::MAX, i64::MIN, 42];
    let raw: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    for t in [tensor_raw("i", 7, &[5], &raw), Msg::new().int(1, 5).int(2, 7).str(8, "i").packed_varints(7, &vals)] {
        assert_eq!(only_initializer(&with_initializer(t)).data, TensorData::I64(vals.to_vec()));
    }
    let i32s = [0i64, -1, i64::from(i32::MAX), i64::from(i32::MIN)];
    let raw: Vec<u8> = i32s.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect();
    for t in [tensor_raw("i", 6, &[4], &raw), Msg::new().int(1, 4).int(2, 6).str(8, "i").packed_varints(5, &i32s)] {
        let t = only_initializer(&with_initializer(t));
        assert_eq!((t.data_type, t.data), (DataType::Int32, TensorData::I64(i32s.to_vec())));
    }
    let t = Msg::new().int(1, 1).int(2, 6).str(8, "i").packed_varints(5, &[1 << 40]);
    assert_err(&with_initializer(t), &["initializer `i`", "out of the int32 range"]);
    for t in
        [tensor_raw("b", 9, &[3], &[1, 0, 1]), Msg::new().int(1, 3).int(2, 9).str(8, "b").packed_varints(5, &[1, 0, 1])]
    {
        let t = only_initializer(&with_initializer(t));
        assert_eq!((t.data_type, t.data), (DataType::Bool, TensorData::I64(vec![1, 0, 1])));
    }
    assert_err(
        &with_initializer(tensor_raw("b", 9, &[2], &[1, 2])),
        &["initializer `b`", "BOOL element 1 is 2, not 0 or 1"],
    );
}

#[test]
fn other_data_types_and_mismatched_fields_name_the_tensor() {
    for (code, name) in [(16, "BFLOAT16 (16)"), (2, "UINT8 (2)"), (8, "STRING (8)"), (17, "17"), (-1, "-1")] {
        let t = Msg::new().int(1, 1).int(2, code).str(8, "w").bytes(9, &[0; 2]);
        assert_err(&with_initializer(t), &["initializer `w`", &format!("has data type {name}; supported: FLOAT")]);
    }
    assert_err(
        &with_initializer(Msg::new().int(1, 1).str(8, "w").bytes(9, &[0; 4])),
        &["initializer `w`", "has no data_type"],
    );
    let both = tensor_f32("w", &[1], &[1.0]).packed_f32(4, &[1.0]);
    assert_err(&with_initializer(both), &["sets both raw_data and float_data"]);
    let wrong = Msg::new().int(1, 1).int(2, 1).str(8, "w").packed_varints(7, &[1]);
    assert_err(&with_initializer(wrong), &["sets int64_data, which does not hold data type FLOAT (1)"]);
    assert_err(&with_initializer(tensor_f32("w", &[1], &[1.0]).msg(3, Msg::new().int(1, 0))), &["segment"]);
    assert_err(&with_initializer(tensor_f32("", &[1], &[1.0])), &["initializer #0", "has no name"]);
    // int32 range for data_type itself.
    assert_err(&with_initializer(tensor_f32("w", &[1], &[1.0]).int(2, 1 << 33)), &["field data_type appears 2 times"]);
    let t = Msg::new().int(1, 1).int(2, 1 << 33).str(8, "w");
    assert_err(&with_initializer(t), &["field data_type: 8589934592 is out of the int32 range"]);
}

#[test]
fn packed_and_unpacked_repeated_scalars_read_the_same() {
    let floats = [1.5f32, -2.0, 0.25];
    let packed = Msg::new().packed_varints(1, &[3]).int(2, 1).str(8, "w").packed_f32(4, &floats);
    let unpacked = floats.iter().fold(Msg::new().int(1, 3).int(2, 1).str(8, "w"), |m, f| m.fixed32(4, f.to_bits()));
    let mixed = Msg::new()
        .int(1, 3)
        .int(2, 1)
        .str(8, "w")
        .packed_f32(4, &floats[..1])
        .fixed32(4, floats[1].to_bits())
        .packed_f32(4, &floats[2..]);
    let dims_split = Msg::new().packed_varints(1, &[1]).int(1, 3).int(2, 1).str(8, "w").packed_f32(4, &floats);
    let want = TensorProto {
        name: "w".into(),
        dims: vec![3],
        data_type: DataType::Float,
        data: TensorData::F32(floats.to_vec()),
    };
    for t in [packed, unpacked, mixed] {
        assert_eq!(only_initializer(&with_initializer(t)), want);
    }
    assert_eq!(only_initializer(&with_initializer(dims_split)).dims, [1, 3]);
    let ints = [0i64, -1, 300, 1 << 40];
    let unpacked = ints.iter().fold(Msg::new().int(1, 4).int(2, 7).str(8, "i"), |m, &v| m.int(7, v));
    assert_eq!(only_initializer(&with_initializer(unpacked)).data, TensorData::I64(ints.to_vec()));
    // Attribute lists.
    let packed_ints = Msg::new().str(1, "pads").packed_varints(8, &ints).int(20, 7);
    let unpacked_ints = ints.iter().fold(Msg::new().str(1, "pads").int(20, 7), |m, &v| m.int(8, v));
    let packed_floats = Msg::new().str(1, "scales").packed_f32(7, &floats).int(20, 6);
    let unpacked_floats = floats.iter().fold(Msg::new().str(1, "scales").int(20, 6), |m, f| m.fixed32(7, f.to_bits()));
    for (p, u) in [(packed_ints, unpacked_ints), (packed_floats, unpacked_floats)] {
        let a = parse_model(&model(Msg::new().msg(1, node("n", "X", &[], &["y"], vec![p])))).unwrap();
        let b = parse_model(&model(Msg::new().msg(1, node("n", "X", &[], &["y"], vec![u])))).unwrap();
        assert_eq!(a, b);
    }
    // A packed buffer cut mid-value.
    let t = Msg::new().int(1, 1).int(2, 1).str(8, "w").bytes(4, &[0, 0, 0]);
    assert_err(&with_initializer(t), &["initializer #0", "packed values of 3 bytes are truncated"]);
    let t = Msg::new().bytes(1, &[0x80]).int(2, 1).str(8, "w");
    assert_err(&with_initializer(t), &["packed values of 1 bytes are truncated"]);
    // Packable fields with a wire type that is neither packed nor their scalar's.
    let t = Msg::new().int(1, 1).int(2, 1).str(8, "w").int(4, 7);
    assert_err(&with_initializer(t), &["field float_data is varint, expected 32-bit"]);
}

#[test]
fn unknown_and_unused_fields_are_skipped() {
    let junk = |m: Msg| m.int(99, 5).fixed64(1000, 7).fixed32(536_870_911, 1).bytes(77, b"\x0b\x0c\xff").str(31, "x");
    let g = Msg::new()
        .msg(1, junk(node("add", "Add", &["x", "b"], &["y"], vec![])).str(6, "doc").str(8, "overload"))
        .str(2, "g")
        .msg(5, junk(tensor_f32("b", &[2], &[1.0, 2.0])).str(12, "doc").msg(16, Msg::new().str(1, "k")))
        .msg(11, junk(value_info("x", 1, &[None, Some(2)])).str(3, "doc"))
        .msg(12, value_info("y", 1, &[None, Some(2)]))
        .msg(13, Msg::new().str(1, "intermediate").raw(&[0x0b]))
        .str(10, "doc")
        .msg(14, Msg::new())
        .msg(16, Msg::new());
    let bytes = junk(
        Msg::new()
            .int(1, 8)
            .str(2, "test")
            .str(3, "2.15")
            .str(4, "dom")
            .int(5, 3)
            .str(6, "doc")
            .msg(7, junk(g))
            .msg(8, junk(Msg::new().str(1, "").int(2, 17)))
            .msg(20, Msg::new().raw(&[0xff]))
            .msg(25, Msg::new().str(1, "f")),
    )
    .0;
    assert_eq!(parse_model(&bytes).unwrap(), parse_model(&model(base_graph())).unwrap());
}

#[test]
fn subgraphs_are_refused_naming_the_node() {
    let then = Msg::new().str(1, "then_branch").msg(6, base_graph()).int(20, 5);
    let g = Msg::new().msg(1, node("/If", "If", &["c"], &["y"], vec![then]));
    assert_err(&model(g), &["NodeProto `/If` (If, #0)", "AttributeProto `then_branch`", "subgraph", "If, Loop, Scan"]);
    let body = Msg::new().str(1, "body").msg(11, base_graph()).int(20, 10);
    assert_err(
        &model(Msg::new().msg(1, node("", "Loop", &[], &["y"], vec![body]))),
        &["NodeProto #0 (Loop)", "AttributeProto `body`", "subgraph"],
    );
    // Type GRAPH declared without the graph.
    let bare = Msg::new().str(1, "g").int(20, 5);
    assert_err(
        &model(Msg::new().msg(1, node("s", "Scan", &[], &["y"], vec![bare]))),
        &["NodeProto `s` (Scan, #0)", "subgraph"],
    );
    // Other attribute kinds the executor has no use for.
    for (num, what) in [(10, "tensors"), (14, "tp"), (15, "type_protos"), (22, "sparse_tensor"), (23, "sparse_tensors")]
    {
        let a = Msg::new().str(1, "a").msg(num, Msg::new());
        assert_err(
            &model(Msg::new().msg(1, node("n", "X", &[], &["y"], vec![a]))),
            &["NodeProto `n`", "AttributeProto `a`", what],
        );
    }
    let a = Msg::new().str(1, "a").str(21, "outer").int(20, 2);
    assert_err(&model(Msg::new().msg(1, node("n", "X", &[], &["y"], vec![a]))), &["ref_attr_name"]);
}

#[test]
fn attribute_types_and_values_agree() {
    let run = |a: Msg| parse_model(&model(Msg::new().msg(1, node("n", "X", &[], &["y"], vec![a]))));
    let value = |a: Msg| run(a).unwrap().graph.nodes[0].attributes[0].value.clone();
    assert_eq!(value(Msg::new().str(1, "a").fixed32(2, 0.5f32.to_bits()).int(20, 1)), AttributeValue::Float(0.5));
    assert_eq!(value(Msg::new().str(1, "a").int(3, -7).int(20, 2)), AttributeValue::Int(-7));
    assert_eq!(value(Msg::new().str(1, "a").str(4, "nearest").int(20, 3)), AttributeValue::String(b"nearest".to_vec()));
    assert_eq!(
        value(Msg::new().str(1, "a").str(9, "x").bytes(9, b"\xff").int(20, 8)),
        AttributeValue::Strings(vec![b"x".to_vec(), vec![0xff]])
    );
    let t = value(Msg::new().str(1, "value").msg(5, tensor_raw("", 7, &[1], &5i64.to_le_bytes())).int(20, 4));
    assert_eq!(
        t,
        AttributeValue::Tensor(TensorProto {
            name: String::new(),
            dims: vec![1],
            data_type: DataType::Int64,
            data: TensorData::I64(vec![5])
        })
    );
    // Proto2 defaults: a declared scalar without its field is its default; lists may be empty.
    assert_eq!(value(Msg::new().str(1, "a").int(20, 2)), AttributeValue::Int(0));
    assert_eq!(value(Msg::new().str(1, "a").int(20, 7)), AttributeValue::Ints(vec![]));
    // No type: inferred from the one value present.
    assert_eq!(value(Msg::new().str(1, "a").int(3, 4)), AttributeValue::Int(4));
    // A constant's value may be -inf (attention masks): tensor attributes are not checked.
    let t = value(Msg::new().str(1, "value").msg(5, tensor_f32("", &[1], &[f32::NEG_INFINITY])).int(20, 4));
    assert_eq!(
        t,
        AttributeValue::Tensor(TensorProto {
            name: String::new(),
            dims: vec![1],
            data_type: DataType::Float,
            data: TensorData::F32(vec![f32::NEG_INFINITY])
        })
    );
    let e = |a: Msg| match run(a) {
        Err(Error::WeightsFormat(m)) => m,
        r => panic!("{r:?}"),
    };
    assert!(
        e(Msg::new().str(1, "a").int(3, 1).int(20, 1))
            .contains("declares type FLOAT (1) but sets the value of type INT (2)")
    );
    assert!(e(Msg::new().str(1, "a").int(3, 1).fixed32(2, 0)).contains("sets more than one value field"));
    assert!(e(Msg::new().str(1, "a")).contains("has no type and no value"));
    assert!(e(Msg::new().str(1, "a").int(20, 4)).contains("has type TENSOR but no tensor"));
    assert!(e(Msg::new().str(1, "a").int(20, 99)).contains("type 99 is not supported"));
    assert!(e(Msg::new().int(3, 1).int(20, 2)).contains("AttributeProto #0: has no name"));
    assert!(e(Msg::new().str(1, "a").int(3, 1).int(3, 2).int(20, 2)).contains("field i appears 2 times"));
    assert!(e(Msg::new().str(1, "a").int(2, 1).int(20, 1)).contains("field f is varint, expected 32-bit"));
    let t = Msg::new().str(1, "value").msg(5, tensor_raw("c", 1, &[2], &[0; 4])).int(20, 4);
    assert!(e(t).contains("NodeProto `n` (X, #0): AttributeProto `value`: TensorProto `c`: has 4 bytes of raw_data"));
    // Attribute names must be distinct.
    let g = Msg::new().msg(1, node("n", "X", &[], &["y"], vec![attr_int("axis", 0), attr_int("axis", 1)]));
    assert_err(&model(g), &["NodeProto `n` (X, #0): has attribute `axis` twice"]);
}

#[test]
fn nodes_outside_the_default_domain_are_refused() {
    let g = Msg::new().msg(1, node("/attn", "FusedMatMul", &["a"], &["b"], vec![]).str(7, "com.microsoft"));
    assert_err(
        &model(g),
        &["NodeProto `/attn` (FusedMatMul, #0)", "domain `com.microsoft`", "only the default ONNX domain"],
    );
    let ok = Msg::new().msg(1, node("r", "Relu", &["a"], &["b"], vec![]).str(7, "ai.onnx"));
    assert_eq!(parse_model(&model(ok)).unwrap().graph.nodes[0].domain, "ai.onnx");
    // Also: a node without an op_type, and which node it was.
    let g = Msg::new().msg(1, node("a", "Relu", &["x"], &["y"], vec![])).msg(1, Msg::new().str(3, "nameless op"));
    assert_err(&model(g), &["NodeProto `nameless op` (#1): has no op_type"]);
}

#[test]
fn opsets_and_ir_versions_outside_the_range_are_refused() {
    for v in [12, 22, 1, 0, -17] {
        assert_err(
            &model_with(base_graph(), 8, v),
            &[&format!("default-domain opset {v} is not supported (opsets 13..=21")],
        );
    }
    for v in [13, 17, 21] {
        assert_eq!(parse_model(&model_with(base_graph(), 8, v)).unwrap().opset(), Some(v));
    }
    for v in [2, 11, -1] {
        assert_err(
            &model_with(base_graph(), v, 17),
            &[&format!("ir_version {v} is not supported (IR versions 3..=10")],
        );
    }
    assert_err(&Msg::new().int(1, 8).msg(7, base_graph()).0, &["no entry for the default domain"]);
    let two = Msg::new()
        .int(1, 8)
        .msg(8, Msg::new().int(2, 17))
        .msg(8, Msg::new().str(1, "ai.onnx").int(2, 18))
        .msg(7, base_graph());
    assert_err(&two.0, &["opset_import lists domain `ai.onnx` twice"]);
    assert_err(&Msg::new().int(1, 8).msg(8, Msg::new().int(2, 17)).0, &["has no graph"]);
}

#[test]
fn nan_and_inf_initializers_are_non_finite_weights() {
    for (v, index) in [(f32::NAN, 2), (f32::INFINITY, 0), (f32::NEG_INFINITY, 3)] {
        let mut data = vec![1.0f32; 4];
        data[index] = v;
        let e = parse_model(&with_initializer(tensor_f32("layers.0.weight", &[2, 2], &data))).unwrap_err();
        assert_eq!(e, Error::NonFiniteWeight { name: "layers.0.weight".into(), index });
    }
    let t = Msg::new().int(1, 2).int(2, 1).str(8, "w").packed_f32(4, &[0.0, f32::NAN]);
    assert_eq!(parse_model(&with_initializer(t)).unwrap_err(), Error::NonFiniteWeight { name: "w".into(), index: 1 });
}

#[test]
fn graph_values_are_checked() {
    let seq = Msg::new().str(1, "s").msg(2, Msg::new().msg(4, Msg::new()));
    assert_err(
        &model(base_graph().msg(11, seq)),
        &["input `s` (ValueInfoProto): TypeProto: is a sequence type; only tensors are supported"],
    );
    let u8in = value_info("img", 2, &[Some(1)]);
    assert_err(&model(base_graph().msg(12, u8in)), &["output `img`", "elem_type UINT8 (2) is not supported"]);
    let neg = value_info("x", 1, &[Some(-1)]);
    assert_err(&model(base_graph().msg(11, neg)), &["input `x`", "dim #0: dim_value -1 is negative"]);
    let both = Msg::new()
        .str(1, "x")
        .msg(2, Msg::new().msg(1, Msg::new().msg(2, Msg::new().msg(1, Msg::new().int(1, 1).str(2, "n")))));
    assert_err(&model(base_graph().msg(11, both)), &["sets both dim_value and dim_param"]);
    assert_err(&model(base_graph().msg(11, Msg::new())), &["GraphProto: input #1 (ValueInfoProto): has no name"]);
    assert_err(&model(base_graph().msg(15, Msg::new())), &["sparse_initializer is not supported"]);
}

#[test]
fn names_from_the_file_are_escaped_and_bounded_in_errors() {
    let hostile = "\x1b[31mred\nline";
    let g = Msg::new().msg(1, node(hostile, "If", &[], &["y"], vec![Msg::new().str(1, "b").msg(6, Msg::new())]));
    let m = err(&model(g));
    assert!(!m.contains('\x1b') && !m.contains('\n'), "{m:?}");
    assert!(m.contains("\\u{1b}[31mred line"), "{m}");
    let long = "n".repeat(10_000);
    let m =
        err(&model(Msg::new().msg(1, node(&long, "If", &[], &["y"], vec![Msg::new().str(1, "b").msg(6, Msg::new())]))));
    assert!(m.contains("(9920 more characters)") && m.len() < 1000, "{}", m.len());
    // A name over MAX_NAME_BYTES is refused.
    let g = Msg::new().msg(1, node(&"x".repeat(proto::MAX_NAME_BYTES + 1), "Relu", &[], &["y"], vec![]));
    assert_err(&model(g), &["field name is 4097 bytes long, over the 4096-byte limit"]);
    // The error's Display bounds the whole message too.
    let e = parse_model(&model(
        Msg::new().msg(1, node(&long, "If", &[], &["y"], vec![Msg::new().str(1, "b").msg(6, Msg::new())])),
    ))
    .unwrap_err();
    assert!(e.to_string().starts_with("invalid weights file: ONNX ModelProto: GraphProto: NodeProto `nnn"));
}

#[test]
fn memory_beyond_the_budget_is_refused_before_it_is_allocated() {
    // A BOOL tensor widens 8×: one that is most of the file is over 4 × the file.
    let n = 1 << 20;
    let e = err(&with_initializer(tensor_raw("mask", 9, &[n], &vec![1; n as usize])));
    assert!(e.contains("initializer `mask` (TensorProto): data would need 8388608 more bytes of memory"), "{e}");
    // The same BOOL tensor beside FLOAT weights of four times its size fits.
    let g = Msg::new()
        .msg(5, tensor_raw("mask", 9, &[n], &vec![1; n as usize]))
        .msg(5, tensor_f32("w", &[n], &vec![0.5; n as usize]));
    assert_eq!(parse_model(&model(g)).unwrap().graph.initializers.len(), 2);
    // Many tiny nodes cost far more in memory than in the file.
    let one = Msg::new().str(4, "A").0;
    let mut g = Msg::new();
    for _ in 0..MAX_NODES {
        g = g.bytes(1, &one);
    }
    assert_err(
        &model(g),
        &["GraphProto: node would need", "more bytes of memory; the reader allows 4 × the file + 48 KiB"],
    );
    assert_eq!(proto::alloc_budget(1000), 4000 + 48 * 1024);
}
