// Fused linear layer: out[n, m] = act(x[n, k] · w[m, k]ᵀ + bias[m]) (PyTorch `Linear` layout).
// Two variants, chosen per adapter and shape class by the tuner (src/gpu/tuning.rs):
//
// Register blocking (`linear_k4`, `linear_any`): every invocation computes a 4×4 block of `out`
// (4 rows of x against 4 rows of w) straight from global memory, so each k-step loads 8 values
// and does 16 multiply-adds. On software adapters (lavapipe, SwiftShader) this beat shared-memory
// tiling by ~10× (see BENCHMARKS.md), because workgroup memory and barriers are emulated and
// registers are not.
//
// Workgroup tiling (`linear_tiled`): a 16×16 workgroup computes a 64×64 patch of `out`, staging
// 64 rows of x and 64 rows of w, 16 along k at a time, in workgroup memory, so every global
// value is read once per workgroup instead of once per invocation — what real GPUs need.
// `linear_tiled128` (k % 4 == 0): the same with 128×128 patches and 8×8 outputs per
// invocation, read from workgroup memory as vec4s: 64 multiply-adds per 4 workgroup loads
// instead of 16 per 8, for GPUs whose shared-memory bandwidth, not arithmetic, bounds the 64×64
// tile.
//
// `x` and `w` are bound as vec4 arrays. `linear_k4` (k % 4 == 0) reads whole vec4s along k;
// `linear_any` reads single elements through `elem()` so any k works (the MLP's first layer has
// k = 34). Out-of-range rows/columns are clamped for loads and skipped for stores.
//
// Workgroups are numbered flat over a 2-D dispatch grid (wid.x + wid.y·nwg.x) so that more than
// 65535 workgroups can be launched.

