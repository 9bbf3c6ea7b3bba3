//! Seeded, counter-based Gaussian noise: the same `(seed, stream, index)` gives the same number
//! on every backend, in any order, on any number of threads — so a sample drawn on the CPU, in
//! wasm, or by a WGSL shader is the same — bit for bit where the device rounds `+ − × ÷ sqrt` as
//! IEEE 754 does and does not fuse `a·b + c` (so on lavapipe, tested; other GPUs within ulps).
//!
//! A counter-based generator is used instead of a stateful one because the GPU fills noise in
//! parallel: every element can be computed independently from its index, with no sequential
//! state to thread through.
//!
//! # Specification (a WGSL twin reproduces this exactly)
//!
//! **Generator.** Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy
//! as 1, 2, 3", SC 2011), exactly as in the Random123 reference implementation:
//! - constants `M0 = 0xD2511F53`, `M1 = 0xCD9E8D57` (multipliers), `W0 = 0x9E3779B9`,
//!   `W1 = 0xBB67AE85` (Weyl key increments);
//! - one round on counter `(c0, c1, c2, c3)` with key `(k0, k1)`:
//!   `(hi0, lo0) = M0 · c0` and `(hi1, lo1) = M1 · c2` (full 64-bit products split into high and
//!   low 32-bit words), new counter `= (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)`;
//! - 10 rounds; the key is bumped `k0 += W0, k1 += W1` (wrapping) *between* rounds (9 bumps, the
//!   first round uses the key as given). The output is the counter after round 10.
//!
//! **Key and counter.** For a `seed: u64`, a `stream: u32` and a flat element index `e: u64`:
//! - `key = (seed as u32, (seed >> 32) as u32)` (low word first);
//! - `block = e / 4`, `lane = e % 4`;
//! - `counter = (block as u32, (block >> 32) as u32, stream, 0)`.
//!
//! A flat noise array is sample-major: element index `e = sample · dim + coordinate`.
//!
//! **Box–Muller.** The 4 output words `r[0..4]` of one block give 4 normals: lanes `(0, 1)` use the
//! pair `(ra, rb) = (r[0], r[1])`, lanes `(2, 3)` use `(ra, rb) = (r[2], r[3])`. For a pair, in
//! `f32` arithmetic throughout:
//! - `u1 = ((ra >> 8) + 1) as f32 · 2^-24` ∈ (0, 1] (never 0, so the log is finite; exact in f32);
//! - `u2 = (rb >> 8) as f32 · 2^-24` ∈ [0, 1) (exact in f32);
//! - `r = sqrt(−2 · ln(u1))`;
//! - `θ = 2π · u2` with `2π` the f32 constant `6.2831855` (`std::f32::consts::TAU`);
//! - the even lane (0 or 2) is `r · cos(θ)`, the odd lane (1 or 3) is `r · sin(θ)`.
//!
//! `ln`, `cos` and `sin` are not the platform's (libm, the GPU's builtins, which WGSL specifies
//! only to ~2^-11 absolute) but the f32 formulas of [`ln_f32`] and [`sincos_f32`], which
//! `shaders/rng.wgsl` writes operation for operation the same way; `sqrt` is IEEE.
//!
//! With 24-bit uniforms the largest magnitude is `sqrt(2 · 24 · ln 2) ≈ 5.77`: the tails beyond
//! that (probability ≈ 8·10⁻⁹) are cut off, which is irrelevant for sampling noise.
//!
//! **Streams.** Independent uses of one seed take different `stream` values ([`STREAM_INIT`] for
//! the initial noise `x0`, [`STREAM_SDE`] for per-step noise of stochastic samplers), so they never
//! share counters.

/// Stream of the initial noise `x0` of an ODE sample.
pub const STREAM_INIT: u32 = 0;
/// Stream of per-step noise (stochastic samplers).
pub const STREAM_SDE: u32 = 1;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// 2^-24: scales a 24-bit integer into [0, 1) exactly.
const INV_2_24: f32 = 1.0 / 16_777_216.0;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

#[inline(always)]
fn round(c: [u32; 4], k: [u32; 2]) -> [u32; 4] {
    let (hi0, lo0) = mulhilo(M0, c[0]);
    let (hi1, lo1) = mulhilo(M1, c[2]);
    [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
}

/// Philox4x32-10 block function: 4 random words from a 128-bit counter and a 64-bit key.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = round(counter, key);
    let mut k = key;
    for _ in 1..10 {
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        c = round(c, k);
    }
    c
}

