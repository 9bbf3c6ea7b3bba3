//! 2-D convolution, NCHW, weights [c_out, c_in, kh, kw] (PyTorch's `nn.Conv2d` layout).

use super::Activation;
use super::blocked::{B_SLACK, BLayout, Bias, Gemm, PaddedImage, with_workspace};
pub use super::blocked::{Isa, Workspace};

/// Geometry of one convolution (NCHW input, weights [c_out, c_in, kh, kw]); checked by the
/// main crate's `shapes::conv2d` before any kernel sees it.
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
    /// The output shape [batch, c_out, out_h, out_w].
    pub fn out(&self) -> Vec<usize> {
        vec![self.batch, self.c_out, self.out_h(), self.out_w()]
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
    with_workspace(|ws| conv2d_with(Isa::detect(), ws, x, weight, bias, s, out))
}

/// `conv2d` with an explicit kernel variant and caller-held scratch.
///
/// Each image is one GEMM: weights [c_out, c_in·kh·kw] (as stored) times the im2col matrix
/// [c_in·kh·kw, oh·ow], which lands directly in the NCHW output plane block [c_out, oh·ow]. A 1×1
/// stride-1 unpadded convolution uses the input image itself as that matrix; other stride-1
/// ones never build it (the GEMM packs its panels from the zero-padded image,
/// `BLayout::Im2col`); strided ones (the U-Net's downsampling) build it with `im2col`.
pub fn conv2d_with(
    isa: Isa,
    ws: &mut Workspace,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    s: &Conv2dShape,
    out: &mut [f32],
) {
    assert!(s.stride > 0 && s.h + 2 * s.pad >= s.kh && s.w + 2 * s.pad >= s.kw);
    assert!(x.len() == s.batch * s.c_in * s.h * s.w);
    assert!(weight.len() == s.c_out * s.c_in * s.kh * s.kw);
    assert!(out.len() == s.out_len());
    assert!(bias.is_none_or(|b| b.len() == s.c_out));
    let (hw, ohw) = (s.h * s.w, s.out_h() * s.out_w());
    let depth = s.c_in * s.kh * s.kw;
    let direct = s.kh == 1 && s.kw == 1 && s.stride == 1 && s.pad == 0;
    let implicit = !direct && s.stride == 1;
    let padded = PaddedImage { c_in: s.c_in, hp: s.h + 2 * s.pad, wp: s.w + 2 * s.pad, kh: s.kh, kw: s.kw };
    let scratch = if direct {
        0
    } else if implicit {
        s.c_in * padded.hp * padded.wp + B_SLACK
    } else {
        depth * ohw
    };
    let mut cols = std::mem::take(&mut ws.cols);
    if cols.len() < scratch {
        cols.resize(scratch, 0.0);
    }
    for b in 0..s.batch {
        let img = &x[b * s.c_in * hw..(b + 1) * s.c_in * hw];
        let (bmat, b_layout): (&[f32], _) = if direct {
            (img, BLayout::RowMajor)
        } else if implicit {
            pad_image(img, s, &mut cols[..scratch]);
            (&cols[..scratch], BLayout::Im2col(padded))
        } else {
            im2col(img, s, &mut cols[..depth * ohw]);
            (&cols[..depth * ohw], BLayout::RowMajor)
        };
        let g = Gemm {
            rows: s.c_out,
            cols: ohw,
            depth,
            a: weight,
            lda: depth,
            b: bmat,
            ldb: ohw,
            b_layout,
            bias: bias.map_or(Bias::None, Bias::PerRow),
            act: Activation::None,
        };
        g.run(isa, &mut out[b * s.c_out * ohw..(b + 1) * s.c_out * ohw], ohw, ws);
    }
    ws.cols = cols;
}

/// One image [c_in, h, w] → [c_in, h + 2·pad, w + 2·pad] with a zero border (and zero slack after).
fn pad_image(img: &[f32], s: &Conv2dShape, dst: &mut [f32]) {
    let (p, wp) = (s.pad, s.w + 2 * s.pad);
    if p > 0 {
        dst.fill(0.0);
    }
    for (ci, plane) in img.chunks_exact(s.h * s.w).enumerate() {
        let base = ci * (s.h + 2 * p) * wp;
        for (y, row) in plane.chunks_exact(s.w).enumerate() {
            let at = base + (y + p) * wp + p;
            dst[at..at + s.w].copy_from_slice(row);
        }
    }
}

/// One image [c_in, h, w] → cols[(ci·kh + ky)·kw + kx][oy·ow + ox] (zero where the window
/// overhangs the padding). Per output row, the in-bounds run of ox is computed once so the body
/// is a plain copy (stride 1) or a strided gather (stride 2) between zero fills.
fn im2col(img: &[f32], s: &Conv2dShape, cols: &mut [f32]) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let (st, pad) = (s.stride, s.pad);
    let mut rows = cols.chunks_exact_mut(oh * ow);
    for ci in 0..s.c_in {
        let plane = &img[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for ky in 0..s.kh {
            for kx in 0..s.kw {
                let dst = rows.next().expect("cols sized for c_in·kh·kw rows");
                // ox is in bounds when 0 <= ox·st + kx − pad < w.
                let ox_lo = if pad > kx { (pad - kx).div_ceil(st) } else { 0 }.min(ow);
                let ox_hi = if s.w + pad > kx { ((s.w + pad - kx - 1) / st + 1).min(ow) } else { 0 }.max(ox_lo);
                for (oy, drow) in dst.chunks_exact_mut(ow).enumerate() {
                    let iy = (oy * st + ky) as isize - pad as isize;
                    if iy < 0 || iy >= s.h as isize {
                        drow.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * s.w..(iy as usize + 1) * s.w];
                    drow[..ox_lo].fill(0.0);
                    drow[ox_hi..].fill(0.0);
                    if ox_lo == ox_hi {
                        continue;
                    }
                    let ix0 = ox_lo * st + kx - pad;
                    let body = &mut drow[ox_lo..ox_hi];
                    if st == 1 {
                        body.copy_from_slice(&src[ix0..ix0 + body.len()]);
                    } else {
                        for (d, &v) in body.iter_mut().zip(src[ix0..].iter().step_by(st)) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
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
