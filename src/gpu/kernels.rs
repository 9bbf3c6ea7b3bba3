//! One function per kernel: fills the kernel family's typed uniform, picks its bindings and
//! its workgroup count, and records the dispatch through the `Recorder`. Shapes are checked by
//! `crate::shapes` before these run; they assume consistent sizes.
//!
//! Each family's uniform is a `#[repr(C)]` Pod struct declared with `uniform!`, field for field
//! the `struct Params` of its WGSL file (padding fields included); `tests::uniforms_match_wgsl`
//! parses the shaders and fails on any drift in names, order, offsets or sizes.

use super::pipelines::{Kernel, LINCOMB_TERMS};
use super::recorder::{Bind, Recorder};
use super::tuning::{ConvVariant, LinearVariant};
use crate::cpu::Activation;
use crate::error::Result;
use crate::shapes::{Conv2dShape, Nchw};
use bytemuck::Zeroable;

/// Declares a kernel family's uniform block: `Name = "shader file" { field: type, … }`, the
/// fields in the order and with the names of the file's WGSL `struct Params`.
macro_rules! uniform {
    ($(#[$doc:meta])* $name:ident = $file:literal { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct $name {
            $($field: $ty),*
        }

        #[cfg(test)]
        impl $name {
            const LAYOUT: tests::Layout = tests::Layout {
                file: $file,
                size: std::mem::size_of::<$name>(),
                fields: &[$((stringify!($field), stringify!($ty), std::mem::offset_of!($name, $field),
                    std::mem::size_of::<$ty>())),*],
            };
        }
    };
}

uniform! {
    /// `Params` of matmul.wgsl.
    MatmulParams = "matmul" {
        n: u32, k: u32, m: u32, tiles_m: u32, tiles_n: u32, has_bias: u32, act: u32, _pad: u32,
    }
}

uniform! {
    /// `Params` of conv2d.wgsl.
    Conv2dParams = "conv2d" {
        n: u32, cin: u32, h: u32, w: u32, cout: u32, oh: u32, ow: u32, kh: u32, kw: u32,
        stride: u32, pad: u32, has_bias: u32, cblocks: u32, xblocks: u32, total: u32, adds: u32,
    }
}

uniform! {
    /// `Params` of norm.wgsl.
    NormParams = "norm" {
        c: u32, hw: u32, groups: u32, total_groups: u32, eps: f32, act: u32, _p0: u32, _p1: u32,
    }
}

uniform! {
    /// `Params` of elementwise.wgsl (`coef` is WGSL's `array<vec4<f32>, 2>`).
    ElementwiseParams = "elementwise" {
        len: u32, a: u32, b: u32, c: u32, w: f32, nterms: u32, _p0: u32, _p1: u32, coef: [f32; 8],
    }
}

uniform! {
    /// `Params` of embed.wgsl.
    EmbedParams = "embed" {
        len: u32, d: u32, _p0: u32, _p1: u32,
    }
}

uniform! {
    /// `Params` of reduce.wgsl.
    ReduceParams = "reduce" {
        len: u32, count: u32, rtol: f32, atol: f32,
    }
}

uniform! {
    /// `Params` of rng.wgsl.
    RngParams = "rng" {
        key0: u32, key1: u32, stream: u32, lane0: u32, block_lo: u32, block_hi: u32, len: u32, blocks: u32,
    }
}

uniform! {
    /// `Params` of pointwise.wgsl (the shape and strides are WGSL's `array<vec4<u32>, 2>`).
    PointwiseParams = "pointwise" {
        len: u32, op: u32, rank: u32, _p0: u32, alpha: f32, beta: f32, _p1: u32, _p2: u32,
        out_shape: [u32; 8], a_strides: [u32; 8], b_strides: [u32; 8],
    }
}

uniform! {
    /// `Params` of graph.wgsl.
    GraphParams = "graph" {
        len: u32, rank: u32, offset: u32, inner: u32, m: u32, n: u32, k: u32, eps: f32,
        shape: [u32; 8], a_strides: [u32; 8], b_strides: [u32; 8],
    }
}