/// ln(u) for normal u > 0 in plain f32 operations, written exactly as `shaders/rng.wgsl`
/// writes it so both sides can round alike: u = 2^e·m, m ∈ [√½, √2), ln m = 2·atanh(s),
/// s = (m−1)/(m+1), odd series to s^13; ln 2 split so that e·ln2_hi is exact.
// The literals are spelled as in rng.wgsl (same f32 values), not as std constants.
#[allow(clippy::approx_constant, clippy::excessive_precision)]
#[inline(always)]
pub fn ln_f32(u: f32) -> f32 {
    let bits = u.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > 1.414_213_5 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let poly = s2
        * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0))))));
    let fe = e as f32;
    fe * 0.693_145_75 + (fe * 1.428_606_8e-6 + 2.0 * (s + s * poly))
}

/// (cos θ, sin θ) for θ ∈ [0, 2π], as `shaders/rng.wgsl` computes it: Cody–Waite reduction by
/// π/2 (hi part exact for k ≤ 4), Taylor series on |x| ≤ π/4.
#[allow(clippy::approx_constant, clippy::excessive_precision)]
#[inline(always)]
pub fn sincos_f32(theta: f32) -> (f32, f32) {
    let k = (theta * 0.636_619_77).round_ties_even();
    let x = (theta - k * 1.570_312_5) - k * 4.838_267_9e-4;
    let x2 = x * x;
    let s = x + x
        * x2
        * (-1.0 / 6.0
            + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362_880.0 + x2 * (-1.0 / 39_916_800.0)))));
    let c = 1.0
        + x2 * (-0.5
            + x2 * (1.0 / 24.0
                + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 + x2 * (-1.0 / 3_628_800.0 + x2 * (1.0 / 479_001_600.0))))));
    match (k as i32) & 3 {
        0 => (c, s),
        1 => (-s, c),
        2 => (-c, -s),
        _ => (s, -c),
    }
}

/// Box–Muller on one pair of words → (even lane, odd lane). See the module docs.
#[inline(always)]
fn box_muller(ra: u32, rb: u32) -> (f32, f32) {
    let u1 = ((ra >> 8) + 1) as f32 * INV_2_24;
    let u2 = (rb >> 8) as f32 * INV_2_24;
    let r = (-2.0 * ln_f32(u1)).sqrt();
    let theta = std::f32::consts::TAU * u2;
    let (c, s) = sincos_f32(theta);
    (r * c, r * s)
}

/// The 4 normals of one Philox block (elements `4·block .. 4·block + 4`).
#[inline(always)]
fn block_normals(key: [u32; 2], stream: u32, block: u64) -> [f32; 4] {
    let r = philox4x32_10([block as u32, (block >> 32) as u32, stream, 0], key);
    let (a, b) = box_muller(r[0], r[1]);
    let (c, d) = box_muller(r[2], r[3]);
    [a, b, c, d]
}

#[inline(always)]
fn key_of(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// Standard normal number `index` of stream `stream` under `seed`.
pub fn normal(seed: u64, stream: u32, index: u64) -> f32 {
    block_normals(key_of(seed), stream, index / 4)[(index % 4) as usize]
}

/// Fills `out[i] = normal(seed, stream, start_index + i)` with one Philox call per 4 outputs
/// (plus at most one partial block at each end when `start_index` or the length is not a
/// multiple of 4). Indices wrap modulo 2^64.
pub fn fill_normal(seed: u64, stream: u32, start_index: u64, out: &mut [f32]) {
    let key = key_of(seed);
    let mut idx = start_index;
    let mut rest = out;
    while !rest.is_empty() {
        let lane = (idx % 4) as usize;
        let vals = block_normals(key, stream, idx / 4);
        let take = (4 - lane).min(rest.len());
        let (head, tail) = rest.split_at_mut(take);
        head.copy_from_slice(&vals[lane..lane + take]);
        rest = tail;
        idx = idx.wrapping_add(take as u64);
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny, well-mixed 64-bit generator for seeded test
/// inputs and random weights — not the sampler's noise, which is Philox ([`normal`]). The state
/// is the field; each step adds the golden-ratio increment and mixes.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Deterministic values in [-1, 1) (xorshift64) for tests and benchmarks: quick, reproducible
/// inputs, not sampling noise (that is [`fill_normal`]).
pub fn test_values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
