// (cos θ, sin θ), accurate to a few 1e-8 for |θ| up to ~1e5 rad; the twin of `rng::sincos_f32`.
// Shared by rng.wgsl (Box–Muller angles in [0, 2π]) and pointwise.wgsl (Sin/Cos of time
// embeddings, up to ~1000 rad), prepended to each by the pipeline cache. Device sin/cos are only
// specified to an absolute error of 2^-11 (SwiftShader's differ from Rust's by ~1e-3, which the
// ODE then carries into the samples). Cody–Waite reduction by π/2 (the hi part 1.5703125 has 8
// significant bits, so k·hi is exact for |k| < 2^16), then Taylor series on |x| ≤ π/4.
fn sincos_accurate(theta: f32) -> vec2<f32> {
    let k = round(theta * 0.63661977);
    let x = (theta - k * 1.5703125) - k * 4.8382679e-4;
    let x2 = x * x;
    let s = x + x * x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362880.0 + x2 * (-1.0 / 39916800.0)))));
    let c = 1.0 + x2 * (-0.5 + x2 * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 + x2 * (-1.0 / 3628800.0 + x2 * (1.0 / 479001600.0))))));
    switch (i32(k) & 3) {
        case 0: { return vec2<f32>(c, s); }
        case 1: { return vec2<f32>(-s, c); }
        case 2: { return vec2<f32>(-c, -s); }
        default: { return vec2<f32>(s, -c); }
    }
}
