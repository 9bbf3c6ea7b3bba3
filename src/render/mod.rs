//! CPU rasterisation of samples into RGBA images: a density plot for 2-D points (with optional
//! trajectories), and a grid for images. The CLI writes these as PNG; the browser's CPU backend
//! puts the same pixels on a 2-D canvas.

#[cfg(not(target_arch = "wasm32"))]
pub mod png;

/// An 8-bit RGBA image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgba {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Rgba {
    pub fn filled(width: usize, height: usize, color: [u8; 4]) -> Self {
        Self { width, height, pixels: color.repeat(width * height) }
    }
}

/// Dark background shared by the plots.
pub const BACKGROUND: [u8; 4] = [12, 12, 20, 255];

/// A perceptual dark-to-bright colour map (control points after matplotlib's "magma").
fn colormap(v: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 6] = [
        [12.0, 12.0, 20.0],
        [59.0, 15.0, 112.0],
        [140.0, 41.0, 129.0],
        [222.0, 73.0, 104.0],
        [254.0, 159.0, 109.0],
        [252.0, 253.0, 191.0],
    ];
    let x = v.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let c = |k: usize| (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f).round() as u8;
    [c(0), c(1), c(2)]
}

/// Maps data coordinates inside `range` to pixel coordinates (y up).
fn to_pixel(p: [f32; 2], range: [[f32; 2]; 2], w: usize, h: usize) -> [f32; 2] {
    let fx = (p[0] - range[0][0]) / (range[0][1] - range[0][0]);
    let fy = (p[1] - range[1][0]) / (range[1][1] - range[1][0]);
    [fx * w as f32, (1.0 - fy) * h as f32]
}

/// Density of 2-D points (`points` = [n, 2] flattened) as a log-scaled heat map; optional
/// trajectories (`frames[k]` = the [n, 2] state at the k-th saved time) drawn as faint lines
/// for the first `max_paths` points.
pub fn density_plot(
    points: &[f32],
    range: [[f32; 2]; 2],
    width: usize,
    height: usize,
    frames: &[Vec<f32>],
    max_paths: usize,
) -> Rgba {
    let mut hist = vec![0f32; width * height];
    for p in points.chunks_exact(2) {
        if !(p[0].is_finite() && p[1].is_finite()) {
            continue;
        }
        // Bilinear splat: each point spreads its unit mass over the four nearest pixel centres.
        let [px, py] = to_pixel([p[0], p[1]], range, width, height);
        let (x0, y0) = ((px - 0.5).floor(), (py - 0.5).floor());
        let (fx, fy) = (px - 0.5 - x0, py - 0.5 - y0);
        for (dx, dy, wgt) in
            [(0, 0, (1.0 - fx) * (1.0 - fy)), (1, 0, fx * (1.0 - fy)), (0, 1, (1.0 - fx) * fy), (1, 1, fx * fy)]
        {
            let (x, y) = (x0 as i64 + dx, y0 as i64 + dy);
            if x >= 0 && y >= 0 && (x as usize) < width && (y as usize) < height {
                hist[y as usize * width + x as usize] += wgt;
            }
        }
    }
    // Soften each point into a small blob so the picture reads the same at any canvas size
    // (a 1-pixel dot vanishes on a HiDPI canvas).
    let radius = width.max(height) / 400;
    if radius > 0 {
        blur(&mut hist, width, height, radius);
    }
    let max = hist.iter().cloned().fold(0.0f32, f32::max);
    let norm = (1.0 + max).ln().max(1e-6);
    let mut img = Rgba::filled(width, height, BACKGROUND);
    for (i, &c) in hist.iter().enumerate() {
        if c > 0.0 {
            let [r, g, b] = colormap((1.0 + c).ln() / norm * 0.9 + 0.1);
            img.pixels[4 * i..4 * i + 4].copy_from_slice(&[r, g, b, 255]);
        }
    }
    let n = points.len() / 2;
    for k in 0..n.min(max_paths) {
        for pair in frames.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if 2 * k + 1 >= a.len().min(b.len()) {
                continue;
            }
            let pa = to_pixel([a[2 * k], a[2 * k + 1]], range, width, height);
            let pb = to_pixel([b[2 * k], b[2 * k + 1]], range, width, height);
            draw_line(&mut img, pa, pb, [120, 200, 255], 0.35);
        }
    }
    img
}

/// Separable triangle blur of radius `r` (weights r+1−|d|), in place.
fn blur(img: &mut [f32], w: usize, h: usize, r: usize) {
    let weights: Vec<f32> = (0..=2 * r).map(|i| (r + 1 - i.abs_diff(r)) as f32).collect();
    let norm: f32 = weights.iter().sum();
    let mut tmp = vec![0f32; img.len()];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (i, wt) in weights.iter().enumerate() {
                let xx = x as isize + i as isize - r as isize;
                if xx >= 0 && (xx as usize) < w {
                    acc += wt * img[y * w + xx as usize];
                }
            }
            tmp[y * w + x] = acc / norm;
        }
    }
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (i, wt) in weights.iter().enumerate() {
                let yy = y as isize + i as isize - r as isize;
                if yy >= 0 && (yy as usize) < h {
                    acc += wt * tmp[yy as usize * w + x];
                }
            }
            img[y * w + x] = acc / norm;
        }
    }
}

/// Alpha-blended line by uniform sampling along the segment (no anti-aliasing; faint lines
/// overlapping is what shows the flow).
fn draw_line(img: &mut Rgba, a: [f32; 2], b: [f32; 2], color: [u8; 3], alpha: f32) {
    if !(a.iter().chain(&b).all(|v| v.is_finite())) {
        return;
    }
    let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
    let steps = (len.ceil() as usize).clamp(1, 4 * (img.width + img.height));
    for s in 0..=steps {
        let f = s as f32 / steps as f32;
        let (x, y) = (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f);
        if x < 0.0 || y < 0.0 || x >= img.width as f32 || y >= img.height as f32 {
            continue;
        }
        let i = 4 * (y as usize * img.width + x as usize);
        for (px, &c) in img.pixels[i..i + 3].iter_mut().zip(&color) {
            let old = *px as f32;
            *px = (old + (c as f32 - old) * alpha).round() as u8;
        }
    }
}

/// Images [n, c, h, w] (values in `range`) tiled `cols` per row, each upscaled `scale`× by
/// nearest neighbour, with a 1-pixel-per-scale gutter. c = 1 is grey, c = 3 is RGB.
pub fn image_grid(
    images: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    range: [f32; 2],
    cols: usize,
    scale: usize,
) -> Rgba {
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let gap = scale.max(1);
    let (cw, ch) = (w * scale + gap, h * scale + gap);
    let mut img = Rgba::filled(cols * cw + gap, rows * ch + gap, BACKGROUND);
    let to_u8 = |v: f32| (((v - range[0]) / (range[1] - range[0])).clamp(0.0, 1.0) * 255.0).round() as u8;
    for k in 0..n {
        let (gx, gy) = (gap + (k % cols) * cw, gap + (k / cols) * ch);
        for y in 0..h * scale {
            for x in 0..w * scale {
                let (sy, sx) = (y / scale, x / scale);
                let px = |ch_i: usize| images[((k * c + ch_i) * h + sy) * w + sx];
                let rgb = if c >= 3 { [to_u8(px(0)), to_u8(px(1)), to_u8(px(2))] } else { [to_u8(px(0)); 3] };
                let i = 4 * ((gy + y) * img.width + gx + x);
                img.pixels[i..i + 4].copy_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
            }
        }
    }
    img
}
