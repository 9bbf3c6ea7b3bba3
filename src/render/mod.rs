//! CPU rasterisation of samples into RGBA images: a density plot for 2-D points (with optional
//! trajectories), and a grid for images. The CLI writes these as PNG; the browser's CPU backend
//! puts the same pixels on a 2-D canvas.

use crate::pointwise::clamp;

pub mod gpu;
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

/// Colour of a trajectory line sample.
const LINE: [f32; 3] = [120.0, 200.0, 255.0];
/// Each line sample over a pixel keeps this share of the colour under it.
const LINE_KEEP: f32 = 0.65;
/// Splat weights are integers in 1/`SPLAT_UNIT` of a point's peak weight.
const SPLAT_UNIT: f32 = 256.0;

/// A perceptual dark-to-bright colour map (control points after matplotlib's "magma"),
/// unrounded: shaders/render.wgsl has the same function.
fn colormap(v: f32) -> [f32; 3] {
    const STOPS: [[f32; 3]; 6] = [
        [12.0, 12.0, 20.0],
        [59.0, 15.0, 112.0],
        [140.0, 41.0, 129.0],
        [222.0, 73.0, 104.0],
        [254.0, 159.0, 109.0],
        [252.0, 253.0, 191.0],
    ];
    let x = clamp(v, 0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    std::array::from_fn(|k| STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f)
}

/// A points plot on a `width`×`height` canvas showing the data box `range`
/// ([[xmin, xmax], [ymin, ymax]], y up). The same geometry is used by the GPU renderer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointsPlot {
    pub width: usize,
    pub height: usize,
    pub range: [[f32; 2]; 2],
}

impl PointsPlot {
    /// Splat radius in pixels: a point stays a visible blob on a large (HiDPI) canvas.
    pub fn radius(&self) -> u32 {
        1 + (self.width.max(self.height) / 400) as u32
    }

    /// Pixel coordinates of a data point (y down).
    fn pixel_of(self, p: [f32; 2]) -> [f32; 2] {
        let [[x0, x1], [y0, y1]] = self.range;
        let fx = (p[0] - x0) / (x1 - x0);
        let fy = (p[1] - y0) / (y1 - y0);
        [fx * self.width as f32, (1.0 - fy) * self.height as f32]
    }
}

/// Integer accumulators of a points plot: density in 1/256 units and trajectory line hits per
/// pixel. Integers make the picture independent of summation order, so the CPU and the GPU
/// (shaders/render.wgsl, atomics) produce the same pixels.
pub struct PlotAccumulators {
    plot: PointsPlot,
    density: Vec<u32>,
    hits: Vec<u32>,
}

impl PlotAccumulators {
    pub fn new(plot: PointsPlot) -> Self {
        let n = plot.width * plot.height;
        Self { plot, density: vec![0; n], hits: vec![0; n] }
    }

    /// Adds one point as a separable tent of `radius` pixels centred on it.
    pub fn splat(&mut self, p: [f32; 2]) {
        if !(p[0].is_finite() && p[1].is_finite()) {
            return;
        }
        let (w, h) = (self.plot.width as i32, self.plot.height as i32);
        let r = self.plot.radius() as f32;
        let [px, py] = self.plot.pixel_of(p);
        let (cx, cy) = (px - 0.5, py - 0.5);
        // Off-canvas by more than the radius: nothing to draw (and no huge loop bounds).
        if !(cx > -r - 1.0 && cy > -r - 1.0 && cx < w as f32 + r && cy < h as f32 + r) {
            return;
        }
        let (x0, x1) = (((cx - r).floor() as i32 + 1).max(0), ((cx + r).floor() as i32).min(w - 1));
        let (y0, y1) = (((cy - r).floor() as i32 + 1).max(0), ((cy + r).floor() as i32).min(h - 1));
        for y in y0..=y1 {
            let wy = 1.0 - (y as f32 - cy).abs() / r;
            for x in x0..=x1 {
                let wx = 1.0 - (x as f32 - cx).abs() / r;
                let q = (wx * wy * SPLAT_UNIT + 0.5).floor() as u32;
                if wx > 0.0 && wy > 0.0 && q > 0 {
                    let i = (y * w + x) as usize;
                    self.density[i] = self.density[i].wrapping_add(q);
                }
            }
        }
    }

    /// Adds a trajectory segment: uniform samples along it, about one per pixel of length.
    pub fn segment(&mut self, a: [f32; 2], b: [f32; 2]) {
        let (a, b) = (self.plot.pixel_of(a), self.plot.pixel_of(b));
        if !(a.iter().chain(&b).all(|v| v.is_finite())) {
            return;
        }
        let (w, h) = (self.plot.width, self.plot.height);
        let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
        let steps = clamp(len.ceil(), 1.0, (4 * (w + h)) as f32) as u32;
        for s in 0..=steps {
            let f = s as f32 / steps as f32;
            let (x, y) = (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f);
            if x >= 0.0 && y >= 0.0 && x < w as f32 && y < h as f32 {
                let i = y as usize * w + x as usize;
                self.hits[i] = self.hits[i].wrapping_add(1);
            }
        }
    }

