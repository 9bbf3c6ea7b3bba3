// Pointwise ops of graph networks (ONNX): unary functions and broadcasting binary operators,
// operation for operation the definitions in src/pointwise.rs. One invocation per output
// element; workgroups numbered flat over a 2-D grid.
// Bindings: 0 params, 1 the output, 2 input a, 3 input b (binary).

struct Params {
    len: u32,        // output elements
    op: u32,         // UnaryOp::code / BinaryOp::code
    rank: u32,       // binary: dimensions of the output (≤ 8)
    _p0: u32,
    alpha: f32,      // the op's constants (leaky slope, elu alpha, clip bounds, exponent)
    beta: f32,
    _p1: u32,
    _p2: u32,
    out_shape: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,   // element strides of a read as the output (0: broadcast)
    b_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> in0: array<f32>;
@group(0) @binding(3) var<storage, read> in1: array<f32>;

const FRAC_2_SQRT_PI: f32 = 1.1283791670955126;
const FRAC_1_SQRT_2: f32 = 0.7071067811865476;
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const SELU_ALPHA: f32 = 1.6732632;
const SELU_SCALE: f32 = 1.050701;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

// exp with its argument kept where every device's exp is finite and defined.
fn exp_safe(x: f32) -> f32 {
    return exp(clamp(x, -87.0, 88.0));
}

// sincos_accurate(θ): shaders/sincos.wgsl, prepended by the pipeline cache.

// erf: the Maclaurin series below 0.5, 1 − erfc (Numerical Recipes' Chebyshev fit) above, as
// src/pointwise.rs computes it.
fn erf_fn(x: f32) -> f32 {
    let a = abs(x);
    if (a < 0.5) {
        let z = x * x;
        return FRAC_2_SQRT_PI * x * (1.0 - z / 3.0 + z * z / 10.0 - z * z * z / 42.0 + z * z * z * z / 216.0 - z * z * z * z * z / 1320.0);
    }
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807
        + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = 1.0 - t * exp_safe(-a * a + poly);
    return select(r, -r, x < 0.0);
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp_safe(-x));
}

fn tanh_safe(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

fn pow_fn(x: f32, e: f32) -> f32 {
    if (e == 2.0) { return x * x; }
    if (e == 1.0) { return x; }
    if (e == 0.5) { return sqrt(x); }
    // pow(x, e) for negative x and integer e, as powf does.
    if (x < 0.0 && e == round(e)) {
        let m = pow(-x, e);
        return select(m, -m, (i32(e) & 1) == 1);
    }
    return pow(x, e);
}

fn unary_fn(op: u32, x: f32) -> f32 {
    switch (op) {
        case 0u: { return -x; }
        case 1u: { return abs(x); }
        case 2u: { return 1.0 / x; }
        case 3u: { return sqrt(x); }
        case 4u: { return exp_safe(x); }
        case 5u: { return log(x); }
        case 6u: { return sincos_accurate(x).y; }
        case 7u: { return sincos_accurate(x).x; }
        case 8u: { return tanh_safe(x); }
        case 9u: { return erf_fn(x); }
        case 10u: { return sigmoid(x); }
        case 11u: { return max(x, 0.0); }
        case 12u: { return select(p.alpha * x, x, x >= 0.0); }
        case 13u: { return select(p.alpha * (exp_safe(x) - 1.0), x, x > 0.0); }
        case 14u: { return SELU_SCALE * select(SELU_ALPHA * (exp_safe(x) - 1.0), x, x > 0.0); }
        case 15u: { return 0.5 * x * (1.0 + erf_fn(x * FRAC_1_SQRT_2)); }
        case 16u: { return 0.5 * x * (1.0 + tanh_safe(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))); }
        case 17u: { return max(x, 0.0) + log(1.0 + exp_safe(-abs(x))); }
        case 18u: { return x * sigmoid(x); }
        case 19u: { return min(max(x, p.alpha), p.beta); }
        default: { return pow_fn(x, p.alpha); }
    }
}

fn binary_fn(op: u32, a: f32, b: f32) -> f32 {
    switch (op) {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        case 3u: { return a / b; }
        case 4u: { return pow_fn(a, b); }
        case 5u: { return max(a, b); }
        default: { return min(a, b); }
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        out[i] = unary_fn(p.op, in0[i]);
    }
}

fn dim(v: array<vec4<u32>, 2>, d: u32) -> u32 {
    return v[d / 4u][d % 4u];
}

// a ∘ b broadcast to the output: each input's offset from the output index and its strides.
@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.len) {
        return;
    }
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d = d - 1) {
        let size = dim(p.out_shape, u32(d));
        let k = rem % size;
        rem = rem / size;
        ia = ia + k * dim(p.a_strides, u32(d));
        ib = ib + k * dim(p.b_strides, u32(d));
    }
    out[i] = binary_fn(p.op, in0[ia], in1[ib]);
}