const EW_WG: u64 = 256;

fn elementwise_params(len: usize, a: usize, b: usize, w: f32, coef: &[f32]) -> ElementwiseParams {
    let mut p = ElementwiseParams {
        len: len as u32,
        a: a as u32,
        b: b as u32,
        w,
        nterms: coef.len() as u32,
        ..ElementwiseParams::zeroed()
    };
    p.coef[..coef.len()].copy_from_slice(coef);
    p
}

/// out[n, m] = act(x[n, k] · w[m, k]ᵀ + b), by `variant`'s kernel.
#[allow(clippy::too_many_arguments)]
pub(super) fn linear(
    r: &mut Recorder,
    variant: LinearVariant,
    out: Bind,
    x: Bind,
    w: Bind,
    b: Option<Bind>,
    act: Activation,
    n: usize,
    k: usize,
    m: usize,
) -> Result<()> {
    // Output rows and columns per workgroup: 8×8 invocations of 4×4, or the 64×64 / 128×128 tile.
    let (tile, kernel) = match variant {
        LinearVariant::Registers => (32, Kernel::Linear { vec4: k.is_multiple_of(4) }),
        // Rows staged as whole vec4s; other k (a 2-D model's first layer) take the 64×64 tile.
        LinearVariant::Tiled128 if k.is_multiple_of(4) => (128, Kernel::LinearTiled128),
        LinearVariant::Tiled | LinearVariant::Tiled128 => (64, Kernel::LinearTiled),
    };
    let (tiles_n, tiles_m) = (n.div_ceil(tile), m.div_ceil(tile));
    let p = MatmulParams {
        n: n as u32,
        k: k as u32,
        m: m as u32,
        tiles_m: tiles_m as u32,
        tiles_n: tiles_n as u32,
        has_bias: b.is_some() as u32,
        act: (act == Activation::Silu) as u32,
        ..MatmulParams::zeroed()
    };
    // Without a bias the slot is bound to x (read-only aliasing is allowed) and never read.
    r.dispatch(kernel, bytemuck::bytes_of(&p), out, &[x, w, b.unwrap_or(x)], (tiles_n * tiles_m) as u64)
}

/// NCHW convolution of geometry `s`, by `variant`'s kernel.
pub(super) fn conv2d(
    r: &mut Recorder,
    variant: ConvVariant,
    out: Bind,
    x: Bind,
    w: Bind,
    b: Option<Bind>,
    [channel_add, residual]: [Option<Bind>; 2],
    s: &Conv2dShape,
) -> Result<()> {
    let Conv2dShape { batch: n, c_in: cin, h, w: wd, c_out: cout, kh, kw, stride, pad } = *s;
    let (oh, ow) = (s.out_h(), s.out_w());
    // Direct: invocations of 4 channels × 4 pixels of a row, 64 per workgroup. Implicit GEMM:
    // workgroups of 32 channels × 128 or 256 pixels (flattened over images and rows).
    // The browser build carries only the direct kernels (shaders/conv_gemm.wgsl says why). Its
    // caller passes Direct there too, skipping the tuning lookup; this line keeps the GEMM arms
    // out of the wasm (the caller without its guard measured 137 B more gzip).
    let variant = if cfg!(target_arch = "wasm32") { ConvVariant::Direct } else { variant };
    let (cblocks, xblocks, total, workgroups, kernel) = match variant {
        ConvVariant::Direct => {
            let (cblocks, xblocks) = (cout.div_ceil(4), ow.div_ceil(4));
            let total = n * cblocks * oh * xblocks;
            (cblocks, xblocks, total, total.div_ceil(64), Kernel::Conv2d { k3s1: kh == 3 && kw == 3 && stride == 1 })
        }
        ConvVariant::Gemm | ConvVariant::GemmWide => {
            let (pixels, kernel) =
                if variant == ConvVariant::Gemm { (128, Kernel::ConvGemm) } else { (256, Kernel::ConvGemmWide) };
            let (cblocks, xblocks) = (cout.div_ceil(32), (n * oh * ow).div_ceil(pixels));
            (cblocks, xblocks, cblocks * xblocks, cblocks * xblocks, kernel)
        }
    };
    let p = Conv2dParams {
        n: n as u32,
        cin: cin as u32,
        h: h as u32,
        w: wd as u32,
        cout: cout as u32,
        oh: oh as u32,
        ow: ow as u32,
        kh: kh as u32,
        kw: kw as u32,
        stride: stride as u32,
        pad: pad as u32,
        has_bias: b.is_some() as u32,
        cblocks: cblocks as u32,
        xblocks: xblocks as u32,
        total: total as u32,
        adds: channel_add.is_some() as u32 | (residual.is_some() as u32) << 1,
    };
    // Unused inputs bind `x` (read-only, never read). The implicit GEMMs have no epilogue adds
    // (their caller runs them as ops).
    let inputs = [x, w, b.unwrap_or(x), channel_add.unwrap_or(x), residual.unwrap_or(x)];
    let inputs = if variant == ConvVariant::Direct { &inputs[..] } else { &inputs[..3] };
    r.dispatch(kernel, bytemuck::bytes_of(&p), out, inputs, workgroups as u64)
}

