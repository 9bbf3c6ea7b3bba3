//! A deterministic mutation fuzzer over the ONNX reader (`onnx::proto::parse_model`), in the
//! style of `tests/fuzz_loader.rs`. Seeds: the two real exports in `www/bench/models/` (torch,
//! opset 17) whole and with every initializer shrunk to two values (all of their structure,
//! cheap to parse, so most mutations reach the deep checks); the ten parity fixtures in
//! `tests/fixtures/onnx/` (the MLPs, the op zoo and the bilinear upsampler whole; moons, the
//! U-Nets and the small DiT shrunk); and a generated file with every data type, typed
//! and raw data, packed and unpacked fields, every attribute kind, symbolic dims and metadata.
//!
//! Each seed is read once into a field tree (a length-delimited payload counts as a message
//! when it parses as one and re-encodes to the same bytes). A case applies 1–3 tree edits —
//! delete, duplicate, swap, renumber or retype a field; move a subtree in from another seed;
//! set a varint to a boundary value (data types, opsets, IR versions, dims, huge, negative);
//! cut or grow a payload; NaN/Inf into weights; pack/unpack a repeated scalar; odd strings
//! (empty, non-UTF-8, control characters, foreign domains, 5000 bytes) — re-encodes with
//! consistent lengths, then, one time in three, byte edits that break the framing: bit flips,
//! interesting bytes, truncation, splices from other seeds, length prefixes bumped (±1, ±k,
//! 0, huge) and garbage runs.
//!
//! Every case must (1) not panic, (2) allocate in total (every block, freed or not) no more than
//! `4 × input + 64 KiB` during the parse (a counting global allocator measures it; the reader
//! charges what it keeps to a budget of `4 × input + 48 KiB`), and, if it parses, exactly the
//! heap the returned model holds (no temporaries, no spare capacity), (3) fail, if it fails, with
//! `Error::WeightsFormat("ONNX ModelProto: …")` or `Error::NonFiniteWeight { name, .. }`, and
//! (4) if it parses, satisfy the reader's documented guarantees (ranges, limits, element counts,
//! finite named initializers, default domain) and re-encode → parse → re-encode to the same bytes.
//!
//! `PUSHFORWARD_FUZZ_CASES` sets the number of mutated cases (default 20 000, as the loader
//! fuzzer; under CI less is refused, and a value that is not a number always is);
//! `PUSHFORWARD_FUZZ_SEED` starts at another case number. See tests/fixtures/README.md for the
//! long run. A failing input is written to `target/fuzz-onnx-failures/` for reproduction.

use pushforward::Error;
use pushforward::onnx::proto::{
    self, AttributeValue, DataType, Dim, MAX_DIMS, MAX_NAME_BYTES, ModelProto, TensorData, TensorProto, parse_model,
};
use std::path::PathBuf;

mod fuzz_common;
use fuzz_common::{Counting, Failure, Measured, Rng, alloc_bound, byte_edit, case_range, measured};
use std::rc::Rc;

// ---------------------------------------------------------------------------------------------
// Allocation counting.

#[global_allocator]
static ALLOC: Counting = Counting;

/// `parse_model` and what it allocated (panics caught).
fn parse_measured(bytes: &[u8]) -> Result<Measured<Result<ModelProto, Error>>, String> {
    measured(|| parse_model(bytes))
}

// ---------------------------------------------------------------------------------------------
// Encoding: a field tree, and a writer for what the reader returns.

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], p: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let x = *b.get(*p)?;
        *p += 1;
        v |= u64::from(x & 0x7f) << (7 * i);
        if x < 0x80 {
            return Some(v);
        }
    }
    None
}

/// A field's value. Payloads are shared between a seed and its mutated copies until edited.
#[derive(Clone, Debug)]
enum V {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(Rc<Vec<u8>>),
    Msg(Vec<F>),
}

fn bytes(b: Vec<u8>) -> V {
    V::Bytes(Rc::new(b))
}

#[derive(Clone, Debug)]
struct F {
    num: u64,
    v: V,
}

fn f(num: u64, v: V) -> F {
    F { num, v }
}

/// A message's fields as a tree; `None` if `b` is not a well-formed message.
fn tree(b: &[u8], depth: usize) -> Option<Vec<F>> {
    let (mut out, mut p) = (Vec::new(), 0);
    while p < b.len() {
        let tag = get_varint(b, &mut p)?;
        let num = tag >> 3;
        if num == 0 {
            return None;
        }
        let v = match tag & 7 {
            0 => V::Varint(get_varint(b, &mut p)?),
            1 => {
                let s = b.get(p..p + 8)?;
                p += 8;
                V::Fixed64(u64::from_le_bytes(s.try_into().ok()?))
            }
            5 => {
                let s = b.get(p..p + 4)?;
                p += 4;
                V::Fixed32(u32::from_le_bytes(s.try_into().ok()?))
            }
            2 => {
                let n = usize::try_from(get_varint(b, &mut p)?).ok()?;
                let s = b.get(p..p.checked_add(n)?)?;
                p += n;
                match (depth < 10 && !s.is_empty()).then(|| tree(s, depth + 1)).flatten() {
                    Some(fs) if encode(&fs) == s => V::Msg(fs),
                    _ => bytes(s.to_vec()),
                }
            }
            _ => return None,
        };
        out.push(F { num, v });
    }
    Some(out)
}

fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Encoded length of a message.
fn len(fs: &[F]) -> usize {
    fs.iter()
        .map(|x| {
            varint_len(x.num << 3)
                + match &x.v {
                    V::Varint(v) => varint_len(*v),
                    V::Fixed64(_) => 8,
                    V::Fixed32(_) => 4,
                    V::Bytes(b) => varint_len(b.len() as u64) + b.len(),
                    V::Msg(m) => {
                        let n = len(m);
                        varint_len(n as u64) + n
                    }
                }
        })
        .sum()
}