struct Params {
    n: u32,
    k: u32,
    m: u32,
    tiles_m: u32,
    tiles_n: u32,
    has_bias: u32,
    act: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

const WG: u32 = 8u;   // invocations per side of a workgroup
const BLK: u32 = 4u;  // rows/columns per invocation

fn xe(i: u32) -> f32 {
    return x[i >> 2u][i & 3u];
}

fn we(i: u32) -> f32 {
    return w[i >> 2u][i & 3u];
}

// The epilogue: bias, activation and the store of one output, skipped outside [n, m].
fn store_one(r: u32, c: u32, acc: f32) {
    if (r >= p.n || c >= p.m) {
        return;
    }
    var v = acc;
    if (p.has_bias != 0u) {
        v += bias[c];
    }
    if (p.act == 1u) {
        v = v / (1.0 + exp(-v));
    }
    out[r * p.m + c] = v;
}

// Constant indices only: NVIDIA's compiler (driver 580) keeps an array indexed in a loop in
// local memory; linear_tiled128 storing through such a loop ran at 34% of the H200's peak at
// 65536×256×256, unrolled at 50%.
fn store(r0: u32, c0: u32, acc: array<vec4<f32>, 4>) {
    store4(r0, c0, acc[0]);
    store4(r0 + 1u, c0, acc[1]);
    store4(r0 + 2u, c0, acc[2]);
    store4(r0 + 3u, c0, acc[3]);
}

fn store4(r: u32, c: u32, v: vec4<f32>) {
    store_one(r, c, v.x);
    store_one(r, c + 1u, v.y);
    store_one(r, c + 2u, v.z);
    store_one(r, c + 3u, v.w);
}

// First output row and column of this invocation's BLK×BLK block: workgroup `tile` covers a
// (WG·BLK)² patch, tiles numbered row-major over the output.
fn block_origin(tile: u32, lid: vec3<u32>) -> vec2<u32> {
    return vec2<u32>(((tile / p.tiles_m) * WG + lid.y) * BLK, ((tile % p.tiles_m) * WG + lid.x) * BLK);
}

@compute @workgroup_size(8, 8)
fn linear_k4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= p.tiles_n * p.tiles_m) {
        return;
    }
    let origin = block_origin(tile, lid);
    let r0 = origin.x;
    let c0 = origin.y;
    let k4 = p.k / 4u;
    let x0 = min(r0, p.n - 1u) * k4;
    let x1 = min(r0 + 1u, p.n - 1u) * k4;
    let x2 = min(r0 + 2u, p.n - 1u) * k4;
    let x3 = min(r0 + 3u, p.n - 1u) * k4;
    let w0 = min(c0, p.m - 1u) * k4;
    let w1 = min(c0 + 1u, p.m - 1u) * k4;
    let w2 = min(c0 + 2u, p.m - 1u) * k4;
    let w3 = min(c0 + 3u, p.m - 1u) * k4;
    var acc: array<vec4<f32>, 4>;
    for (var kk = 0u; kk < k4; kk++) {
        let b0 = w[w0 + kk];
        let b1 = w[w1 + kk];
        let b2 = w[w2 + kk];
        let b3 = w[w3 + kk];
        let a0 = x[x0 + kk];
        acc[0] += vec4<f32>(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
        let a1 = x[x1 + kk];
        acc[1] += vec4<f32>(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
        let a2 = x[x2 + kk];
        acc[2] += vec4<f32>(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
        let a3 = x[x3 + kk];
        acc[3] += vec4<f32>(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
    }
    store(r0, c0, acc);
}

@compute @workgroup_size(8, 8)
fn linear_any(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= p.tiles_n * p.tiles_m) {
        return;
    }
    let origin = block_origin(tile, lid);
    let r0 = origin.x;
    let c0 = origin.y;
    let x0 = min(r0, p.n - 1u) * p.k;
    let x1 = min(r0 + 1u, p.n - 1u) * p.k;
    let x2 = min(r0 + 2u, p.n - 1u) * p.k;
    let x3 = min(r0 + 3u, p.n - 1u) * p.k;
    let w0 = min(c0, p.m - 1u) * p.k;
    let w1 = min(c0 + 1u, p.m - 1u) * p.k;
    let w2 = min(c0 + 2u, p.m - 1u) * p.k;
    let w3 = min(c0 + 3u, p.m - 1u) * p.k;
    var acc: array<vec4<f32>, 4>;
    for (var kk = 0u; kk < p.k; kk++) {
        let b = vec4<f32>(we(w0 + kk), we(w1 + kk), we(w2 + kk), we(w3 + kk));
        acc[0] += xe(x0 + kk) * b;
        acc[1] += xe(x1 + kk) * b;
        acc[2] += xe(x2 + kk) * b;
        acc[3] += xe(x3 + kk) * b;
    }
    store(r0, c0, acc);
}

const TILE: u32 = 64u;    // output rows and columns per workgroup of linear_tiled
const DEPTH: u32 = 16u;   // k values staged per step
const LDS: u32 = 65u;     // staged row pitch: 64 + 1, so the 16 k-lanes of a store hit distinct banks

// Staged operands, k-major: xs[kk * LDS + row] = x[row0 + row, k0 + kk], likewise ws for w.
var<workgroup> xs: array<f32, 1040>;  // DEPTH · LDS
var<workgroup> ws: array<f32, 1040>;

// Stages x[row0.., k0..] and w[col0.., k0..] (zero outside the matrices): 1024 values each,
// 4 per invocation; consecutive invocations read consecutive k of one row (coalesced).
fn stage(row0: u32, col0: u32, k0: u32, li: u32) {
    for (var q = 0u; q < 4u; q++) {
        let e = li + q * 256u;
        let row = e / DEPTH;
        let kk = e % DEPTH;
        let gk = k0 + kk;
        let gr = row0 + row;
        let gc = col0 + row;
        var xv = 0.0;
        if (gr < p.n && gk < p.k) {
            xv = xe(gr * p.k + gk);
        }
        var wv = 0.0;
        if (gc < p.m && gk < p.k) {
            wv = we(gc * p.k + gk);
        }
        xs[kk * LDS + row] = xv;
        ws[kk * LDS + row] = wv;
    }
}

// First output row and column of workgroup `tile`'s size × size patch (row-major over the output).
fn tile_origin(tile: u32, size: u32) -> vec2<u32> {
    return vec2<u32>((tile / p.tiles_m) * size, (tile % p.tiles_m) * size);
}

// Invocation (tx, ty) owns rows ty + 16i and columns tx + 16j (i, j < 4): interleaved rather than
// contiguous, so that the 16 invocations of a row read 16 consecutive staged columns (no bank
// conflict) and store 16 consecutive outputs (coalesced).
@compute @workgroup_size(16, 16)
fn linear_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // Uniform across the workgroup: every invocation returns or none does (the barriers below).
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= p.tiles_n * p.tiles_m) {
        return;
    }
    let origin = tile_origin(tile, TILE);
    let row0 = origin.x;
    let col0 = origin.y;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += DEPTH) {
        stage(row0, col0, k0, li);
        workgroupBarrier();
        for (var kk = 0u; kk < DEPTH; kk++) {
            let base = kk * LDS;
            let b = vec4<f32>(ws[base + lid.x], ws[base + lid.x + 16u], ws[base + lid.x + 32u], ws[base + lid.x + 48u]);
            acc[0] += xs[base + lid.y] * b;
            acc[1] += xs[base + lid.y + 16u] * b;
            acc[2] += xs[base + lid.y + 32u] * b;
            acc[3] += xs[base + lid.y + 48u] * b;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store_one(row0 + lid.y + 16u * i, col0 + lid.x + 16u * j, acc[i][j]);
        }
    }
}