/// GroupNorm over `x` of dims `d` (+ the fused activation).
#[allow(clippy::too_many_arguments)]
pub(super) fn group_norm(
    r: &mut Recorder,
    out: Bind,
    x: Bind,
    gamma: Bind,
    beta: Bind,
    d: &Nchw,
    groups: usize,
    eps: f32,
    act: Activation,
) -> Result<()> {
    let total = d.n * groups;
    let p = NormParams {
        c: d.c as u32,
        hw: d.hw() as u32,
        groups: groups as u32,
        total_groups: total as u32,
        eps,
        act: (act == Activation::Silu) as u32,
        ..NormParams::zeroed()
    };
    r.dispatch(Kernel::GroupNorm, bytemuck::bytes_of(&p), out, &[x, gamma, beta], total as u64)
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
    r.dispatch(kernel, bytemuck::bytes_of(&p), out, inputs, (len as u64).div_ceil(EW_WG))
}

/// out = op(x), elementwise (`pointwise::UnaryOp`).
pub(super) fn unary(r: &mut Recorder, out: Bind, x: Bind, len: usize, op: crate::pointwise::UnaryOp) -> Result<()> {
    let [alpha, beta] = op.params();
    let p = PointwiseParams { len: len as u32, op: op.code(), alpha, beta, ..PointwiseParams::zeroed() };
    r.dispatch(Kernel::Unary, bytemuck::bytes_of(&p), out, &[x], (len as u64).div_ceil(EW_WG))
}

/// out = a ∘ b broadcast to `out_shape` (at most 8 dimensions).
pub(super) fn binary(
    r: &mut Recorder,
    out: Bind,
    a: (Bind, &[usize]),
    b: (Bind, &[usize]),
    out_shape: &[usize],
    op: crate::pointwise::BinaryOp,
) -> Result<()> {
    let len: usize = out_shape.iter().product();
    let mut p =
        PointwiseParams { len: len as u32, op: op.code(), rank: out_shape.len() as u32, ..PointwiseParams::zeroed() };
    let (sa, sb) =
        (crate::pointwise::broadcast_strides(a.1, out_shape), crate::pointwise::broadcast_strides(b.1, out_shape));
    for d in 0..out_shape.len() {
        p.out_shape[d] = out_shape[d] as u32;
        p.a_strides[d] = sa[d] as u32;
        p.b_strides[d] = sb[d] as u32;
    }
    r.dispatch(Kernel::Binary, bytemuck::bytes_of(&p), out, &[a.0, b.0], (len as u64).div_ceil(EW_WG))
}

fn fill(dst: &mut [u32; 8], src: &[usize]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = v as u32;
    }
}

