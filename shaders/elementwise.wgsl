// Elementwise and data-movement kernels. One invocation per output element; workgroups are
// numbered flat over a 2-D grid so that more than 65535·256 elements can be addressed.
// Bindings: 0 params, 1 the output, 2.. the inputs (unused inputs of an entry point are simply
// not bound by its layout).

struct Params {
    len: u32,      // output elements
    a: u32,        // entry-specific sizes (see each entry point)
    b: u32,
    c: u32,
    w: f32,        // guidance scale
    nterms: u32,   // lincomb: number of k terms (≤ 6)
    _p0: u32,
    _p1: u32,
    coef: array<vec4<f32>, 2>,  // lincomb coefficients c_0..c_5
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> in0: array<f32>;
@group(0) @binding(3) var<storage, read> in1: array<f32>;
@group(0) @binding(4) var<storage, read> in2: array<f32>;
@group(0) @binding(5) var<storage, read> in3: array<f32>;
@group(0) @binding(6) var<storage, read> in4: array<f32>;
@group(0) @binding(7) var<storage, read> in5: array<f32>;
@group(0) @binding(8) var<storage, read> in6: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn silu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        let v = in0[i];
        out[i] = v / (1.0 + exp(-v));
    }
}

// silu'(z) * dz, with silu'(z) = s (1 + z (1 - s)), s = sigmoid(z): forward-mode tangents.
@compute @workgroup_size(256)
fn silu_tangent(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        let z = in0[i];
        let s = 1.0 / (1.0 + exp(-z));
        out[i] = s * (1.0 + z * (1.0 - s)) * in1[i];
    }
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        out[i] = in0[i] + in1[i];
    }
}

// x[n, c, hw] + bias[n, c]; p.a = hw.
@compute @workgroup_size(256)
fn add_channel_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        out[i] = in0[i] + in1[i / p.a];
    }
}

// [nc, h, w] → [nc, 2h, 2w]; p.a = h, p.b = w.
@compute @workgroup_size(256)
fn upsample_nearest2x(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        let w2 = 2u * p.b;
        let ox = i % w2;
        let rest = i / w2;
        let oy = rest % (2u * p.a);
        let plane = rest / (2u * p.a);
        out[i] = in0[(plane * p.a + oy / 2u) * p.b + ox / 2u];
    }
}

// [n, la] ++ [n, lb] → [n, la + lb] (la, lb: values per row of each input); p.a = la, p.b = lb.
@compute @workgroup_size(256)
fn concat_axis1(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        let row_len = p.a + p.b;
        let row = i / row_len;
        let col = i % row_len;
        if (col < p.a) {
            out[i] = in0[row * p.a + col];
        } else {
            out[i] = in1[row * p.b + col - p.a];
        }
    }
}

// x + Σ c_j·k_j for one whole Runge–Kutta stage in one pass; in0 = x, in1.. = k_j. Unused
// term slots are bound to x and skipped by `nterms` (a uniform branch).
@compute @workgroup_size(256)
fn lincomb(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        var v = in0[i];
        let n = p.nterms;
        if (n > 0u) { v += p.coef[0].x * in1[i]; }
        if (n > 1u) { v += p.coef[0].y * in2[i]; }
        if (n > 2u) { v += p.coef[0].z * in3[i]; }
        if (n > 3u) { v += p.coef[0].w * in4[i]; }
        if (n > 4u) { v += p.coef[1].x * in5[i]; }
        if (n > 5u) { v += p.coef[1].y * in6[i]; }
        out[i] = v;
    }
}

// out[i] = in0[i mod a]: repeat2 ([x; x]) and broadcasting one row to n rows.
@compute @workgroup_size(256)
fn tile(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        out[i] = in0[i % p.a];
    }
}

// [cond; uncond] (2·len values) → uncond + w·(cond − uncond).
@compute @workgroup_size(256)
fn guidance_mix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        let c = in0[i];
        let u = in0[i + p.len];
        out[i] = u + p.w * (c - u);
    }
}
