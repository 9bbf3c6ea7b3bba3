// Philox4x32-10 + Box–Muller, the WGSL twin of `src/rng.rs` (see its module docs for the spec).
// One invocation per Philox block of 4 normals; the output range may start and end mid-block.
// 64-bit block numbers are carried as (lo, hi) u32 pairs; the 32×32→64 products are built from
// 16-bit halves because WGSL has no 64-bit integers.
// Outputs are written as u32 bit patterns (normals through bitcast) so that one binding type
// serves both entry points.

struct Params {
    key0: u32,
    key1: u32,
    stream: u32,
    lane0: u32,      // start index mod 4
    block_lo: u32,   // start index / 4
    block_hi: u32,
    len: u32,        // outputs to write
    blocks: u32,     // invocations with work
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

const M0: u32 = 0xD2511F53u;
const M1: u32 = 0xCD9E8D57u;
const W0: u32 = 0x9E3779B9u;
const W1: u32 = 0xBB67AE85u;
const INV_2_24: f32 = 5.9604645e-8;  // 2^-24, exact
const TAU: f32 = 6.2831855;          // std::f32::consts::TAU

fn mulhi(a: u32, b: u32) -> u32 {
    let al = a & 0xffffu;
    let ah = a >> 16u;
    let bl = b & 0xffffu;
    let bh = b >> 16u;
    let ll = al * bl;
    let hl = ah * bl;
    let lh = al * bh;
    let hh = ah * bh;
    // Cannot overflow: lh ≤ (2^16-1)^2 and the two added terms are < 2^16 each.
    let cross = (ll >> 16u) + (hl & 0xffffu) + lh;
    return hh + (hl >> 16u) + (cross >> 16u);
}

fn philox(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        if (r > 0u) {
            k = k + vec2<u32>(W0, W1);
        }
        let hi0 = mulhi(M0, c.x);
        let lo0 = M0 * c.x;
        let hi1 = mulhi(M1, c.z);
        let lo1 = M1 * c.z;
        c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

fn block_words(j: u32) -> vec4<u32> {
    let lo = p.block_lo + j;
    let hi = p.block_hi + select(0u, 1u, lo < j);  // carry
    return philox(vec4<u32>(lo, hi, p.stream, 0u), vec2<u32>(p.key0, p.key1));
}

// ln(u) for normal u > 0, accurate to about an ulp; written operation for operation as
// `rng::ln_f32` so the CPU and this shader round alike (bit-identical on lavapipe). The device `log` is only specified to an
// absolute error of ~2^-21 (lavapipe's differs from Rust's by ~1e-7), and sqrt(-2 ln u) turns
// that into absolute errors of ~1e-5 for u near 1 (small radii). Here: u = 2^e·m with
// m ∈ [√½, √2), ln m = 2·atanh(s), s = (m-1)/(m+1), |s| ≤ 0.172, by its odd series to s^13;
// ln 2 is split so that e·ln2_hi is exact.
fn ln_accurate(u: f32) -> f32 {
    let bits = bitcast<u32>(u);
    var e = i32((bits >> 23u) & 0xffu) - 127;
    var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u);
    if (m > 1.4142135) {
        m = m * 0.5;
        e = e + 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let poly = s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0))))));
    let fe = f32(e);
    return fe * 0.693145751953125 + (fe * 1.4286068e-6 + 2.0 * (s + s * poly));
}

// sincos_accurate(θ): shaders/sincos.wgsl, prepended by the pipeline cache.

fn box_muller(ra: u32, rb: u32) -> vec2<f32> {
    let u1 = f32((ra >> 8u) + 1u) * INV_2_24;
    let u2 = f32(rb >> 8u) * INV_2_24;
    let r = sqrt(-2.0 * ln_accurate(u1));
    let theta = TAU * u2;
    return r * sincos_accurate(theta);
}

@compute @workgroup_size(64)
fn normal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let j = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (j >= p.blocks) {
        return;
    }
    let r = block_words(j);
    let ab = box_muller(r.x, r.y);
    let cd = box_muller(r.z, r.w);
    let v = array<f32, 4>(ab.x, ab.y, cd.x, cd.y);
    for (var q = 0u; q < 4u; q++) {
        // Output index of lane q of block j (blocks start at the block holding the first index).
        let e = i32(4u * j + q) - i32(p.lane0);
        if (e >= 0 && u32(e) < p.len) {
            out[u32(e)] = bitcast<u32>(v[q]);
        }
    }
}

// Raw Philox words of blocks block..block+blocks (4 per block): the bit-exactness test hook.
@compute @workgroup_size(64)
fn philox_words(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let j = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (j >= p.blocks) {
        return;
    }
    let r = block_words(j);
    out[4u * j] = r.x;
    out[4u * j + 1u] = r.y;
    out[4u * j + 2u] = r.z;
    out[4u * j + 3u] = r.w;
}
