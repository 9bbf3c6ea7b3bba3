// Drawing samples straight from the buffers the sampler wrote (no readback).
//
// 2-D points: a compute pass splats every point into integer accumulators (a separable tent of
// `radius` pixels, weights in 1/256 units, atomicAdd), a second one rasterises trajectory
// segments into hit counts, a third finds the densest pixel; then a fullscreen render pass maps
// density to colour (log scale, magma) and lays the lines over it. Integer accumulation makes
// the picture exact and order independent — the same pixels as the CPU rasteriser in
// src/render/mod.rs, which does the same arithmetic — where float additive blending of splats
// would saturate in dense regions (f16 targets keep 11 bits).
//
// Images: a fullscreen pass reads the image tensor [n, c, h, w] and draws the grid, nearest
// neighbour, one pass per sampling chunk.

struct Plot {
    size: vec2<u32>,      // canvas width, height (px)
    count: u32,           // points or paths in this dispatch
    radius: u32,          // splat tent radius (px, >= 1)
    range: vec4<f32>,     // xmin, xmax, ymin, ymax of the data box
    grid_x: u32,          // invocations per row of a (2-D folded) dispatch
    stride: u32,          // invocations in the dispatch: each handles items i, i + stride, ...
    heat: vec2<u32>,      // cells of the log-density layer (0, 0: none)
}

@group(0) @binding(0) var<uniform> plot: Plot;
// Points [n, 2]; for trajectory segments, the state at the segment's start (a) and end (b).
@group(0) @binding(1) var<storage, read> state_a: array<f32>;
@group(0) @binding(2) var<storage, read> state_b: array<f32>;
// [0, w*h): density; [w*h, 2*w*h): trajectory hits; [2*w*h]: the densest pixel's value.
@group(0) @binding(3) var<storage, read_write> acc: array<atomic<u32>>;

fn finite2(p: vec2<f32>) -> bool {
    // NaN fails every comparison; +-inf is above any finite f32 (and values this large are far
    // off any canvas, so cutting at 3.4e38 rather than f32::MAX changes no picture).
    return all(abs(p) <= vec2(3.4e38));
}

fn to_pixel(p: vec2<f32>) -> vec2<f32> {
    let fx = (p.x - plot.range.x) / (plot.range.y - plot.range.x);
    let fy = (p.y - plot.range.z) / (plot.range.w - plot.range.z);
    return vec2(fx * f32(plot.size.x), (1.0 - fy) * f32(plot.size.y));
}

fn invocation(gid: vec3<u32>) -> u32 {
    return gid.y * plot.grid_x + gid.x;
}

@compute @workgroup_size(64)
fn splat_points(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = invocation(gid); i < plot.count; i += plot.stride) {
        splat_point(i);
    }
}

fn splat_point(i: u32) {
    let p = vec2(state_a[2u * i], state_a[2u * i + 1u]);
    if (!finite2(p)) {
        return;
    }
    // Pixel-centre coordinates: pixel (x, y) covers [x, x+1) and its centre is x + 0.5.
    let c = to_pixel(p) - vec2(0.5);
    let r = f32(plot.radius);
    let w = i32(plot.size.x);
    let h = i32(plot.size.y);
    // Clamped before the loops, so a far-away point costs nothing and loops stay bounded.
    let x0 = max(i32(floor(c.x - r)) + 1, 0);
    let x1 = min(i32(floor(c.x + r)), w - 1);
    let y0 = max(i32(floor(c.y - r)) + 1, 0);
    let y1 = min(i32(floor(c.y + r)), h - 1);
    for (var y = y0; y <= y1; y++) {
        let wy = 1.0 - abs(f32(y) - c.y) / r;
        for (var x = x0; x <= x1; x++) {
            let wx = 1.0 - abs(f32(x) - c.x) / r;
            let q = u32(floor(wx * wy * 256.0 + 0.5));
            if (wx > 0.0 && wy > 0.0 && q > 0u) {
                atomicAdd(&acc[u32(y * w + x)], q);
            }
        }
    }
}

@compute @workgroup_size(64)
fn splat_paths(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = invocation(gid); i < plot.count; i += plot.stride) {
        splat_path(i);
    }
}

fn splat_path(i: u32) {
    let a = to_pixel(vec2(state_a[2u * i], state_a[2u * i + 1u]));
    let b = to_pixel(vec2(state_b[2u * i], state_b[2u * i + 1u]));
    if (!finite2(a) || !finite2(b)) {
        return;
    }
    // Uniform samples along the segment, about one per pixel of length (as the CPU does).
    let len = length(b - a);
    let steps = u32(clamp(ceil(len), 1.0, f32(4u * (plot.size.x + plot.size.y))));
    let wh = plot.size.x * plot.size.y;
    for (var s = 0u; s <= steps; s++) {
        let f = f32(s) / f32(steps);
        let q = a + (b - a) * f;
        if (q.x >= 0.0 && q.y >= 0.0 && q.x < f32(plot.size.x) && q.y < f32(plot.size.y)) {
            atomicAdd(&acc[wh + u32(q.y) * plot.size.x + u32(q.x)], 1u);
        }
    }
}

var<workgroup> group_peak: atomic<u32>;

