// The adapter's fp32 arithmetic peak, for the benchmark (`pushforward bench gpu`): every
// invocation runs 8 independent vec4 multiply-add chains for `p.iters` steps, enough chains
// to hide the FMA latency on any GPU, with nothing read from memory inside the loop. Each step
// of a chain, acc = acc·m + c, contracts towards c/(1 − m), so the values stay finite for any
// length and the test can check the result against the closed form.

struct Params {
    len: u32,    // invocations (one output each)
    iters: u32,  // steps per chain
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn fma_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.len) {
        return;
    }
    // Start values that differ per invocation, so no chain can be folded into another.
    let s = f32(i % 1024u) * (1.0 / 1024.0);
    let m = vec4<f32>(0.999, 0.998, 0.997, 0.996);
    let c = vec4<f32>(1e-3, 2e-3, 3e-3, 4e-3);
    var a0 = vec4<f32>(s); var a1 = vec4<f32>(s + 1.0); var a2 = vec4<f32>(s + 2.0); var a3 = vec4<f32>(s + 3.0);
    var a4 = vec4<f32>(s + 4.0); var a5 = vec4<f32>(s + 5.0); var a6 = vec4<f32>(s + 6.0); var a7 = vec4<f32>(s + 7.0);
    for (var k = 0u; k < p.iters; k++) {
        a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
        a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
    }
    let t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    out[i] = t.x + t.y + t.z + t.w;
}