/// Serializes a tree; `marks` gets the offsets of every tag and length prefix (the framing).
fn write(fs: &[F], out: &mut Vec<u8>, marks: &mut Vec<usize>) {
    for x in fs {
        marks.push(out.len());
        let wire = match x.v {
            V::Varint(_) => 0,
            V::Fixed64(_) => 1,
            V::Bytes(_) | V::Msg(_) => 2,
            V::Fixed32(_) => 5,
        };
        put_varint(out, (x.num << 3) | wire);
        match &x.v {
            V::Varint(v) => put_varint(out, *v),
            V::Fixed64(v) => out.extend_from_slice(&v.to_le_bytes()),
            V::Fixed32(v) => out.extend_from_slice(&v.to_le_bytes()),
            V::Bytes(b) => {
                marks.push(out.len());
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            V::Msg(m) => {
                marks.push(out.len());
                put_varint(out, len(m) as u64);
                write(m, out, marks);
            }
        }
    }
}

fn encode(fs: &[F]) -> Vec<u8> {
    let mut out = Vec::new();
    write(fs, &mut out, &mut Vec::new());
    out
}

fn s(num: u64, text: &str) -> F {
    f(num, bytes(text.as_bytes().to_vec()))
}

fn msg(num: u64, fs: Vec<F>) -> F {
    f(num, V::Msg(fs))
}

fn int(num: u64, v: i64) -> F {
    f(num, V::Varint(v as u64))
}

fn packed(num: u64, vs: &[i64]) -> F {
    let mut b = Vec::new();
    for &v in vs {
        put_varint(&mut b, v as u64);
    }
    f(num, bytes(b))
}

/// What the reader returned, written back as ONNX (floats as FLOAT raw data, integers as INT64),
/// padded with an unknown field to at least `min_len` bytes (the reader's memory budget grows
/// with the file, and the rewrite can be smaller than the input): reading that must give the
/// same thing back.
fn reencode(m: &ModelProto, min_len: usize) -> Vec<u8> {
    fn tensor(t: &TensorProto) -> Vec<F> {
        let mut fs: Vec<F> = t.dims.iter().map(|&d| int(1, d)).collect();
        let (ty, raw) = match &t.data {
            TensorData::F32(v) => (1, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            TensorData::I64(v) => (7, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        };
        fs.extend([int(2, ty), s(8, &t.name), f(9, bytes(raw))]);
        fs
    }
    fn value(v: &proto::ValueInfo) -> Vec<F> {
        let mut tt = Vec::new();
        if let Some(t) = v.elem_type {
            tt.push(int(1, code(t)));
        }
        if let Some(dims) = &v.shape {
            let dims = dims
                .iter()
                .map(|d| {
                    msg(
                        1,
                        match d {
                            Dim::Value(v) => vec![int(1, *v)],
                            Dim::Param(p) => vec![s(2, p)],
                            Dim::Unknown => vec![],
                        },
                    )
                })
                .collect();
            tt.push(msg(2, dims));
        }
        vec![s(1, &v.name), msg(2, vec![msg(1, tt)])]
    }
    let g = &m.graph;
    let mut graph = vec![s(2, &g.name)];
    for n in &g.nodes {
        let mut fs: Vec<F> = n.inputs.iter().map(|i| s(1, i)).collect();
        fs.extend(n.outputs.iter().map(|o| s(2, o)));
        fs.extend([s(3, &n.name), s(4, &n.op_type), s(7, &n.domain)]);
        for a in &n.attributes {
            let mut af = vec![s(1, &a.name)];
            let ty = match &a.value {
                AttributeValue::Float(x) => {
                    af.push(f(2, V::Fixed32(x.to_bits())));
                    1
                }
                AttributeValue::Int(i) => {
                    af.push(int(3, *i));
                    2
                }
                AttributeValue::String(b) => {
                    af.push(f(4, bytes(b.clone())));
                    3
                }
                AttributeValue::Tensor(t) => {
                    af.push(msg(5, tensor(t)));
                    4
                }
                AttributeValue::Floats(v) => {
                    af.push(f(7, bytes(v.iter().flat_map(|x| x.to_le_bytes()).collect())));
                    6
                }
                AttributeValue::Ints(v) => {
                    af.push(packed(8, v));
                    7
                }
                AttributeValue::Strings(v) => {
                    af.extend(v.iter().map(|b| f(9, bytes(b.clone()))));
                    8
                }
            };
            af.push(int(20, ty));
            fs.push(msg(5, af));
        }
        graph.push(msg(1, fs));
    }
    graph.extend(g.initializers.iter().map(|t| msg(5, tensor(t))));
    graph.extend(g.inputs.iter().map(|v| msg(11, value(v))));
    graph.extend(g.outputs.iter().map(|v| msg(12, value(v))));
    let mut model = vec![int(1, m.ir_version), s(2, &m.producer_name), msg(7, graph)];
    model.extend(m.opset_imports.iter().map(|(d, v)| msg(8, vec![s(1, d), int(2, *v)])));
    model.extend(m.metadata.iter().map(|(k, v)| msg(14, vec![s(1, k), s(2, v)])));
    let mut out = encode(&model);
    if out.len() < min_len {
        out.extend(encode(&[f(1000, bytes(vec![0; min_len - out.len()]))]));
    }
    out
}

fn code(t: DataType) -> i64 {
    match t {
        DataType::Float => 1,
        DataType::Float16 => 10,
        DataType::Double => 11,
        DataType::Int64 => 7,
        DataType::Int32 => 6,
        DataType::Bool => 9,
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds.

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Seed {
    name: String,
    tree: Vec<F>,
}

/// The same model with every initializer two FLOATs long: all of the structure, little data.
fn shrunk(model: &[F]) -> Vec<F> {
    let mut m = model.to_vec();
    for x in &mut m {
        let (7, V::Msg(graph)) = (x.num, &mut x.v) else { continue };
        for t in graph.iter_mut() {
            let (5, V::Msg(fs)) = (t.num, &mut t.v) else { continue };
            fs.retain(|y| y.num != 1 && y.num != 9);
            fs.insert(0, int(1, 2));
            fs.push(f(9, bytes([0.5f32, -0.25].iter().flat_map(|v| v.to_le_bytes()).collect())));
        }
    }
    m
}

/// A small file with every data type, data in raw and typed fields, packed and unpacked
/// repeated scalars, every attribute kind, graph values with symbolic and unknown dims,
/// metadata, two opset imports.
fn kitchen_sink() -> Vec<F> {
    let f32s = |v: &[f32]| bytes(v.iter().flat_map(|x| x.to_le_bytes()).collect());
    let inits = vec![
        vec![int(1, 2), int(1, 2), int(2, 1), s(8, "w_raw"), f(9, f32s(&[0.5, -1.0, 2.0, 0.0]))],
        vec![packed(1, &[3]), int(2, 1), s(8, "w_typed"), f(4, f32s(&[1.0, 2.0, 3.0]))],
        vec![
            int(1, 2),
            int(2, 1),
            s(8, "w_unpacked"),
            f(4, V::Fixed32(1f32.to_bits())),
            f(4, V::Fixed32(2f32.to_bits())),
        ],
        vec![int(1, 3), int(2, 10), s(8, "h_raw"), f(9, bytes(vec![0x00, 0x3c, 0x01, 0x00, 0xff, 0x7b]))],
        vec![int(1, 2), int(2, 10), s(8, "h_typed"), packed(5, &[0x3c00, 0x8001])],
        vec![
            int(1, 2),
            int(2, 11),
            s(8, "d_raw"),
            f(9, bytes([0.1f64, -3.0].iter().flat_map(|x| x.to_le_bytes()).collect())),
        ],
        vec![int(1, 1), int(2, 11), s(8, "d_typed"), f(10, V::Fixed64(2.5f64.to_bits()))],
        vec![
            int(1, 2),
            int(2, 7),
            s(8, "i64_raw"),
            f(9, bytes([-1i64, 7].iter().flat_map(|x| x.to_le_bytes()).collect())),
        ],
        vec![int(1, 3), int(2, 7), s(8, "i64_typed"), packed(7, &[0, -5, 1 << 40])],
        vec![
            int(1, 2),
            int(2, 6),
            s(8, "i32_raw"),
            f(9, bytes([-1i32, 9].iter().flat_map(|x| x.to_le_bytes()).collect())),
        ],
        vec![int(1, 2), int(2, 6), s(8, "i32_typed"), int(5, -3), int(5, 4)],
        vec![int(1, 3), int(2, 9), s(8, "b_raw"), f(9, bytes(vec![1, 0, 1]))],
        vec![int(1, 1), int(2, 9), s(8, "b_typed"), packed(5, &[1])],
        vec![int(1, 0), int(2, 1), s(8, "empty")],
        vec![int(2, 1), s(8, "scalar"), f(9, f32s(&[4.0]))],
    ];
    let attrs = vec![
        vec![s(1, "alpha"), f(2, V::Fixed32(0.5f32.to_bits())), int(20, 1)],
        vec![s(1, "axis"), int(3, -1), int(20, 2)],
        vec![s(1, "mode"), s(4, "nearest"), int(20, 3)],
        vec![s(1, "value"), msg(5, vec![int(1, 1), int(2, 7), f(9, bytes(3i64.to_le_bytes().to_vec()))]), int(20, 4)],
        vec![s(1, "scales"), f(7, f32s(&[1.0, 2.0])), int(20, 6)],
        vec![s(1, "pads"), packed(8, &[1, 1, 1, 1]), int(20, 7)],
        vec![s(1, "perm"), int(8, 1), int(8, 0), int(20, 7)],
        vec![s(1, "names"), s(9, "a"), s(9, ""), int(20, 8)],
        vec![s(1, "untyped"), int(3, 3)],
    ];
    let value = |name: &str, elem: i64, dims: Vec<Vec<F>>| {
        msg(
            11,
            vec![
                s(1, name),
                msg(2, vec![msg(1, vec![int(1, elem), msg(2, dims.into_iter().map(|d| msg(1, d)).collect())])]),
            ],
        )
    };
    let mut graph = vec![
        msg(1, vec![s(1, "x"), s(1, ""), s(1, "w_raw"), s(2, "y"), s(3, "n0"), s(4, "Resize")]),
        msg(
            1,
            [
                vec![s(1, "y"), s(2, "z"), s(3, "n1"), s(4, "Custom"), s(7, "ai.onnx")],
                attrs.into_iter().map(|a| msg(5, a)).collect(),
            ]
            .concat(),
        ),
        msg(1, vec![s(1, "z"), s(2, "out"), s(4, "Relu")]),
        s(2, "sink"),
    ];
    graph.extend(inits.into_iter().map(|t| msg(5, t)));
    graph.push(value("x", 1, vec![vec![s(2, "batch")], vec![int(1, 3)], vec![]]));
    graph.push(value("t", 7, vec![]));
    graph.push(msg(11, vec![s(1, "untyped")]));
    let mut out = value("out", 1, vec![vec![s(2, "batch")], vec![int(1, 3)]]);
    out.num = 12;
    graph.push(out);
    vec![
        int(1, 9),
        s(2, "kitchen"),
        msg(7, graph),
        msg(8, vec![s(1, ""), int(2, 19)]),
        msg(8, vec![s(1, "ai.onnx.ml"), int(2, 3)]),
        msg(14, vec![s(1, "pushforward"), s(2, "{\"x\": \"x\", \"t\": \"t\"}")]),
    ]
}

/// The ONNX files seeded from, and whether each is seeded whole, shrunk (every initializer two
/// values long) or both.
const FILES: [(&str, bool, bool); 12] = [
    ("www/bench/models/moons_heun_step.onnx", true, true),
    ("www/bench/models/mnist_heun_step.onnx", true, true),
    ("tests/fixtures/onnx/mlp_selu_raw_t.onnx", true, false),
    ("tests/fixtures/onnx/mlp_fourier_gelu.onnx", true, false),
    ("tests/fixtures/onnx/moons_onnx.onnx", false, true),
    ("tests/fixtures/onnx/mnist_onnx.onnx", false, true),
    ("tests/fixtures/onnx/unet_attn.onnx", false, true),
    ("tests/fixtures/onnx/dit_small.onnx", false, true),
    ("tests/fixtures/onnx/mlp_opset13.onnx", true, false),
    ("tests/fixtures/onnx/op_zoo.onnx", true, false),
    ("tests/fixtures/onnx/unet_classic.onnx", false, true),
    ("tests/fixtures/onnx/upsample_bilinear.onnx", true, false),
];

fn seeds() -> Vec<Seed> {
    let mut v = Vec::new();
    for (path, whole, small) in FILES {
        let bytes = std::fs::read(root().join(path)).unwrap();
        let name = path.rsplit('/').next().unwrap().trim_end_matches(".onnx");
        let t = tree(&bytes, 0).unwrap_or_else(|| panic!("{name} does not parse as a field tree"));
        assert_eq!(encode(&t), bytes, "{name}: the field tree does not re-encode to the file");
        if small {
            v.push(Seed { name: format!("{name}_small"), tree: shrunk(&t) });
        }
        if whole {
            v.push(Seed { name: name.to_string(), tree: t });
        }
    }
    v.push(Seed { name: "kitchen_sink".into(), tree: kitchen_sink() });
    v
}

/// Case weights per seed: the whole benchmark exports are costly to copy and parse, so they get
/// fewer; the generated file (every data type and attribute kind) more.
const SEED_WEIGHTS: [(&str, usize); 15] = [
    ("moons_heun_step_small", 3),
    ("moons_heun_step", 1),
    ("mnist_heun_step_small", 3),
    ("mnist_heun_step", 1),
    ("mlp_selu_raw_t", 1),
    ("mlp_fourier_gelu", 1),
    ("moons_onnx_small", 1),
    ("mnist_onnx_small", 2),
    ("unet_attn_small", 2),
    ("dit_small_small", 2),
    ("mlp_opset13", 1),
    ("op_zoo", 2),
    ("unet_classic_small", 2),
    ("upsample_bilinear", 1),
    ("kitchen_sink", 5),
];

// ---------------------------------------------------------------------------------------------
// Mutation.

/// Fields in a tree, all levels.
fn count(fs: &[F]) -> usize {
    fs.iter().map(|x| 1 + if let V::Msg(m) = &x.v { count(m) } else { 0 }).sum()
}

/// A random message in the tree: the path of field indices leading to it. Descends (mostly)
/// into a sub-message picked uniformly or (half the time) by its size in fields,
/// so the graph's nodes and tensors get most edits rather than the model's few top fields.
fn random_path(rng: &mut Rng, fs: &[F]) -> Vec<usize> {
    let (mut path, mut cur) = (Vec::new(), fs);
    loop {
        let subs: Vec<usize> = (0..cur.len()).filter(|&i| matches!(cur[i].v, V::Msg(_))).collect();
        // The model's own few fields are checked first and would mask deeper edits: stop there
        // one time in ten, elsewhere one in four.
        if subs.is_empty() || rng.below(if path.is_empty() { 10 } else { 4 }) == 0 {
            return path;
        }
        let i = if rng.below(2) == 0 {
            *rng.pick(&subs)
        } else {
            let sizes: Vec<usize> = subs.iter().map(|&i| count(std::slice::from_ref(&cur[i]))).collect();
            let mut r = rng.below(sizes.iter().sum());
            let k = sizes
                .iter()
                .position(|&n| {
                    if r < n {
                        true
                    } else {
                        r -= n;
                        false
                    }
                })
                .unwrap_or(0);
            subs[k]
        };
        path.push(i);
        let V::Msg(next) = &cur[i].v else { unreachable!() };
        cur = next;
    }
}

/// The path to a random initializer of the graph, if there is one.
fn initializer_path(rng: &mut Rng, fs: &[F]) -> Option<Vec<usize>> {
    let g = fs.iter().position(|x| x.num == 7 && matches!(x.v, V::Msg(_)))?;
    let V::Msg(graph) = &fs[g].v else { return None };
    let inits: Vec<usize> =
        (0..graph.len()).filter(|&i| graph[i].num == 5 && matches!(graph[i].v, V::Msg(_))).collect();
    (!inits.is_empty()).then(|| vec![g, *rng.pick(&inits)])
}

fn at_mut<'a>(fs: &'a mut Vec<F>, path: &[usize]) -> &'a mut Vec<F> {
    match path.split_first() {
        None => fs,
        Some((&i, rest)) => match &mut fs[i].v {
            V::Msg(m) => at_mut(m, rest),
            _ => unreachable!(),
        },
    }
}

fn at<'a>(fs: &'a [F], path: &[usize]) -> &'a [F] {
    match path.split_first() {
        None => fs,
        Some((&i, rest)) => match &fs[i].v {
            V::Msg(m) => at(m, rest),
            _ => unreachable!(),
        },
    }
}

const INTERESTING: &[i64] = &[
    0,
    1,
    2,
    3,
    -1,
    -3,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    16,
    17,
    21,
    22,
    27,
    64,
    127,
    128,
    255,
    65535,
    65536,
    100_000,
    100_001,
    1 << 31,
    (1 << 31) - 1,
    -(1 << 31),
    1 << 32,
    1 << 40,
    1 << 62,
    i64::MAX,
    i64::MIN,
];

const FIELD_NUMBERS: &[u64] =
    &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 21, 22, 23, 25, 31, 99, 536_870_911];

