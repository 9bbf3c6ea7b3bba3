//! 2-D convolution, NCHW, weights [c_out, c_in, kh, kw] (PyTorch's `nn.Conv2d` layout).

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dShape {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Conv2dShape {
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.kw) / self.stride + 1
    }
    pub fn out_len(&self) -> usize {
        self.batch * self.c_out * self.out_h() * self.out_w()
    }
    /// Multiply-adds × 2.
    pub fn flops(&self) -> f64 {
        2.0 * (self.out_len() * self.c_in * self.kh * self.kw) as f64
    }
}

/// out = conv(x, weight) + bias. `out` must hold `s.out_len()` values.
pub fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: &Conv2dShape, out: &mut [f32]) {
    naive::conv2d(x, weight, bias, s, out)
}

pub mod naive {
    use super::Conv2dShape;

    /// Direct seven-loop convolution with f64 accumulation: the oracle.
    pub fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: &Conv2dShape, out: &mut [f32]) {
        let (oh, ow) = (s.out_h(), s.out_w());
        assert!(x.len() == s.batch * s.c_in * s.h * s.w);
        assert!(weight.len() == s.c_out * s.c_in * s.kh * s.kw);
        assert!(out.len() == s.out_len());
        for b in 0..s.batch {
            for co in 0..s.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = bias.map_or(0.0, |bb| bb[co] as f64);
                        for ci in 0..s.c_in {
                            for ky in 0..s.kh {
                                let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                                if iy < 0 || iy >= s.h as isize {
                                    continue;
                                }
                                for kx in 0..s.kw {
                                    let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                                    if ix < 0 || ix >= s.w as isize {
                                        continue;
                                    }
                                    let xv = x[((b * s.c_in + ci) * s.h + iy as usize) * s.w + ix as usize];
                                    let wv = weight[((co * s.c_in + ci) * s.kh + ky) * s.kw + kx];
                                    acc += xv as f64 * wv as f64;
                                }
                            }
                        }
                        out[((b * s.c_out + co) * oh + oy) * ow + ox] = acc as f32;
                    }
                }
            }
        }
    }
}