    /// Log-scaled heat map normalised by the densest pixel over the model's log-density `heat`
    /// (if any), lines laid over both.
    pub fn shade(&self, heat: Option<&HeatLayer>) -> Rgba {
        let peak = self.density.iter().copied().max().unwrap_or(0);
        let norm = (1.0 + peak as f32).ln().max(1e-6);
        let (w, h) = (self.plot.width, self.plot.height);
        let mut img = Rgba::filled(w, h, BACKGROUND);
        for (i, (&c, &hits)) in self.density.iter().zip(&self.hits).enumerate() {
            // Most pixels of a point plot hold nothing: they keep the fill (the same bytes the
            // blend below would give them). Skipping them took the demo's 748² draw in wasm
            // from 25–31 ms to 9–10 ms (the first, cold draw: 88–96 → 50–71 ms).
            if c == 0 && hits == 0 && heat.is_none() {
                continue;
            }
            let mut rgb = BACKGROUND.map(f32::from);
            if let Some(heat) = heat {
                let level = heat.level_at(i % w, i / w, w, h);
                for (v, hc) in rgb.iter_mut().zip(HEAT) {
                    *v = *v * (1.0 - level) + hc * level;
                }
            }
            if c > 0 {
                let rgb_c = colormap((1.0 + c as f32).ln() / norm * 0.9 + 0.1);
                rgb[..3].copy_from_slice(&rgb_c);
            }
            if hits > 0 {
                let a = 1.0 - LINE_KEEP.powi(hits.min(1 << 20) as i32);
                for (v, l) in rgb.iter_mut().zip(LINE) {
                    *v = *v * (1.0 - a) + l * a;
                }
            }
            for (px, v) in img.pixels[4 * i..4 * i + 3].iter_mut().zip(rgb) {
                *px = clamp(v.round(), 0.0, 255.0) as u8;
            }
        }
        img
    }
}

/// The centres of a `width`×`height` grid of cells over `range`, as [x, y] pairs, row-major with
/// the top row first (y up): where the log-density and the flow field are evaluated, in the
/// order `HeatLayer` draws them.
pub fn cell_centres(range: [[f32; 2]; 2], width: usize, height: usize) -> Vec<f32> {
    let [[x0, x1], [y0, y1]] = range;
    let mut pts = Vec::with_capacity(2 * width * height);
    for r in 0..height {
        let y = y1 - (y1 - y0) * (r as f32 + 0.5) / height as f32;
        for c in 0..width {
            pts.extend([x0 + (x1 - x0) * (c as f32 + 0.5) / width as f32, y]);
        }
    }
    pts
}

/// The model's log-density on a grid (from `Sampler::log_density_grid`), drawn under the
/// samples: each canvas pixel takes the level of the grid cell it falls in (nearest).
#[derive(Debug, Clone, PartialEq)]
pub struct HeatLayer {
    pub width: usize,
    pub height: usize,
    /// Per cell, in [0, 1]: the log-density over the top `HEAT_NATS` nats, linearly.
    pub levels: Vec<f32>,
}

/// The log-density range shown: from the peak down this many nats (e^-8 ≈ 3e-4 of the peak).
pub const HEAT_NATS: f32 = 8.0;
/// Colour of the densest cells of the heat layer (blended over the background by level).
const HEAT: [f32; 3] = [28.0, 92.0, 140.0];

impl HeatLayer {
    /// Levels from log-densities (row-major, top row first); non-finite values count as −∞.
    pub fn from_log_density(width: usize, height: usize, log_p: &[f32]) -> Self {
        let peak = log_p.iter().copied().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, f32::max);
        let levels = log_p
            .iter()
            .map(|&l| {
                if l.is_finite() && peak.is_finite() {
                    clamp((l - (peak - HEAT_NATS)) / HEAT_NATS, 0.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect();
        Self { width, height, levels }
    }

    /// The level under canvas pixel (x, y) of a `cw`×`ch` canvas.
    pub fn level_at(&self, x: usize, y: usize, cw: usize, ch: usize) -> f32 {
        let (gx, gy) = (x * self.width / cw.max(1), y * self.height / ch.max(1));
        self.levels.get(gy * self.width + gx).copied().unwrap_or(0.0)
    }
}

/// Density of 2-D points (`points` = [n, 2] flattened) as a log-scaled heat map; optional
/// trajectories (`frames[k]` = the [n, 2] state at the k-th saved time) drawn as faint lines
/// for the first `max_paths` points, and the model's log-density `heat` underneath.
pub fn density_plot(
    points: &[f32],
    range: [[f32; 2]; 2],
    width: usize,
    height: usize,
    frames: &[Vec<f32>],
    max_paths: usize,
    heat: Option<&HeatLayer>,
) -> Rgba {
    let mut acc = PlotAccumulators::new(PointsPlot { width, height, range });
    for p in points.chunks_exact(2) {
        acc.splat([p[0], p[1]]);
    }
    for pair in frames.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        for k in 0..(a.len().min(b.len()) / 2).min(max_paths) {
            acc.segment([a[2 * k], a[2 * k + 1]], [b[2 * k], b[2 * k + 1]]);
        }
    }
    acc.shade(heat)
}

/// An image grid: `n` images [c, h, w] with values in `range`, tiled `cols` per row, each
/// upscaled `scale`× by nearest neighbour, with a `scale`-pixel gutter. c = 1 is grey, c ≥ 3 RGB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridPlot {
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub range: [f32; 2],
    pub cols: usize,
    pub scale: usize,
}

impl GridPlot {
    /// The grid of `n` samples of an image model at `scale`: one column per class for
    /// conditional models (samples cycle through the classes), else 10. `None` for points.
    pub fn for_model(config: &crate::model::ModelConfig, n: usize, scale: usize) -> Option<Self> {
        let crate::model::DataConfig::Image { channels, height, width, range } = config.data else { return None };
        let cols = if config.num_classes > 0 { config.num_classes } else { 10 }.clamp(1, n.max(1));
        Some(Self { n, channels, height, width, range, cols, scale: scale.max(1) })
    }