const TILE128: u32 = 128u;  // output rows and columns per workgroup of linear_tiled128
const DEPTH8: u32 = 8u;     // k values staged per step
const PITCH4: u32 = 33u;    // staged row pitch in vec4s: 32 + 1, so the two halves of a warp's
                            // transposing stores (k and k + 4) land 16 banks apart

// Staged operands, k-major in quads of rows: xq[kk * PITCH4 + r / 4][r % 4] = x[row0 + r, k0 + kk].
var<workgroup> xq: array<vec4<f32>, 264>;  // DEPTH8 · PITCH4
var<workgroup> wq: array<vec4<f32>, 264>;

// Invocation (tx, ty) owns rows 4ty..4ty+3 and 64+4ty..64+4ty+3, columns 4tx..4tx+3 and
// 64+4tx..64+4tx+3: each k-step reads two vec4s of x and two of w from workgroup memory.
@compute @workgroup_size(16, 16)
fn linear_tiled128(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // Uniform across the workgroup: every invocation returns or none does (the barriers below).
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= p.tiles_n * p.tiles_m) {
        return;
    }
    let origin = tile_origin(tile, TILE128);
    let row0 = origin.x;
    let col0 = origin.y;
    // Staging: invocation li loads k0 + kh .. k0 + kh + 3 of row (and column) li / 2.
    let sr = li >> 1u;
    let kh = (li & 1u) * 4u;
    var acc: array<vec4<f32>, 16>;  // acc[2i + h]: row 4ty + i (i ≥ 4: 64 + 4ty + i - 4), column half h
    for (var k0 = 0u; k0 < p.k; k0 += DEPTH8) {
        // k % 4 == 0 here (other k run linear_tiled): a quad is in the matrix or wholly past k.
        var xv = vec4<f32>();
        var wv = vec4<f32>();
        if (row0 + sr < p.n && k0 + kh < p.k) {
            xv = x[((row0 + sr) * p.k + k0 + kh) >> 2u];
        }
        if (col0 + sr < p.m && k0 + kh < p.k) {
            wv = w[((col0 + sr) * p.k + k0 + kh) >> 2u];
        }
        for (var j = 0u; j < 4u; j++) {
            xq[(kh + j) * PITCH4 + (sr >> 2u)][sr & 3u] = xv[j];
            wq[(kh + j) * PITCH4 + (sr >> 2u)][sr & 3u] = wv[j];
        }
        workgroupBarrier();
        for (var kk = 0u; kk < DEPTH8; kk++) {
            let base = kk * PITCH4;
            let a0 = xq[base + lid.y];
            let a1 = xq[base + lid.y + 16u];
            let b0 = wq[base + lid.x];
            let b1 = wq[base + lid.x + 16u];
            // Constant indices only: a loop over i with acc[2i] made NVIDIA's compiler (driver
            // 580) keep acc in local memory, and this kernel ran at 4% of the H200's peak.
            acc[0] += a0.x * b0;
            acc[1] += a0.x * b1;
            acc[2] += a0.y * b0;
            acc[3] += a0.y * b1;
            acc[4] += a0.z * b0;
            acc[5] += a0.z * b1;
            acc[6] += a0.w * b0;
            acc[7] += a0.w * b1;
            acc[8] += a1.x * b0;
            acc[9] += a1.x * b1;
            acc[10] += a1.y * b0;
            acc[11] += a1.y * b1;
            acc[12] += a1.z * b0;
            acc[13] += a1.z * b1;
            acc[14] += a1.w * b0;
            acc[15] += a1.w * b1;
        }
        workgroupBarrier();
    }
    // 4×4 blocks: rows 4ty.. and 64 + 4ty.., columns 4tx.. and 64 + 4tx...
    let r0 = row0 + lid.y * 4u;
    let c0 = col0 + lid.x * 4u;
    store(r0, c0, array(acc[0], acc[2], acc[4], acc[6]));
    store(r0, c0 + 64u, array(acc[1], acc[3], acc[5], acc[7]));
    store(r0 + 64u, c0, array(acc[8], acc[10], acc[12], acc[14]));
    store(r0 + 64u, c0 + 64u, array(acc[9], acc[11], acc[13], acc[15]));
}
