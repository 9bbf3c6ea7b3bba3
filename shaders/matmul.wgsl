// Fused linear layer: out[n, m] = act(x[n, k] · w[m, k]ᵀ + bias[m]) (PyTorch `Linear` layout).
//
// Register blocking: every invocation computes a 4×4 block of `out` (4 rows of x against 4 rows
// of w), so each k-step loads 8 values and does 16 multiply-adds. On software adapters
// (lavapipe, SwiftShader) this beat shared-memory tiling by ~10× (see BENCHMARKS.md), because
// workgroup memory and barriers are emulated and registers are not.
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

fn store(r0: u32, c0: u32, acc: array<vec4<f32>, 4>) {
    for (var i = 0u; i < BLK; i++) {
        let r = r0 + i;
        if (r >= p.n) {
            return;
        }
        for (var j = 0u; j < BLK; j++) {
            let c = c0 + j;
            if (c < p.m) {
                var v = acc[i][j];
                if (p.has_bias != 0u) {
                    v += bias[c];
                }
                if (p.act == 1u) {
                    v = v / (1.0 + exp(-v));
                }
                out[r * p.m + c] = v;
            }
        }
    }
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