fn odd_string(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => Vec::new(),
        1 => b"\xff\xfe\x80".to_vec(),
        2 => b"\x1b[31mred\nline\t\x00".to_vec(),
        3 => b"com.microsoft".to_vec(),
        4 => b"ai.onnx".to_vec(),
        5 => vec![b'n'; 5000],
        6 => "\u{202e}\u{e9}\u{1F600}".as_bytes().to_vec(),
        7 => b"If".to_vec(),
        8 => vec![b'x'; MAX_NAME_BYTES],
        _ => b"x".to_vec(),
    }
}

/// One edit of the tree.
fn mutate_tree(rng: &mut Rng, tree: &mut Vec<F>, seeds: &[Seed]) {
    let path = random_path(rng, tree);
    let m = at_mut(tree, &path);
    let n = m.len();
    let i = rng.below(n);
    match rng.below(13) {
        0 if n > 0 => {
            m.remove(i);
        }
        1 if n > 0 => {
            let x = m[i].clone();
            m.insert(rng.below(n + 1), x);
        }
        2 => {
            let vs: Vec<usize> = (0..n).filter(|&j| matches!(m[j].v, V::Varint(_))).collect();
            if !vs.is_empty() {
                let j = *rng.pick(&vs);
                let v = *rng.pick(INTERESTING);
                m[j].v = V::Varint(if rng.below(4) == 0 { v.wrapping_add(rng.below(3) as i64 - 1) } else { v } as u64);
            }
        }
        3 if n > 0 => m[i].num = *rng.pick(FIELD_NUMBERS),
        4 if n > 0 => {
            m[i].v = match &m[i].v {
                V::Varint(v) => match rng.below(3) {
                    0 => V::Fixed32(*v as u32),
                    1 => V::Fixed64(*v),
                    _ => bytes(v.to_le_bytes().to_vec()),
                },
                V::Bytes(b) => V::Varint(b.len() as u64),
                V::Msg(fs) => bytes(encode(fs)),
                V::Fixed32(v) => V::Varint(u64::from(*v)),
                V::Fixed64(v) => V::Fixed32(*v as u32),
            }
        }
        5 if n > 1 => m.swap(i, rng.below(n)),
        6 => {
            // A subtree from another seed (or this one), in a random place.
            let other = &rng.pick(seeds).tree;
            let p = random_path(rng, other);
            let src = at(other, &p);
            if !src.is_empty() {
                let x = src[rng.below(src.len())].clone();
                let m = at_mut(tree, &path);
                m.insert(rng.below(m.len() + 1), x);
            }
        }
        7 if n > 0 => {
            if let V::Bytes(b) = &mut m[i].v {
                let b = Rc::make_mut(b);
                if rng.below(2) == 0 {
                    b.truncate(rng.below(b.len() + 1));
                } else {
                    for _ in 0..1 + rng.below(8) {
                        b.push(rng.next() as u8);
                    }
                }
            }
        }
        8 => {
            // A non-finite value in some payload (raw_data, float_data, f): f32, f16 or f64;
            // half the time in an initializer's raw_data.
            let m = match initializer_path(rng, tree) {
                Some(p) if rng.below(2) == 0 => at_mut(tree, &p),
                _ => at_mut(tree, &path),
            };
            let n = m.len();
            let bs: Vec<usize> = (0..n).filter(|&j| matches!(&m[j].v, V::Bytes(b) if b.len() >= 2)).collect();
            if let Some(&j) = bs.get(rng.below(bs.len().max(1))) {
                let V::Bytes(b) = &mut m[j].v else { unreachable!() };
                let b = Rc::make_mut(b);
                let pats: [(Vec<u8>, usize); 7] = [
                    (0x7fc0_0000u32.to_le_bytes().to_vec(), 4),
                    (0x7f80_0000u32.to_le_bytes().to_vec(), 4),
                    (0xff80_0000u32.to_le_bytes().to_vec(), 4),
                    (0x7c00u16.to_le_bytes().to_vec(), 2),
                    (0x7e00u16.to_le_bytes().to_vec(), 2),
                    (f64::NAN.to_le_bytes().to_vec(), 8),
                    (1e300f64.to_le_bytes().to_vec(), 8),
                ];
                let (pat, w) = rng.pick(&pats);
                let w = *w;
                if b.len() >= w {
                    let k = rng.below(b.len() / w) * w;
                    b[k..k + w].copy_from_slice(pat);
                }
            } else {
                let fs: Vec<usize> = (0..n).filter(|&j| matches!(m[j].v, V::Fixed32(_))).collect();
                if let Some(&j) = fs.get(rng.below(fs.len().max(1))) {
                    m[j].v = V::Fixed32(*rng.pick(&[0x7fc0_0000, 0x7f80_0000, 0xff80_0000]));
                }
            }
        }
        9 => {
            let num = if rng.below(2) == 0 { *rng.pick(FIELD_NUMBERS) } else { 1 + rng.below(40) as u64 };
            let v = match rng.below(5) {
                0 => V::Varint(*rng.pick(INTERESTING) as u64),
                1 => V::Fixed32(rng.next() as u32),
                2 => V::Fixed64(rng.next()),
                3 => bytes(odd_string(rng)),
                _ => V::Msg(vec![f(1 + rng.below(20) as u64, V::Varint(rng.below(300) as u64))]),
            };
            m.insert(rng.below(n + 1), f(num, v));
        }
        10 if n > 0 => {
            // Packed ↔ unpacked.
            let num = m[i].num;
            match &m[i].v {
                V::Bytes(b) => {
                    let (mut vals, mut p) = (Vec::new(), 0);
                    while let Some(v) = get_varint(b, &mut p) {
                        vals.push(v);
                        if p == b.len() {
                            break;
                        }
                    }
                    if p == b.len() && !vals.is_empty() {
                        m.splice(i..=i, vals.into_iter().map(|v| f(num, V::Varint(v))));
                    }
                }
                V::Varint(_) => {
                    let mut b = Vec::new();
                    for x in m.iter().filter(|x| x.num == num) {
                        if let V::Varint(v) = x.v {
                            put_varint(&mut b, v);
                        }
                    }
                    m.retain(|x| !(x.num == num && matches!(x.v, V::Varint(_))));
                    let at = rng.below(m.len() + 1);
                    m.insert(at, f(num, bytes(b)));
                }
                _ => {}
            }
        }
        11 if n > 0 => {
            if let V::Bytes(b) = &mut m[i].v {
                *b = Rc::new(odd_string(rng));
            }
        }
        12 if n > 0 => {
            // Many copies of one field (counts near the limits, memory per input byte), at most
            // ~1 MB of them: counts, not sheer size, are the point.
            let x = m[i].clone();
            let k = (*rng.pick(&[MAX_DIMS, MAX_DIMS + 1, 64, 65, 300, 5000]))
                .min((1 << 20) / len(std::slice::from_ref(&x)));
            for _ in 0..k {
                m.push(x.clone());
            }
        }
        _ => {}
    }
}

