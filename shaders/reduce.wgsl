// Reductions that end in one small readback: the adaptive solver's scaled RMS error and the
// all-finite check. Stage 1 (`*_partial`): a grid-stride loop per invocation and a tree
// reduction per workgroup write one partial per workgroup. Stage 2 (`finish_*`): one workgroup
// sums the partials and writes the result to out[0].

struct Params {
    len: u32,     // elements (stage 1) or partials (stage 2)
    count: u32,   // stage 2 of the RMS: elements of the original tensor
    rtol: f32,
    atol: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> in0: array<f32>;
@group(0) @binding(3) var<storage, read> in1: array<f32>;
@group(0) @binding(4) var<storage, read> in2: array<f32>;

// `WG`, `red` and `reduce` come from workgroup_reduce.wgsl.

// Σ (err / (atol + rtol·max(|x_old|, |x_new|)))²; in0 = err, in1 = x_old, in2 = x_new.
@compute @workgroup_size(256)
fn rms_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let stride = nwg.x * WG;
    var s = 0.0;
    for (var i = wid.x * WG + lid; i < p.len; i += stride) {
        let sc = p.atol + p.rtol * max(abs(in1[i]), abs(in2[i]));
        let r = in0[i] / sc;
        s += r * r;
    }
    let total = reduce(lid, s);
    if (lid == 0u) {
        out[wid.x] = total;
    }
}

// Count of non-finite values, tested on the bits (exponent all ones) because compilers may
// fold `v != v` away under fast-math assumptions.
@compute @workgroup_size(256)
fn nonfinite_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let stride = nwg.x * WG;
    var s = 0.0;
    for (var i = wid.x * WG + lid; i < p.len; i += stride) {
        if ((bitcast<u32>(in0[i]) & 0x7f800000u) == 0x7f800000u) {
            s += 1.0;
        }
    }
    let total = reduce(lid, s);
    if (lid == 0u) {
        out[wid.x] = total;
    }
}

fn sum_partials(lid: u32) -> f32 {
    var s = 0.0;
    for (var i = lid; i < p.len; i += WG) {
        s += in0[i];
    }
    return reduce(lid, s);
}

@compute @workgroup_size(256)
fn finish_rms(@builtin(local_invocation_index) lid: u32) {
    let total = sum_partials(lid);
    if (lid == 0u) {
        out[0] = sqrt(total / f32(p.count));
    }
}

@compute @workgroup_size(256)
fn finish_sum(@builtin(local_invocation_index) lid: u32) {
    let total = sum_partials(lid);
    if (lid == 0u) {
        out[0] = total;
    }
}
