// Direct NCHW convolution with zero padding and square stride; weights [c_out, c_in, kh, kw].
//
// Register blocking: every invocation computes 4 output channels × 4 neighbouring output
// pixels of one output row, so each (ci, ky, kx) tap loads 4 inputs and 4 weights for 16
// multiply-adds. Invocations are numbered (image, channel block, row, pixel block) with the
// pixel block fastest: neighbours share weights and read neighbouring inputs.
// `conv2d` handles any kernel size, stride and padding, and ragged c_out / widths; `conv3x3_s1`
// is the same blocking specialised to the 3×3 stride-1 convolutions that dominate the U-Net:
// the 4 outputs' 3 taps in a row share a window of 6 inputs, loaded once instead of 12 times.

struct Params {
    n: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    has_bias: u32,
    cblocks: u32,
    xblocks: u32,
    total: u32,
    adds: u32, // bit 0: + chan_add[image, channel]; bit 1: residual + that (a U-Net block's epilogues)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> wt: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> chan_add: array<f32>;
@group(0) @binding(6) var<storage, read> residual: array<f32>;

fn tap(row: u32, ix: i32) -> f32 {
    if (ix < 0 || ix >= i32(p.w)) {
        return 0.0;
    }
    return x[row + u32(ix)];
}

// Invocation id → its output tile (image b, first of 4 output channels co0, row oy, first of 4
// columns ox0), with columns fastest so neighbouring invocations read neighbouring pixels.
fn output_tile(id: u32) -> vec4<u32> {
    let xb = id % p.xblocks;
    var rest = id / p.xblocks;
    let oy = rest % p.oh;
    rest = rest / p.oh;
    let cb = rest % p.cblocks;
    let b = rest / p.cblocks;
    return vec4<u32>(b, cb * 4u, oy, xb * 4u);
}

@compute @workgroup_size(64)
fn conv2d(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let id = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (id >= p.total) {
        return;
    }
    let tile = output_tile(id);
    let b = tile.x;
    let co0 = tile.y;
    let oy = tile.z;
    let ox0 = tile.w;
    let taps = p.kh * p.kw;
    let wstride = p.cin * taps;
    // Clamped channel rows of the weights (ragged c_out: the extra lanes are never stored).
    let wb0 = min(co0, p.cout - 1u) * wstride;
    let wb1 = min(co0 + 1u, p.cout - 1u) * wstride;
    let wb2 = min(co0 + 2u, p.cout - 1u) * wstride;
    let wb3 = min(co0 + 3u, p.cout - 1u) * wstride;
    let s = i32(p.stride);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var ci = 0u; ci < p.cin; ci++) {
        let plane = (b * p.cin + ci) * p.h * p.w;
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = i32(oy * p.stride + ky) - i32(p.pad);
            if (iy < 0 || iy >= i32(p.h)) {
                continue;
            }
            let row = plane + u32(iy) * p.w;
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = i32(ox0 * p.stride + kx) - i32(p.pad);
                let v = vec4<f32>(tap(row, ix), tap(row, ix + s), tap(row, ix + 2 * s), tap(row, ix + 3 * s));
                let wo = ci * taps + ky * p.kw + kx;
                acc0 += v * wt[wb0 + wo];
                acc1 += v * wt[wb1 + wo];
                acc2 += v * wt[wb2 + wo];
                acc3 += v * wt[wb3 + wo];
            }
        }
    }
    store(b, co0, oy, ox0, array<vec4<f32>, 4>(acc0, acc1, acc2, acc3));
}

fn store(b: u32, co0: u32, oy: u32, ox0: u32, accs: array<vec4<f32>, 4>) {
    for (var j = 0u; j < 4u; j++) {
        let co = co0 + j;
        if (co >= p.cout) {
            break;
        }
        var bv = 0.0;
        if (p.has_bias != 0u) {
            bv = bias[co];
        }
        let orow = ((b * p.cout + co) * p.oh + oy) * p.ow;
        for (var q = 0u; q < 4u; q++) {
            let ox = ox0 + q;
            if (ox < p.ow) {
                // The sums of the separate ops, in their order.
                var v = accs[j][q] + bv;
                if ((p.adds & 1u) != 0u) {
                    v += chan_add[b * p.cout + co];
                }
                if ((p.adds & 2u) != 0u) {
                    v = residual[orow + ox] + v;
                }
                out[orow + ox] = v;
            }
        }
    }
}

@compute @workgroup_size(64)
fn conv3x3_s1(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let id = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (id >= p.total) {
        return;
    }
    let tile = output_tile(id);
    let b = tile.x;
    let co0 = tile.y;
    let oy = tile.z;
    let ox0 = tile.w;
    let wstride = p.cin * 9u;
    let wb0 = min(co0, p.cout - 1u) * wstride;
    let wb1 = min(co0 + 1u, p.cout - 1u) * wstride;
    let wb2 = min(co0 + 2u, p.cout - 1u) * wstride;
    let wb3 = min(co0 + 3u, p.cout - 1u) * wstride;
    let ix = i32(ox0) - i32(p.pad);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var ci = 0u; ci < p.cin; ci++) {
        let plane = (b * p.cin + ci) * p.h * p.w;
        for (var ky = 0u; ky < 3u; ky++) {
            let iy = i32(oy + ky) - i32(p.pad);
            if (iy < 0 || iy >= i32(p.h)) {
                continue;
            }
            let row = plane + u32(iy) * p.w;
            let v0 = tap(row, ix);
            let v1 = tap(row, ix + 1);
            let v2 = tap(row, ix + 2);
            let v3 = tap(row, ix + 3);
            let v4 = tap(row, ix + 4);
            let v5 = tap(row, ix + 5);
            let l = vec4<f32>(v0, v1, v2, v3);
            let m = vec4<f32>(v1, v2, v3, v4);
            let r = vec4<f32>(v2, v3, v4, v5);
            let wo = ci * 9u + ky * 3u;
            acc0 += l * wt[wb0 + wo] + m * wt[wb0 + wo + 1u] + r * wt[wb0 + wo + 2u];
            acc1 += l * wt[wb1 + wo] + m * wt[wb1 + wo + 1u] + r * wt[wb1 + wo + 2u];
            acc2 += l * wt[wb2 + wo] + m * wt[wb2 + wo + 1u] + r * wt[wb2 + wo + 2u];
            acc3 += l * wt[wb3 + wo] + m * wt[wb3 + wo + 1u] + r * wt[wb3 + wo + 2u];
        }
    }
    store(b, co0, oy, ox0, array<vec4<f32>, 4>(acc0, acc1, acc2, acc3));
}