/// out[i] = x[offset + Σ k_d·strides[d]] over `shape` (≤ 8 dims).
pub(super) fn strided_copy(
    r: &mut Recorder,
    out: Bind,
    x: Bind,
    shape: &[usize],
    offset: usize,
    strides: &[usize],
) -> Result<()> {
    let len: usize = shape.iter().product();
    let mut p =
        GraphParams { len: len as u32, rank: shape.len() as u32, offset: offset as u32, ..GraphParams::zeroed() };
    fill(&mut p.shape, shape);
    fill(&mut p.a_strides, strides);
    r.dispatch(Kernel::StridedCopy, bytemuck::bytes_of(&p), out, &[x], (len as u64).div_ceil(EW_WG))
}

/// out[batch…, m, n] = a[…, m, k] · b[…, k, n] with per-operand batch strides.
pub(super) fn batched_matmul(
    r: &mut Recorder,
    out: Bind,
    (a, a_strides): (Bind, &[usize]),
    (b, b_strides): (Bind, &[usize]),
    batch: &[usize],
    (m, k, n): (usize, usize, usize),
) -> Result<()> {
    let len = batch.iter().product::<usize>() * m * n;
    let mut p = GraphParams {
        len: len as u32,
        rank: batch.len() as u32,
        m: m as u32,
        n: n as u32,
        k: k as u32,
        ..GraphParams::zeroed()
    };
    fill(&mut p.shape, batch);
    fill(&mut p.a_strides, a_strides);
    fill(&mut p.b_strides, b_strides);
    r.dispatch(Kernel::BatchedMatmul, bytemuck::bytes_of(&p), out, &[a, b], (len as u64).div_ceil(EW_WG))
}

/// Softmax or layer norm (with gamma, beta) over `rows` rows of `inner` values.
pub(super) fn rows(
    r: &mut Recorder,
    kernel: Kernel,
    out: Bind,
    inputs: &[Bind],
    rows: usize,
    inner: usize,
    eps: f32,
) -> Result<()> {
    let p = GraphParams { len: rows as u32, inner: inner as u32, eps, ..GraphParams::zeroed() };
    r.dispatch(kernel, bytemuck::bytes_of(&p), out, inputs, (rows as u64).div_ceil(EW_WG))
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
    r.dispatch(Kernel::Lincomb, bytemuck::bytes_of(&p), out, &inputs, (len as u64).div_ceil(EW_WG))
}

fn embed_params(len: usize, d: usize) -> EmbedParams {
    EmbedParams { len: len as u32, d: d as u32, ..EmbedParams::zeroed() }
}

/// out[i] = row[i mod d] for `len` outputs.
pub(super) fn broadcast_rows(r: &mut Recorder, out: Bind, row: Bind, len: usize, d: usize) -> Result<()> {
    let p = embed_params(len, d);
    r.dispatch(Kernel::BroadcastRows, bytemuck::bytes_of(&p), out, &[row], (len as u64).div_ceil(EW_WG))
}

/// out[i, :] = table[ids[i], :].
pub(super) fn gather_rows(r: &mut Recorder, out: Bind, table: Bind, ids: Bind, len: usize, d: usize) -> Result<()> {
    let p = embed_params(len, d);
    r.dispatch(Kernel::GatherRows, bytemuck::bytes_of(&p), out, &[table, ids], (len as u64).div_ceil(EW_WG))
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
    let p = ReduceParams { len: len as u32, count: len as u32, rtol, atol };
    r.dispatch_exact(Kernel::RmsPartial, bytemuck::bytes_of(&p), part, &[err, x_old, x_new], nparts as u32)
}

/// Stage 1 of the finiteness check: per-workgroup counts of non-finite values.
pub(super) fn nonfinite_partial(r: &mut Recorder, part: Bind, x: Bind, len: usize, nparts: usize) -> Result<()> {
    let p = ReduceParams { len: len as u32, count: len as u32, rtol: 0.0, atol: 0.0 };
    r.dispatch_exact(Kernel::NonfinitePartial, bytemuck::bytes_of(&p), part, &[x], nparts as u32)
}

