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
    let ohw = p.oh * p.ow;
    let npix = p.n * ohw;
    let taps = p.kh * p.kw;
    // Staging role: pixel li % 128, input channels li / 128 + 2q of each step (q < 4).
    let sp = pix0 + li % GP;
    let sb = min(sp, npix - 1u) / ohw;
    let srem = min(sp, npix - 1u) % ohw;
    let iy0 = i32((srem / p.ow) * p.stride) - i32(p.pad);
    let ix0 = i32((srem % p.ow) * p.stride) - i32(p.pad);
    let plane = p.h * p.w;
    let xbase = sb * p.cin * plane;
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
        let iy = iy0 + i32(t / p.kw);
        let ix = ix0 + i32(t % p.kw);
        let inside = sp < npix && iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
        let at = xbase + u32(max(iy, 0)) * p.w + u32(max(ix, 0));
        for (var c0 = 0u; c0 < p.cin; c0 += GK) {
            for (var q = 0u; q < 4u; q++) {
                let kk = skk + 2u * q;
                var v = 0.0;
                if (inside && c0 + kk < p.cin) {
                    v = x[at + (c0 + kk) * plane];
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
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let pix = pix0 + tx + 32u * i;
        if (pix >= npix) {
            continue;
        }
        let b = pix / ohw;
        let rem = pix % ohw;
        for (var j = 0u; j < 4u; j++) {
            let co = co0 + ty + 8u * j;
            if (co < p.cout) {
                var bv = 0.0;
                if (p.has_bias != 0u) {
                    bv = bias[co];
                }
                out[(b * p.cout + co) * ohw + rem] = accs[i][j] + bv;
            }
        }
    }
}