const INTERESTING_BYTES: &[u8] = &[0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x0a, 0x12, 0x0b, 0x0c, 0x0e, 0x0f, 0x3a, 0x42];

/// One byte-level edit of the encoded file; `marks` are its tag and length offsets.
fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>, marks: &[usize], seeds: &[(String, Vec<u8>)]) {
    let pos = |rng: &mut Rng, len: usize| {
        if rng.below(4) > 0 && !marks.is_empty() { *rng.pick(marks) } else { rng.below(len.max(1)) }
    };
    match rng.below(6) {
        k @ (0 | 1) if !b.is_empty() => byte_edit(rng, b, k, &pos, INTERESTING_BYTES, seeds),
        k @ (2 | 3) => byte_edit(rng, b, k, &pos, INTERESTING_BYTES, seeds),
        4 if !marks.is_empty() => {
            // A length prefix (or a tag) re-encoded as another number.
            let at = *rng.pick(marks);
            let mut p = at;
            let Some(old) = get_varint(b, &mut p) else { return };
            let len = b.len() as u64;
            let k = 1 + rng.below(16) as u64;
            let new = *rng.pick(&[
                old.wrapping_add(1),
                old.wrapping_sub(1),
                old.wrapping_add(k),
                old.wrapping_sub(k),
                0,
                len,
                len - at as u64,
                u64::from(u32::MAX),
                1 << 62,
                u64::MAX,
            ]);
            let mut enc = Vec::new();
            put_varint(&mut enc, new);
            b.splice(at..p, enc);
        }
        _ => {
            let i = pos(rng, b.len()).min(b.len());
            for k in 0..rng.below(16) {
                if i + k < b.len() {
                    b[i + k] = rng.next() as u8;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle.

fn tensor_ok(t: &TensorProto, initializer: bool) -> Result<(), String> {
    let what = format!("tensor `{}`", t.name);
    if t.dims.len() > MAX_DIMS || t.dims.iter().any(|&d| d < 0) {
        return Err(format!("{what}: dims {:?} accepted", t.dims));
    }
    let n: usize = t.dims.iter().map(|&d| d as usize).product();
    let (len, ok_type) = match &t.data {
        TensorData::F32(v) => (v.len(), matches!(t.data_type, DataType::Float | DataType::Float16 | DataType::Double)),
        TensorData::I64(v) => {
            let in_range = match t.data_type {
                DataType::Bool => v.iter().all(|x| (0..=1).contains(x)),
                DataType::Int32 => v.iter().all(|&x| i32::try_from(x).is_ok()),
                _ => true,
            };
            (v.len(), in_range && matches!(t.data_type, DataType::Int64 | DataType::Int32 | DataType::Bool))
        }
    };
    if len != n || !ok_type {
        return Err(format!("{what}: {len} values of {:?} for dims {:?}", t.data_type, t.dims));
    }
    if initializer {
        if t.name.is_empty() {
            return Err("an initializer without a name was accepted".into());
        }
        if let TensorData::F32(v) = &t.data
            && v.iter().any(|x| !x.is_finite())
        {
            return Err(format!("{what}: a non-finite initializer was accepted"));
        }
    }
    Ok(())
}

fn model_ok(m: &ModelProto, input_len: usize) -> Result<(), String> {
    if !proto::IR_VERSIONS.contains(&m.ir_version) || !m.opset().is_some_and(|v| proto::OPSETS.contains(&v)) {
        return Err(format!("ir_version {} / opset {:?} accepted", m.ir_version, m.opset()));
    }
    let names = std::iter::once(&m.producer_name)
        .chain(m.opset_imports.iter().map(|(d, _)| d))
        .chain(m.metadata.iter().map(|(k, _)| k))
        .chain(std::iter::once(&m.graph.name));
    for (i, n) in m.graph.nodes.iter().enumerate() {
        if n.op_type.is_empty() || !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(format!("node #{i}: op_type `{}` in domain `{}` accepted", n.op_type, n.domain));
        }
        for (j, a) in n.attributes.iter().enumerate() {
            if a.name.is_empty() || n.attributes[..j].iter().any(|b| b.name == a.name) {
                return Err(format!("node #{i}: attribute `{}` empty or repeated", a.name));
            }
            if let AttributeValue::Tensor(t) = &a.value {
                tensor_ok(t, false)?;
            }
        }
    }
    for t in &m.graph.initializers {
        tensor_ok(t, true)?;
    }
    for v in m.graph.inputs.iter().chain(&m.graph.outputs) {
        let bad_dim = v
            .shape
            .as_ref()
            .is_some_and(|s| s.len() > MAX_DIMS || s.iter().any(|d| matches!(d, Dim::Value(x) if *x < 0)));
        if v.name.is_empty() || bad_dim {
            return Err(format!("graph value `{}` with shape {:?} accepted", v.name, v.shape));
        }
    }
    let long = names
        .chain(m.graph.nodes.iter().flat_map(|n| [&n.name, &n.op_type].into_iter().chain(&n.inputs).chain(&n.outputs)))
        .any(|s| s.len() > MAX_NAME_BYTES);
    if long {
        return Err("a name over MAX_NAME_BYTES accepted".into());
    }
    for (i, (k, _)) in m.metadata.iter().enumerate() {
        if m.metadata[..i].iter().any(|(k2, _)| k2 == k) {
            return Err(format!("metadata key `{k}` repeated"));
        }
    }
    // Written back and read again, it is the same model (compared as bytes: NaN ≠ NaN).
    let once = reencode(m, input_len);
    let again = parse_model(&once).map_err(|e| format!("the re-encoded model does not parse: {e}"))?;
    if reencode(&again, input_len) != once {
        return Err("re-encode → parse → re-encode changed the model".into());
    }
    Ok(())
}

/// Heap bytes the model holds: every vector's capacity and every string's.
fn footprint(m: &ModelProto) -> usize {
    fn vec<T>(v: &[T], cap: usize) -> usize {
        let _ = v;
        cap * size_of::<T>()
    }
    fn strs(v: &Vec<String>) -> usize {
        vec(v, v.capacity()) + v.iter().map(String::capacity).sum::<usize>()
    }
    fn tensor(t: &TensorProto) -> usize {
        t.name.capacity()
            + vec(&t.dims, t.dims.capacity())
            + match &t.data {
                TensorData::F32(v) => vec(v, v.capacity()),
                TensorData::I64(v) => vec(v, v.capacity()),
            }
    }
    fn value(v: &proto::ValueInfo) -> usize {
        v.name.capacity()
            + v.shape.as_ref().map_or(0, |s| {
                vec(s, s.capacity())
                    + s.iter().map(|d| if let Dim::Param(p) = d { p.capacity() } else { 0 }).sum::<usize>()
            })
    }
    let g = &m.graph;
    let mut n = m.producer_name.capacity() + g.name.capacity();
    n += vec(&m.opset_imports, m.opset_imports.capacity())
        + m.opset_imports.iter().map(|(d, _)| d.capacity()).sum::<usize>();
    n += vec(&m.metadata, m.metadata.capacity())
        + m.metadata.iter().map(|(k, v)| k.capacity() + v.capacity()).sum::<usize>();
    n += vec(&g.nodes, g.nodes.capacity());
    for x in &g.nodes {
        n += x.name.capacity() + x.op_type.capacity() + x.domain.capacity() + strs(&x.inputs) + strs(&x.outputs);
        n += vec(&x.attributes, x.attributes.capacity());
        for a in &x.attributes {
            n += a.name.capacity()
                + match &a.value {
                    AttributeValue::Float(_) | AttributeValue::Int(_) => 0,
                    AttributeValue::String(b) => b.capacity(),
                    AttributeValue::Tensor(t) => tensor(t),
                    AttributeValue::Floats(v) => vec(v, v.capacity()),
                    AttributeValue::Ints(v) => vec(v, v.capacity()),
                    AttributeValue::Strings(v) => vec(v, v.capacity()) + v.iter().map(Vec::capacity).sum::<usize>(),
                };
        }
    }
    n += vec(&g.initializers, g.initializers.capacity()) + g.initializers.iter().map(tensor).sum::<usize>();
    n += vec(&g.inputs, g.inputs.capacity()) + g.inputs.iter().map(value).sum::<usize>();
    n + vec(&g.outputs, g.outputs.capacity()) + g.outputs.iter().map(value).sum::<usize>()
}

struct Outcome {
    /// Total allocation as a fraction of the bound.
    ratio: f64,
    /// `None` when it parsed, else the error's kind.
    rejected: Option<&'static str>,
}

/// Checks one input.
fn check(bytes: &[u8]) -> Result<Outcome, String> {
    let Measured { result, total, largest } = parse_measured(bytes)?;
    if total > alloc_bound(bytes.len()) {
        return Err(format!(
            "allocated {total} bytes in total (largest block {largest}) for a {}-byte input, over 4 × input + 64 KiB",
            bytes.len()
        ));
    }
    let rejected = match &result {
        Ok(m) => {
            // Every byte allocated is in the model: no temporaries, no spare capacity.
            let held = footprint(m);
            if total != held {
                return Err(format!("parsed, allocating {total} bytes for a model that holds {held}"));
            }
            model_ok(m, bytes.len()).map_err(|e| format!("parsed, but {e}"))?;
            None
        }
        Err(Error::WeightsFormat(m)) if m.starts_with("ONNX ModelProto") && m.len() > "ONNX ModelProto: ".len() => {
            Some("WeightsFormat")
        }
        Err(Error::NonFiniteWeight { name, .. }) if !name.is_empty() => Some("NonFiniteWeight"),
        Err(e) => return Err(format!("rejected with a vague or unexpected error: {e:?}")),
    };
    Ok(Outcome { ratio: total as f64 / alloc_bound(bytes.len()) as f64, rejected })
}

fn report(failures: &[Failure]) {
    fuzz_common::report(failures, &root().join("target/fuzz-onnx-failures"), "onnx");
}

#[test]
fn seeds_parse_and_respect_the_bounds() {
    let mut failures = Vec::new();
    for seed in seeds() {
        let bytes = encode(&seed.tree);
        match check(&bytes) {
            Ok(o) if o.rejected.is_none() => {}
            Ok(_) => failures.push(Failure {
                case: format!("seed-{}", seed.name),
                what: "a seed does not parse".into(),
                input: bytes,
            }),
            Err(what) => failures.push(Failure { case: format!("seed-{}", seed.name), what, input: bytes }),
        }
    }
    report(&failures);
}

/// Inputs built to cost the most memory per byte: each must stay within the bound (refused
/// by the budget before allocating, where it would not).
#[test]
fn crafted_inputs_stay_within_the_allocation_bound() {
    let wrap = |graph: Vec<F>| encode(&[int(1, 8), msg(7, graph), msg(8, vec![int(2, 17)])]);
    let tiny_node = msg(1, vec![s(4, "A")]);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("100k tiny nodes", wrap(vec![tiny_node.clone(); proto::MAX_NODES])),
        ("1000 tiny nodes", wrap(vec![tiny_node; 1000])),
        ("empty node names", wrap(vec![msg(1, [vec![s(4, "A")], vec![s(1, ""); 4096]].concat()); 20])),
        ("1M BOOL raw", wrap(vec![msg(5, vec![int(1, 1 << 20), int(2, 9), s(8, "b"), f(9, bytes(vec![1; 1 << 20]))])])),
        (
            "1M INT64 packed small",
            wrap(vec![msg(5, vec![int(1, 1 << 20), int(2, 7), s(8, "i"), packed(7, &vec![1; 1 << 20])])]),
        ),
        ("1M FLOAT16", wrap(vec![msg(5, vec![int(1, 1 << 20), int(2, 10), s(8, "h"), f(9, bytes(vec![0; 2 << 20]))])])),
        (
            "ints attribute",
            wrap(vec![msg(1, vec![s(4, "A"), msg(5, vec![s(1, "a"), packed(8, &vec![0; 1 << 20]), int(20, 7)])])]),
        ),
        (
            "strings attribute",
            wrap(vec![msg(
                1,
                vec![s(4, "A"), msg(5, [vec![s(1, "a"), int(20, 8)], vec![s(9, ""); 1 << 16]].concat())],
            )]),
        ),
        ("graph values", wrap(vec![msg(11, vec![s(1, "x")]); 50_000])),
        (
            "dims",
            wrap(vec![msg(11, vec![s(1, "x"), msg(2, vec![msg(1, vec![msg(2, vec![msg(1, vec![]); 8])])])]); 5000]),
        ),
    ];
    let meta: Vec<F> = (0..proto::MAX_METADATA).map(|i| msg(14, vec![s(1, &i.to_string())])).collect();
    cases.push(("metadata", encode(&[vec![int(1, 8), msg(7, vec![]), msg(8, vec![int(2, 17)])], meta].concat())));
    for (path, ..) in FILES {
        cases.push((path.rsplit('/').next().unwrap(), std::fs::read(root().join(path)).unwrap()));
    }
    let mut failures = Vec::new();
    for (name, bytes) in cases {
        match check(&bytes) {
            Ok(o) => println!("{name}: {} bytes, {:?}, {:.0}% of the bound", bytes.len(), o.rejected, o.ratio * 100.0),
            Err(what) => failures.push(Failure { case: name.replace(' ', "_"), what, input: bytes }),
        }
    }
    report(&failures);
}

#[test]
fn mutated_models_never_panic_overallocate_or_fail_vaguely() {
    let range = case_range();
    let cases = range.end - range.start;
    let seeds = seeds();
    let encoded: Vec<(String, Vec<u8>)> = seeds.iter().map(|s| (s.name.clone(), encode(&s.tree))).collect();
    let weighted: Vec<usize> = SEED_WEIGHTS
        .iter()
        .flat_map(|(name, w)| std::iter::repeat_n(seeds.iter().position(|s| s.name == *name).unwrap(), *w))
        .collect();
    let started = std::time::Instant::now();
    // Largest total allocation as a fraction of the bound, among parsed and among refused inputs
    // (a refusal by the memory budget comes close to it by design: 4 × input + 48 KiB charged).
    let (mut failures, mut accepted, mut worst_parsed, mut worst_refused) = (Vec::new(), 0u64, 0f64, 0f64);
    let mut kinds = std::collections::BTreeMap::<&str, u64>::new();
    for case in range {
        let mut rng = Rng(pushforward::rng::SplitMix64(case.wrapping_mul(0xA24B_AED4_963E_E407)));
        let seed = &seeds[*rng.pick(&weighted)];
        let mut tree = seed.tree.clone();
        for _ in 0..1 + rng.below(3) {
            mutate_tree(&mut rng, &mut tree, &seeds);
        }
        let (mut input, mut marks) = (Vec::with_capacity(len(&tree)), Vec::new());
        write(&tree, &mut input, &mut marks);
        if rng.below(3) == 0 {
            for _ in 0..1 + rng.below(2) {
                mutate_bytes(&mut rng, &mut input, &marks, &encoded);
            }
        }
        match check(&input) {
            Ok(o) => match o.rejected {
                None => {
                    accepted += 1;
                    worst_parsed = worst_parsed.max(o.ratio);
                }
                Some(k) => {
                    *kinds.entry(k).or_default() += 1;
                    worst_refused = worst_refused.max(o.ratio);
                }
            },
            Err(what) => failures.push(Failure { case: format!("case-{case}-{}", seed.name), what, input }),
        }
    }
    println!(
        "fuzz_onnx: {cases} cases in {:.1} s, {accepted} parsed, rejections by kind {kinds:?}, {} failures, \
         largest total allocation {:.1}% of the bound parsed, {:.1}% refused",
        started.elapsed().as_secs_f64(),
        failures.len(),
        worst_parsed * 100.0,
        worst_refused * 100.0
    );
    report(&failures);
}
