//! The pointwise op vocabulary of graph networks (ONNX): unary functions and broadcasting binary
//! operators, each defined once here in f32. The CPU backend runs these definitions directly;
//! `shaders/pointwise.wgsl` mirrors them operation for operation and is tested against them.
//! The shape rule (`broadcast`, with its typed error) is the main crate's `pointwise::broadcast`.

/// Most dimensions a broadcasting binary op takes (ONNX velocity networks stay ≤ 6-D).
pub const MAX_RANK: usize = 6;

/// y = f(x), elementwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    Neg,
    Abs,
    Reciprocal,
    Sqrt,
    Exp,
    Log,
    Sin,
    Cos,
    Tanh,
    Erf,
    Sigmoid,
    Relu,
    LeakyRelu(f32),
    Elu(f32),
    Selu,
    /// x·Φ(x), with the exact erf.
    Gelu,
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    GeluTanh,
    Softplus,
    Silu,
    /// min(max(x, lo), hi).
    Clip(f32, f32),
    /// x^p for a constant p.
    PowConst(f32),
}

/// y = a ∘ b with NumPy broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
}

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;

impl UnaryOp {
    /// A stable number for the GPU's parameter block (with `param`/`param2`).
    pub fn code(self) -> u32 {
        match self {
            UnaryOp::Neg => 0,
            UnaryOp::Abs => 1,
            UnaryOp::Reciprocal => 2,
            UnaryOp::Sqrt => 3,
            UnaryOp::Exp => 4,
            UnaryOp::Log => 5,
            UnaryOp::Sin => 6,
            UnaryOp::Cos => 7,
            UnaryOp::Tanh => 8,
            UnaryOp::Erf => 9,
            UnaryOp::Sigmoid => 10,
            UnaryOp::Relu => 11,
            UnaryOp::LeakyRelu(_) => 12,
            UnaryOp::Elu(_) => 13,
            UnaryOp::Selu => 14,
            UnaryOp::Gelu => 15,
            UnaryOp::GeluTanh => 16,
            UnaryOp::Softplus => 17,
            UnaryOp::Silu => 18,
            UnaryOp::Clip(..) => 19,
            UnaryOp::PowConst(_) => 20,
        }
    }

    /// The op's constant parameters (alpha, bounds, exponent), 0 where none.
    pub fn params(self) -> [f32; 2] {
        match self {
            UnaryOp::LeakyRelu(a) | UnaryOp::Elu(a) | UnaryOp::PowConst(a) => [a, 0.0],
            UnaryOp::Clip(lo, hi) => [lo, hi],
            _ => [0.0, 0.0],
        }
    }

    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Reciprocal => 1.0 / x,
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sin => super::trig::sin(x),
            UnaryOp::Cos => super::trig::cos(x),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Erf => erf(x),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Relu => x.max(0.0),
            UnaryOp::LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            UnaryOp::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
            UnaryOp::Selu => SELU_SCALE * if x > 0.0 { x } else { SELU_ALPHA * x.exp_m1() },
            UnaryOp::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            UnaryOp::GeluTanh => {
                let k = (2.0 / std::f32::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044_715 * x * x * x)).tanh())
            }
            // log(1 + e^x) without overflow for large x.
            UnaryOp::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            UnaryOp::Silu => x * sigmoid(x),
            UnaryOp::Clip(lo, hi) => x.max(lo).min(hi),
            UnaryOp::PowConst(p) => pow(x, p),
        }
    }
}

impl BinaryOp {
    pub fn code(self) -> u32 {
        match self {
            BinaryOp::Add => 0,
            BinaryOp::Sub => 1,
            BinaryOp::Mul => 2,
            BinaryOp::Div => 3,
            BinaryOp::Pow => 4,
            BinaryOp::Max => 5,
            BinaryOp::Min => 6,
        }
    }

    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => pow(a, b),
            BinaryOp::Max => a.max(b),
            BinaryOp::Min => a.min(b),
        }
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    // Both branches avoid exp overflow.
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// x^p with the integer-exponent cases exact (x² is the common one: variance in layer norms).
#[inline]
fn pow(x: f32, p: f32) -> f32 {
    if p == 2.0 {
        x * x
    } else if p == 1.0 {
        x
    } else if p == 0.5 {
        x.sqrt()
    } else {
        x.powf(p)
    }
}

/// erf(x) to ~1e-7 absolute: the Maclaurin series below 0.5 (first omitted term < 2e-8), and
/// above it 1 − erfc with the Numerical Recipes Chebyshev fit of erfc (fractional error
/// < 1.2e-7), in f64. `shaders/pointwise.wgsl` uses the same two formulas.
pub fn erf(x: f32) -> f32 {
    let x = x as f64;
    let a = x.abs();
    let r = if a < 0.5 {
        let z = x * x;
        let series =
            1.0 - z / 3.0 + z * z / 10.0 - z * z * z / 42.0 + z * z * z * z / 216.0 - z * z * z * z * z / 1320.0;
        return (std::f64::consts::FRAC_2_SQRT_PI * x * series) as f32;
    } else {
        let t = 1.0 / (1.0 + 0.5 * a);
        let poly = -1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
        1.0 - t * (-a * a + poly).exp()
    };
    (if x < 0.0 { -r } else { r }) as f32
}

