// Kernels graph networks need beyond the reference architectures, as src/cpu/graph.rs computes
// them: strided copies (transposes, slices, picks), batched matrix products with broadcast
// batch dimensions, softmax and layer norm over the last axis (one invocation per row: rows are
// short in velocity networks' attention).
// Bindings: 0 params, 1 the output, 2 input a, 3 input b / gamma, 4 beta.

struct Params {
    len: u32,        // output elements (strided copy, matmul) or rows (softmax, layer norm)
    rank: u32,       // strided copy: output dims; matmul: batch dims
    offset: u32,     // strided copy: first input element
    inner: u32,      // softmax / layer norm: row length
    m: u32,
    n: u32,
    k: u32,
    eps: f32,
    shape: array<vec4<u32>, 2>,      // output shape (copy) or batch shape (matmul)
    a_strides: array<vec4<u32>, 2>,  // input strides per output dim / a's per batch dim
    b_strides: array<vec4<u32>, 2>,  // b's per batch dim
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> in0: array<f32>;
@group(0) @binding(3) var<storage, read> in1: array<f32>;
@group(0) @binding(4) var<storage, read> in2: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

fn dim(v: array<vec4<u32>, 2>, d: u32) -> u32 {
    return v[d / 4u][d % 4u];
}

@compute @workgroup_size(256)
fn strided_copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.len) {
        return;
    }
    var rem = i;
    var at = p.offset;
    for (var d = i32(p.rank) - 1; d >= 0; d = d - 1) {
        let size = dim(p.shape, u32(d));
        at = at + (rem % size) * dim(p.a_strides, u32(d));
        rem = rem / size;
    }
    out[i] = in0[at];
}

@compute @workgroup_size(256)
fn batched_matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.len) {
        return;
    }
    let mn = p.m * p.n;
    var rem = i / mn;
    let row = (i % mn) / p.n;
    let col = i % p.n;
    var oa = 0u;
    var ob = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d = d - 1) {
        let size = dim(p.shape, u32(d));
        let j = rem % size;
        rem = rem / size;
        oa = oa + j * dim(p.a_strides, u32(d));
        ob = ob + j * dim(p.b_strides, u32(d));
    }
    var s = 0.0;
    for (var q = 0u; q < p.k; q = q + 1u) {
        s = s + in0[oa + row * p.k + q] * in1[ob + q * p.n + col];
    }
    out[i] = s;
}

@compute @workgroup_size(256)
fn softmax_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let r = index(wid, nwg, lid);
    if (r >= p.len) {
        return;
    }
    let base = r * p.inner;
    var m = in0[base];
    for (var j = 1u; j < p.inner; j = j + 1u) {
        m = max(m, in0[base + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < p.inner; j = j + 1u) {
        let e = exp(in0[base + j] - m);
        out[base + j] = e;
        sum = sum + e;
    }
    let inv = 1.0 / sum;
    for (var j = 0u; j < p.inner; j = j + 1u) {
        out[base + j] = out[base + j] * inv;
    }
}

@compute @workgroup_size(256)
fn layer_norm_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let r = index(wid, nwg, lid);
    if (r >= p.len) {
        return;
    }
    let base = r * p.inner;
    var mean = 0.0;
    for (var j = 0u; j < p.inner; j = j + 1u) {
        mean = mean + in0[base + j];
    }
    mean = mean / f32(p.inner);
    var v = 0.0;
    for (var j = 0u; j < p.inner; j = j + 1u) {
        let d = in0[base + j] - mean;
        v = v + d * d;
    }
    let inv = 1.0 / sqrt(v / f32(p.inner) + p.eps);
    for (var j = 0u; j < p.inner; j = j + 1u) {
        out[base + j] = (in0[base + j] - mean) * inv * in1[j] + in2[j];
    }
}
