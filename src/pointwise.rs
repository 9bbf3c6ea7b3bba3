//! The pointwise op vocabulary (`UnaryOp`, `BinaryOp`, the host kernels) lives in the kernels
//! crate (`kernels/src/pointwise.rs`) and is re-exported here; this module adds the broadcast
//! shape rule with its typed error.

use crate::error::{Error, Result};
pub use pushforward_kernels::pointwise::*;

/// `v` limited to `[lo, hi]` (NaN stays NaN), as `f32::clamp`/`f64::clamp` but without its check that
/// `lo ≤ hi`, whose panic message formats floats and so compiles core's float formatting
/// (~8 KB gzipped) into the browser build.
pub fn clamp<T: PartialOrd>(v: T, lo: T, hi: T) -> T {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// The broadcast shape of `a` and `b` (NumPy rules: align trailing dimensions; each pair equal
/// or one of them 1), or a shape error.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    if rank > MAX_RANK {
        return Err(Error::Shape {
            op: "broadcast",
            detail: format!("{a:?} and {b:?}: more than {MAX_RANK} dimensions"),
        });
    }
    let dim = |s: &[usize], i: usize| if i + s.len() < rank { 1 } else { s[i + s.len() - rank] };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(Error::Shape { op: "broadcast", detail: format!("{a:?} and {b:?} do not broadcast") }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast(&[4, 1, 3], &[2, 1]).unwrap(), vec![4, 2, 3]);
        assert_eq!(broadcast(&[], &[5]).unwrap(), vec![5]);
        assert!(broadcast(&[3], &[4]).is_err());
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // [2, 3]
        let b = [10.0, 20.0]; // [2, 1]
        let mut out = [0.0; 6];
        binary(BinaryOp::Add, &a, &[2, 3], &b, &[2, 1], &[2, 3], &mut out);
        assert_eq!(out, [10.0, 11.0, 12.0, 23.0, 24.0, 25.0]);
        let c = [1.0, 2.0, 3.0]; // [3]
        binary(BinaryOp::Mul, &a, &[2, 3], &c, &[3], &[2, 3], &mut out);
        assert_eq!(out, [0.0, 2.0, 6.0, 3.0, 8.0, 15.0]);
        // Every broadcast pattern against an element-by-element reference.
        let shapes: [(&[usize], &[usize]); 8] = [
            (&[2, 3, 4, 5], &[3, 1, 1]),
            (&[2, 3, 4, 5], &[1, 3, 4, 1]),
            (&[2, 1, 4, 5], &[2, 3, 1, 1]),
            (&[5], &[2, 3, 1]),
            (&[1], &[2, 2]),
            (&[2, 3, 4], &[2, 3, 4]),
            (&[4, 1], &[1, 4]),
            (&[2, 1, 3], &[1, 1, 3]),
        ];
        for (sa, sb) in shapes {
            let out_shape = broadcast(sa, sb).unwrap();
            let n: usize = out_shape.iter().product();
            let a: Vec<f32> = (0..sa.iter().product::<usize>()).map(|v| v as f32 * 0.5 + 1.0).collect();
            let b: Vec<f32> = (0..sb.iter().product::<usize>()).map(|v| v as f32 * 0.25 - 3.0).collect();
            let mut got = vec![0.0; n];
            binary(BinaryOp::Sub, &a, sa, &b, sb, &out_shape, &mut got);
            let (ta, tb) = (broadcast_strides(sa, &out_shape), broadcast_strides(sb, &out_shape));
            for (flat, g) in got.iter().enumerate() {
                let (mut rem, mut ia, mut ib) = (flat, 0, 0);
                for d in (0..out_shape.len()).rev() {
                    let i = rem % out_shape[d];
                    rem /= out_shape[d];
                    ia += i * ta[d];
                    ib += i * tb[d];
                }
                assert_eq!(*g, a[ia] - b[ib], "{sa:?} ∘ {sb:?} at {flat}");
            }
        }
    }
}
