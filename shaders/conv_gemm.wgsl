// Implicit-GEMM convolution, appended to conv2d.wgsl (its Params and bindings) by the pipeline
// cache. A file of its own because only native builds carry it: the browser build runs no
// tuner, and untuned convolutions run conv2d.wgsl's direct kernels (ConvVariant::default_for),
// so these 0.7 KB of gzip would be dead weight in a bundle held to 300,000 B.
//
// Implicit GEMM (`conv_gemm`), for GPUs with fast workgroup memory: the convolution as a matrix
// product out[pixel, co] = Σ_k patch[pixel, k] · w[co, k] over k = (tap, ci), without an im2col
// buffer. A workgroup of 256 computes 128 output pixels (flattened over images and rows) × 32
// output channels, staging 8 input channels of one tap at a time: the tap's (ky, kx) and each
// pixel's padded bounds are fixed for the step, so staging costs no division. 32 channels per
// tile fit the 24- and 48-channel U-Net layers at 75% (64 would fit 24 at 37%).
// Invocation (tx = li % 32, ty = li / 32) owns pixels tx + 32i and channels ty + 8j (i, j < 4):
// a warp reads 32 consecutive staged pixels (no bank conflict) and one broadcast channel value,
// and stores 32 consecutive pixels of a channel plane (coalesced).
const GP: u32 = 128u;  // output pixels per workgroup
const GC: u32 = 32u;   // output channels per workgroup
const GK: u32 = 8u;    // input channels staged per step
const GCP: u32 = 33u;  // staged channel pitch: 32 + 1

var<workgroup> gx: array<f32, 1024>;  // GK · GP: gx[kk * GP + pixel]
var<workgroup> gw: array<f32, 264>;   // GK · GCP: gw[kk * GCP + channel]

// Where the staging invocation of output pixel `sp` (flattened over images) reads: its top-left
// tap's input row and column (padding subtracted) and its image's first input value; `valid` is
// false past the last pixel (that lane stages zeros).
struct PixelSource {
    iy0: i32,
    ix0: i32,
    image: u32,
    valid: bool,
}

fn pixel_source(sp: u32) -> PixelSource {
    let ohw = p.oh * p.ow;
    let npix = p.n * ohw;
    let rem = min(sp, npix - 1u) % ohw;
    let image = (min(sp, npix - 1u) / ohw) * p.cin * p.h * p.w;
    return PixelSource(i32((rem / p.ow) * p.stride) - i32(p.pad), i32((rem % p.ow) * p.stride) - i32(p.pad), image,
                       sp < npix);
}

// Input channel 0's offset of tap t for `s`, or -1 where the tap falls in the zero padding.
fn tap_offset(s: PixelSource, t: u32) -> i32 {
    let iy = s.iy0 + i32(t / p.kw);
    let ix = s.ix0 + i32(t % p.kw);
    if (!s.valid || iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) {
        return -1;
    }
    return i32(s.image + u32(iy) * p.w + u32(ix));
}

@compute @workgroup_size(256)
fn conv_gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    // Uniform across the workgroup: every invocation returns or none does (the barriers below).
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= p.total) {
        return;
    }
    let co0 = (tile % p.cblocks) * GC;
    let pix0 = (tile / p.cblocks) * GP;
    let taps = p.kh * p.kw;
    // Staging role: pixel li % 128, input channels li / 128 + 2q of each step (q < 4).
    let src = pixel_source(pix0 + li % GP);
    let plane = p.h * p.w;
    let skk = li / GP;
    // Weight staging: channel li / 8, input channel li % 8 of the step.
    let wc = co0 + li / GK;
    let wkk = li % GK;
    let tx = li % 32u;
    let ty = li / 32u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var t = 0u; t < taps; t++) {
        let at = tap_offset(src, t);
        for (var c0 = 0u; c0 < p.cin; c0 += GK) {
            for (var q = 0u; q < 4u; q++) {
                let kk = skk + 2u * q;
                var v = 0.0;
                if (at >= 0 && c0 + kk < p.cin) {
                    v = x[u32(at) + (c0 + kk) * plane];
                }
                gx[kk * GP + li % GP] = v;
            }
            var wv = 0.0;
            if (wc < p.cout && c0 + wkk < p.cin) {
                wv = wt[(wc * p.cin + c0 + wkk) * taps + t];
            }
            gw[wkk * GCP + li / GK] = wv;
            workgroupBarrier();
            for (var kk = 0u; kk < GK; kk++) {
                let b = vec4<f32>(gw[kk * GCP + ty], gw[kk * GCP + ty + 8u], gw[kk * GCP + ty + 16u],
                                  gw[kk * GCP + ty + 24u]);
                acc0 += gx[kk * GP + tx] * b;
                acc1 += gx[kk * GP + tx + 32u] * b;
                acc2 += gx[kk * GP + tx + 64u] * b;
                acc3 += gx[kk * GP + tx + 96u] * b;
            }
            workgroupBarrier();
        }
    }
    // Constant indices only (matmul.wgsl's store says why).
    gemm_store_pixel(pix0 + tx, co0 + ty, 8u, acc0);
    gemm_store_pixel(pix0 + tx + 32u, co0 + ty, 8u, acc1);
    gemm_store_pixel(pix0 + tx + 64u, co0 + ty, 8u, acc2);
    gemm_store_pixel(pix0 + tx + 96u, co0 + ty, 8u, acc3);
}