@compute @workgroup_size(64)
fn density_peak(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let wh = plot.size.x * plot.size.y;
    for (var i = invocation(gid); i < wh; i += plot.stride) {
        atomicMax(&group_peak, atomicLoad(&acc[i]));
    }
    workgroupBarrier();
    if (li == 0u) {
        atomicMax(&acc[2u * wh], atomicLoad(&group_peak));
    }
}

// ---- the fullscreen passes ----

@vertex
fn fullscreen(@builtin(vertex_index) v: u32) -> @builtin(position) vec4<f32> {
    // One triangle covering the viewport.
    let uv = vec2(f32((v << 1u) & 2u), f32(v & 2u));
    return vec4(uv * 2.0 - 1.0, 0.0, 1.0);
}

const BACKGROUND = vec3(12.0, 12.0, 20.0);
const LINE = vec3(120.0, 200.0, 255.0);
const LINE_KEEP = 0.65; // each line sample over a pixel keeps 65% of what was under it

// Control points after matplotlib's "magma" (as src/render/mod.rs).
fn colormap(v: f32) -> vec3<f32> {
    var stops = array<vec3<f32>, 6>(
        vec3(12.0, 12.0, 20.0), vec3(59.0, 15.0, 112.0), vec3(140.0, 41.0, 129.0),
        vec3(222.0, 73.0, 104.0), vec3(254.0, 159.0, 109.0), vec3(252.0, 253.0, 191.0));
    let x = clamp(v, 0.0, 1.0) * 5.0;
    let i = min(u32(floor(x)), 4u);
    let f = x - f32(i);
    return stops[i] * (1.0 - f) + stops[i + 1u] * f;
}

@group(0) @binding(4) var<storage, read> counts: array<u32>;
// The log-density layer's levels in [0, 1], row-major (src/render/mod.rs HeatLayer).
@group(0) @binding(7) var<storage, read> heat_levels: array<f32>;

const HEAT = vec3(28.0, 92.0, 140.0);

@fragment
fn composite_points(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let wh = plot.size.x * plot.size.y;
    let i = u32(pos.y) * plot.size.x + u32(pos.x);
    let c = counts[i];
    var rgb = BACKGROUND;
    if (plot.heat.x > 0u) {
        // The cell of the canvas pixel, nearest (integer arithmetic, as the CPU).
        let cell = (u32(pos.y) * plot.heat.y / plot.size.y) * plot.heat.x + u32(pos.x) * plot.heat.x / plot.size.x;
        let level = heat_levels[cell];
        rgb = BACKGROUND * (1.0 - level) + HEAT * level;
    }
    if (c > 0u) {
        let peak = f32(counts[2u * wh]);
        rgb = colormap(log(1.0 + f32(c)) / max(log(1.0 + peak), 1e-6) * 0.9 + 0.1);
    }
    let hits = counts[wh + i];
    if (hits > 0u) {
        rgb = mix(rgb, LINE, 1.0 - pow(LINE_KEEP, f32(hits)));
    }
    return vec4(rgb / 255.0, 1.0);
}

struct Grid {
    origin: vec2<i32>,    // top-left of the grid in the canvas (px)
    first: u32,           // first image of this chunk (index into the whole batch)
    count: u32,           // images in this chunk
    channels: u32,
    height: u32,
    width: u32,
    cols: u32,
    scale: u32,
    rows: u32,
    range: vec2<f32>,
}

// Bindings of their own: each entry point's auto layout holds only what it uses.
@group(0) @binding(5) var<uniform> grid: Grid;
@group(0) @binding(6) var<storage, read> images: array<f32>;

fn to_unit(v: f32) -> f32 {
    return clamp((v - grid.range.x) / (grid.range.y - grid.range.x), 0.0, 1.0);
}

@fragment
fn composite_images(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let background = vec4(BACKGROUND / 255.0, 1.0);
    let gap = i32(grid.scale);
    let cw = i32(grid.width * grid.scale) + gap;
    let ch = i32(grid.height * grid.scale) + gap;
    let g = vec2<i32>(pos.xy) - grid.origin - vec2(gap);
    if (g.x < 0 || g.y < 0 || g.x >= i32(grid.cols) * cw || g.y >= i32(grid.rows) * ch) {
        return background;
    }
    let col = g.x / cw;
    let row = g.y / ch;
    let inner = g - vec2(col * cw, row * ch);
    let k = u32(row) * grid.cols + u32(col);
    if (inner.x >= cw - gap || inner.y >= ch - gap) {
        return background; // the gutter between images
    }
    if (k < grid.first || k >= grid.first + grid.count) {
        discard; // another chunk's image (or past the last one: the clear colour stays)
    }
    let sx = u32(inner.x) / grid.scale;
    let sy = u32(inner.y) / grid.scale;
    let base = (k - grid.first) * grid.channels;
    let plane = grid.height * grid.width;
    let at = sy * grid.width + sx;
    if (grid.channels >= 3u) {
        return vec4(to_unit(images[base * plane + at]), to_unit(images[(base + 1u) * plane + at]),
                    to_unit(images[(base + 2u) * plane + at]), 1.0);
    }
    return vec4(vec3(to_unit(images[base * plane + at])), 1.0);
}