/// Stage 2: out[0] = sqrt(Σ partials / count) (`rms`) or Σ partials.
pub(super) fn finish(r: &mut Recorder, out: Bind, part: Bind, nparts: usize, count: usize, rms: bool) -> Result<()> {
    let p = ReduceParams { len: nparts as u32, count: count as u32, rtol: 0.0, atol: 0.0 };
    r.dispatch_exact(if rms { Kernel::FinishRms } else { Kernel::FinishSum }, bytemuck::bytes_of(&p), out, &[part], 1)
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
    let p = RngParams {
        key0: seed as u32,
        key1: (seed >> 32) as u32,
        stream,
        lane0: lane0 as u32,
        block_lo: block as u32,
        block_hi: (block >> 32) as u32,
        len: len as u32,
        blocks: blocks as u32,
    };
    let kernel = if words { Kernel::PhiloxWords } else { Kernel::Normal };
    r.dispatch(kernel, bytemuck::bytes_of(&p), out, &[], (blocks as u64).div_ceil(64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::pipelines::PARAMS_BYTES;

    /// A Rust uniform as `uniform!` records it: (field, Rust type, offset, size) in order.
    pub(super) struct Layout {
        pub file: &'static str,
        pub size: usize,
        pub fields: &'static [(&'static str, &'static str, usize, usize)],
    }

    const ALL: [Layout; 10] = [
        GraphParams::LAYOUT,
        PeakParams::LAYOUT,
        PointwiseParams::LAYOUT,
        MatmulParams::LAYOUT,
        Conv2dParams::LAYOUT,
        NormParams::LAYOUT,
        ElementwiseParams::LAYOUT,
        EmbedParams::LAYOUT,
        ReduceParams::LAYOUT,
        RngParams::LAYOUT,
    ];

    /// (align, size, scalar type) of a WGSL type in the uniform address space.
    fn wgsl_type(t: &str) -> (usize, usize, String) {
        let t = t.trim();
        if let Some(inner) = t.strip_prefix("array<").and_then(|r| r.strip_suffix('>')) {
            let (elem, n) = inner.rsplit_once(',').unwrap_or_else(|| panic!("runtime-sized array `{t}` in a uniform"));
            let n: usize = n.trim().parse().unwrap_or_else(|_| panic!("array length of `{t}`"));
            let (align, size, scalar) = wgsl_type(elem);
            let stride = size.next_multiple_of(align);
            assert!(stride.is_multiple_of(16), "`{t}`: uniform arrays need a stride that is a multiple of 16");
            return (align.max(16), n * stride, scalar);
        }
        for (prefix, align, size) in [("vec2<", 8, 8), ("vec3<", 16, 12), ("vec4<", 16, 16)] {
            if let Some(s) = t.strip_prefix(prefix).and_then(|r| r.strip_suffix('>')) {
                return (align, size, s.trim().to_string());
            }
        }
        match t {
            "u32" | "i32" | "f32" => (4, 4, t.to_string()),
            _ => panic!("WGSL type `{t}` is not handled by this test"),
        }
    }

    /// The fields of `struct Params` in a WGSL source: (name, offset, size, scalar type), and
    /// the struct's size, by WGSL's layout rules.
    fn wgsl_params(src: &str) -> (Vec<(String, usize, usize, String)>, usize) {
        let code: String = src.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        let start = code.find("struct Params").expect("a `struct Params`");
        let body = &code[start..];
        let body = &body[body.find('{').expect("{") + 1..body.find('}').expect("}")];
        // Split at the commas outside `<…>`.
        let (mut members, mut depth, mut cur) = (Vec::new(), 0i32, String::new());
        for c in body.chars() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                ',' if depth == 0 => {
                    members.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        members.push(cur);
        let (mut fields, mut end, mut max_align) = (Vec::new(), 0usize, 1);
        for m in members.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
            let (name, ty) = m.split_once(':').unwrap_or_else(|| panic!("member `{m}`"));
            let (align, size, scalar) = wgsl_type(ty);
            let offset = end.next_multiple_of(align);
            fields.push((name.trim().to_string(), offset, size, scalar));
            end = offset + size;
            max_align = max_align.max(align);
        }
        (fields, end.next_multiple_of(max_align))
    }

    fn shader(file: &str) -> String {
        let path = format!("{}/shaders/{file}.wgsl", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Every kernel uniform is its shader's `struct Params` field for field: same names in the
    /// same order, same offsets and sizes, same scalar types, and it fits a parameter slot.
    #[test]
    fn uniforms_match_wgsl() {
        for l in &ALL {
            let (wgsl, wgsl_size) = wgsl_params(&shader(l.file));
            let names = |v: Vec<&str>| v.join(", ");
            assert_eq!(
                names(l.fields.iter().map(|f| f.0).collect()),
                names(wgsl.iter().map(|f| f.0.as_str()).collect()),
                "{}.wgsl: the Rust uniform's fields differ from `struct Params`",
                l.file
            );
            for (&(name, ty, offset, size), (_, w_offset, w_size, w_scalar)) in l.fields.iter().zip(&wgsl) {
                let scalar = ty.trim_start_matches('[').split(';').next().unwrap_or(ty).trim();
                assert_eq!(scalar, w_scalar, "{}.wgsl `{name}`: Rust `{ty}` vs WGSL `{w_scalar}`", l.file);
                assert_eq!((offset, size), (*w_offset, *w_size), "{}.wgsl `{name}`: (offset, size)", l.file);
            }
            assert_eq!(l.size, wgsl_size, "{}.wgsl: struct size", l.file);
            assert!(l.size as u64 <= PARAMS_BYTES, "{}.wgsl: {} bytes exceed the parameter slot", l.file, l.size);
        }
    }

    /// Every shader with a `struct Params` has a Rust uniform here (a new kernel family cannot
    /// skip the check above).
    #[test]
    fn every_kernel_shader_has_a_uniform() {
        let dir = format!("{}/shaders", env!("CARGO_MANIFEST_DIR"));
        let mut with_params: Vec<String> = std::fs::read_dir(&dir)
            .expect("shaders/")
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".wgsl")?.to_string();
                shader(&stem).contains("struct Params").then_some(stem)
            })
            .collect();
        with_params.sort();
        let mut ours: Vec<String> = ALL.iter().map(|l| l.file.to_string()).collect();
        ours.sort();
        assert_eq!(ours, with_params);
    }

    /// The layout check itself: WGSL's rules for the types the shaders use.
    #[test]
    fn wgsl_layout_rules() {
        let (f, size) = wgsl_params("struct Params { a: u32, b: vec2<f32>, c: array<vec4<f32>, 2>, d: f32, }");
        let offsets: Vec<(usize, usize)> = f.iter().map(|f| (f.1, f.2)).collect();
        assert_eq!(offsets, [(0, 4), (8, 8), (16, 32), (48, 4)]);
        assert_eq!(size, 64);
    }

    /// The typed uniforms write the words the hand-built blocks wrote.
    #[test]
    fn elementwise_uniform_words() {
        let p = elementwise_params(10, 3, 4, 2.5, &[1.0, -2.0]);
        let words: &[u32] = bytemuck::cast_slice(bytemuck::bytes_of(&p));
        let f = |v: f32| v.to_bits();
        assert_eq!(words, [10, 3, 4, 0, f(2.5), 2, 0, 0, f(1.0), f(-2.0), 0, 0, 0, 0, 0, 0]);
    }
}

uniform! {
    /// `Params` of peak.wgsl (the benchmark's kernel; not run in the browser).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    PeakParams = "peak" { len: u32, iters: u32, _p0: u32, _p1: u32 }
}

/// `len` invocations of 8 vec4 FMA chains, `iters` steps each (64·len·iters flops).
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn fma_peak(r: &mut Recorder, out: Bind, len: usize, iters: u32) -> Result<()> {
    let p = PeakParams { len: len as u32, iters, _p0: 0, _p1: 0 };
    r.dispatch(Kernel::FmaPeak, bytemuck::bytes_of(&p), out, &[], (len as u64).div_ceil(EW_WG))
}