/// Element strides of `shape` read as `out`'s shape (0 along broadcast dimensions), padded to
/// `out.len()` dimensions.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let mut strides = vec![0; rank];
    let mut step = 1;
    for i in (0..shape.len()).rev() {
        let o = i + rank - shape.len();
        strides[o] = if shape[i] == 1 { 0 } else { step };
        step *= shape[i];
    }
    strides
}

/// `out[i] = op(x[i])`, on the host (the CPU kernel).
pub fn unary(op: UnaryOp, x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = op.apply(v);
    }
}

/// `a ∘ b` broadcast to `out_shape`, on the host (the CPU kernel; also the graph folder's).
pub fn binary(
    op: BinaryOp,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out_shape: &[usize],
    out: &mut [f32],
) {
    if a_shape == out_shape && b_shape == out_shape {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = op.apply(x, y);
        }
        return;
    }
    if b.len() == 1 && a_shape == out_shape {
        let y = b[0];
        for (o, &x) in out.iter_mut().zip(a) {
            *o = op.apply(x, y);
        }
        return;
    }
    let (sa, sb) = (broadcast_strides(a_shape, out_shape), broadcast_strides(b_shape, out_shape));
    let rank = out_shape.len();
    // The longest trailing block over which each input is contiguous (its strides those of the
    // output) or constant (strides 0): a per-channel bias [C, 1, 1] on [n, C, H, W] is constant
    // over H·W. The block runs as a plain loop; the dimensions before it as an odometer.
    let mut out_st = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        out_st[d] = out_st[d + 1] * out_shape[d + 1];
    }
    let mode = |s: &[usize], d: usize| {
        if s[d] == 0 || out_shape[d] == 1 {
            Some(false)
        } else if s[d] == out_st[d] {
            Some(true)
        } else {
            None
        }
    };
    let (mut k, mut ma, mut mb) = (rank, None::<bool>, None::<bool>);
    while k > 0 {
        let d = k - 1;
        let (Some(a_c), Some(b_c)) = (mode(&sa, d), mode(&sb, d)) else { break };
        // A size-1 dimension fits either mode.
        let a_c = if out_shape[d] == 1 { ma.unwrap_or(a_c) } else { a_c };
        let b_c = if out_shape[d] == 1 { mb.unwrap_or(b_c) } else { b_c };
        if ma.is_some_and(|m| m != a_c) || mb.is_some_and(|m| m != b_c) {
            break;
        }
        (ma, mb) = (Some(a_c), Some(b_c));
        k -= 1;
    }
    let inner: usize = out_shape[k..].iter().product();
    let (a_contig, b_contig) = (ma.unwrap_or(true), mb.unwrap_or(true));
    let mut idx = vec![0usize; k];
    let (mut ia, mut ib) = (0usize, 0usize);
    for block in out.chunks_mut(inner.max(1)) {
        match (a_contig, b_contig) {
            (true, true) => block.iter_mut().zip(&a[ia..]).zip(&b[ib..]).for_each(|((o, &x), &y)| *o = op.apply(x, y)),
            (true, false) => {
                let y = b[ib];
                block.iter_mut().zip(&a[ia..]).for_each(|(o, &x)| *o = op.apply(x, y));
            }
            (false, true) => {
                let x = a[ia];
                block.iter_mut().zip(&b[ib..]).for_each(|(o, &y)| *o = op.apply(x, y));
            }
            (false, false) => {
                let v = op.apply(a[ia], b[ib]);
                block.iter_mut().for_each(|o| *o = v);
            }
        }
        // Odometer over the outer dimensions, keeping the two input offsets in step.
        for d in (0..k).rev() {
            idx[d] += 1;
            ia += sa[d];
            ib += sb[d];
            if idx[d] < out_shape[d] {
                break;
            }
            ia -= sa[d] * out_shape[d];
            ib -= sb[d] * out_shape[d];
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::excessive_precision)] // the table's digits, as printed
    fn erf_matches_known_values() {
        // Values from Abramowitz & Stegun table 7.1 (and erf(∞) = 1).
        for (x, want) in [
            (0.0, 0.0),
            (0.1, 0.112_462_916),
            (0.5, 0.520_499_878),
            (1.0, 0.842_700_793),
            (2.0, 0.995_322_265),
            (3.5, 0.999_999_257),
            (6.0, 1.0),
        ] {
            for s in [1.0f32, -1.0] {
                let got = erf(s * x);
                assert!((got - s * want).abs() < 2e-7, "erf({}) = {got}, want {}", s * x, s * want);
            }
        }
    }

    #[test]
    fn selu_gelu_softplus_match_their_definitions() {
        assert!((UnaryOp::Selu.apply(-1.0) - 1.050_701 * 1.673_263_2 * ((-1.0f32).exp() - 1.0)).abs() < 1e-6);
        assert!((UnaryOp::Gelu.apply(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((UnaryOp::Softplus.apply(100.0) - 100.0).abs() < 1e-5);
        assert!((UnaryOp::Softplus.apply(0.0) - std::f32::consts::LN_2).abs() < 1e-7);
        assert_eq!(UnaryOp::Sigmoid.apply(-1000.0), 0.0);
    }
}