    /// The largest integer scale at which the grid fits `canvas_width` pixels.
    pub fn fit_width(self, canvas_width: usize) -> Self {
        Self { scale: (canvas_width / (self.cols * (self.width + 1) + 1)).max(1), ..self }
    }

    /// The grid laid out to fit a `canvas_width` × `canvas_height` canvas whole: the column
    /// count (a multiple of the current one, so that a conditional model's columns stay one
    /// class each) and the integer scale that show the images largest. Where even 1× does not
    /// fit, the layout that overflows least (a user's 3-class model drew 12 images 3 wide and 4
    /// tall, cut off by a square canvas, before this).
    pub fn fit(self, canvas_width: usize, canvas_height: usize) -> Self {
        let base = self.cols.clamp(1, self.n.max(1));
        let (cell_w, cell_h) = (self.width + 1, self.height + 1);
        let mut best: Option<(usize, usize, usize)> = None; // (scale, overflow, cols)
        let mut cols = base;
        loop {
            let rows = self.n.div_ceil(cols);
            // `size()`: scale · (cols · (width + 1) + 1) by scale · (rows · (height + 1) + 1).
            let scale_w = canvas_width / (cols * cell_w + 1);
            let scale_h = canvas_height / (rows * cell_h + 1);
            let scale = scale_w.min(scale_h);
            let overflow =
                (cols * cell_w + 1).saturating_sub(canvas_width) + (rows * cell_h + 1).saturating_sub(canvas_height);
            let key = (scale, usize::MAX - overflow, cols);
            if best.is_none_or(|(s, o, _)| (key.0, key.1) > (s, usize::MAX - o)) {
                best = Some((scale, overflow, cols));
            }
            if cols >= self.n {
                break;
            }
            cols += base;
        }
        let (scale, _, cols) = best.unwrap_or((1, 0, base));
        Self { cols, scale: scale.max(1), ..self }
    }

    pub fn rows(&self) -> usize {
        self.n.div_ceil(self.cols.max(1))
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Size of the whole grid in pixels.
    pub fn size(&self) -> (usize, usize) {
        let gap = self.scale.max(1);
        (self.cols * (self.width * self.scale + gap) + gap, self.rows() * (self.height * self.scale + gap) + gap)
    }

    /// Top-left corner of the grid centred on a canvas (clamped at 0 when it is larger).
    pub fn origin(&self, canvas_width: usize, canvas_height: usize) -> (usize, usize) {
        let (w, h) = self.size();
        (canvas_width.saturating_sub(w) / 2, canvas_height.saturating_sub(h) / 2)
    }
}

/// The image grid alone (`images` = [n, c, h, w] flattened), `grid.size()` pixels.
pub fn image_grid(images: &[f32], grid: &GridPlot) -> Rgba {
    let g = GridPlot { cols: grid.cols.clamp(1, grid.n.max(1)), scale: grid.scale.max(1), ..*grid };
    let (c, h, w, scale) = (g.channels, g.height, g.width, g.scale);
    let gap = scale;
    let (cw, ch) = (w * scale + gap, h * scale + gap);
    let (width, height) = g.size();
    let mut img = Rgba::filled(width, height, BACKGROUND);
    let range = g.range;
    let to_u8 = |v: f32| (clamp((v - range[0]) / (range[1] - range[0]), 0.0, 1.0) * 255.0).round() as u8;
    for k in 0..g.n.min(images.len() / g.image_len().max(1)) {
        let (gx, gy) = (gap + (k % g.cols) * cw, gap + (k / g.cols) * ch);
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

/// `img` centred on a `width`×`height` background (cropped where larger): what a canvas shows.
pub fn centred(img: &Rgba, width: usize, height: usize) -> Rgba {
    let mut out = Rgba::filled(width, height, BACKGROUND);
    let (ox, oy) = (width.saturating_sub(img.width) / 2, height.saturating_sub(img.height) / 2);
    for y in 0..img.height.min(height - oy) {
        let n = img.width.min(width - ox);
        let src = &img.pixels[4 * y * img.width..][..4 * n];
        out.pixels[4 * ((oy + y) * width + ox)..][..4 * n].copy_from_slice(src);
    }
    out
}
