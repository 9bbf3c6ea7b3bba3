// GroupNorm over NCHW (PyTorch: biased variance, eps inside the square root) with an optional
// fused SiLU. One workgroup per (image, group): a group's channels are contiguous in NCHW, so
// the group is the flat range [g·len, (g+1)·len) with len = (c / groups)·hw. Two passes (mean,
// then centred variance) with tree reductions in workgroup memory, as the CPU kernel does in f64.

struct Params {
    c: u32,
    hw: u32,
    groups: u32,
    total_groups: u32,
    eps: f32,
    act: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;

// `WG`, `red` and `reduce` come from workgroup_reduce.wgsl.

@compute @workgroup_size(256)
fn group_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.total_groups) {
        return;
    }
    let cg = p.c / p.groups;
    let len = cg * p.hw;
    let base = g * len;
    var s = 0.0;
    for (var i = lid; i < len; i += WG) {
        s += x[base + i];
    }
    let mean = reduce(lid, s) / f32(len);
    var s2 = 0.0;
    for (var i = lid; i < len; i += WG) {
        let d = x[base + i] - mean;
        s2 += d * d;
    }
    let variance = reduce(lid, s2) / f32(len);
    let inv = 1.0 / sqrt(variance + p.eps);
    let c0 = (g % p.groups) * cg;
    for (var i = lid; i < len; i += WG) {
        let ch = c0 + i / p.hw;
        let scale = gamma[ch] * inv;
        let shift = beta[ch] - mean * scale;
        var v = x[base + i] * scale + shift;
        if (p.act == 1u) {
            v = v / (1.0 + exp(-v));
        }
        out[base + i] = v;
    }
}