// Output pixel `pix` (flattened over images) of channels co, co + step, co + 2·step, co + 3·step.
fn gemm_store_pixel(pix: u32, co: u32, step: u32, v: vec4<f32>) {
    let ohw = p.oh * p.ow;
    if (pix >= p.n * ohw) {
        return;
    }
    let at = (pix / ohw) * p.cout * ohw + pix % ohw;
    gemm_store_one(at, co, v.x);
    gemm_store_one(at, co + step, v.y);
    gemm_store_one(at, co + 2u * step, v.z);
    gemm_store_one(at, co + 3u * step, v.w);
}

fn gemm_store_one(at: u32, co: u32, v: f32) {
    if (co >= p.cout) {
        return;
    }
    var bv = 0.0;
    if (p.has_bias != 0u) {
        bv = bias[co];
    }
    out[at + co * p.oh * p.ow] = v + bv;
}

// `conv_gemm_wide`: 256 output pixels × 32 channels per workgroup, 8 pixels × 4 channels per
// invocation read from workgroup memory as vec4s (two pixel quads 128 apart and one channel
// quad), so a step of one input channel is 3 workgroup loads for 32 multiply-adds instead of 8
// for 16: linear_tiled128's shape, for layers with pixels enough to fill the GPU.
const WP: u32 = 256u;  // output pixels per workgroup

var<workgroup> wx: array<vec4<f32>, 512>;  // GK · 64 quads: wx[kk * 64 + pixel / 4][pixel % 4]
var<workgroup> ww: array<vec4<f32>, 64>;   // GK · 8 quads: ww[kk * 8 + channel / 4][channel % 4]

@compute @workgroup_size(256)
fn conv_gemm_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    // Uniform across the workgroup: every invocation returns or none does (the barriers below).
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= p.total) {
        return;
    }
    let co0 = (tile % p.cblocks) * GC;
    let pix0 = (tile / p.cblocks) * WP;
    let taps = p.kh * p.kw;
    // Staging role: pixel li, the step's 8 input channels; weights: channel li / 8, input li % 8.
    let src = pixel_source(pix0 + li);
    let plane = p.h * p.w;
    let wc = li / GK;
    let wkk = li % GK;
    let tx = li % 32u;
    let ty = li / 32u;
    var acc: array<vec4<f32>, 8>;  // acc[i]: pixel 4tx + i (i ≥ 4: 124 + 4tx + i), channels 4ty..
    for (var t = 0u; t < taps; t++) {
        let at = tap_offset(src, t);
        for (var c0 = 0u; c0 < p.cin; c0 += GK) {
            for (var q = 0u; q < GK; q++) {
                var v = 0.0;
                if (at >= 0 && c0 + q < p.cin) {
                    v = x[u32(at) + (c0 + q) * plane];
                }
                wx[q * 64u + li / 4u][li % 4u] = v;
            }
            var wv = 0.0;
            if (co0 + wc < p.cout && c0 + wkk < p.cin) {
                wv = wt[((co0 + wc) * p.cin + c0 + wkk) * taps + t];
            }
            ww[wkk * 8u + wc / 4u][wc % 4u] = wv;
            workgroupBarrier();
            for (var kk = 0u; kk < GK; kk++) {
                let a0 = wx[kk * 64u + tx];
                let a1 = wx[kk * 64u + 32u + tx];
                let b = ww[kk * 8u + ty];
                acc[0] += a0.x * b;
                acc[1] += a0.y * b;
                acc[2] += a0.z * b;
                acc[3] += a0.w * b;
                acc[4] += a1.x * b;
                acc[5] += a1.y * b;
                acc[6] += a1.z * b;
                acc[7] += a1.w * b;
            }
            workgroupBarrier();
        }
    }
    let p0 = pix0 + 4u * tx;
    let c = co0 + 4u * ty;
    gemm_store_pixel(p0, c, 1u, acc[0]);
    gemm_store_pixel(p0 + 1u, c, 1u, acc[1]);
    gemm_store_pixel(p0 + 2u, c, 1u, acc[2]);
    gemm_store_pixel(p0 + 3u, c, 1u, acc[3]);
    gemm_store_pixel(p0 + 128u, c, 1u, acc[4]);
    gemm_store_pixel(p0 + 129u, c, 1u, acc[5]);
    gemm_store_pixel(p0 + 130u, c, 1u, acc[6]);
    gemm_store_pixel(p0 + 131u, c, 1u, acc[7]);
}
