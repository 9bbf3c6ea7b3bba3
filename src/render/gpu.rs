//! Drawing on the GPU, straight from the sampler's buffers (shaders/render.wgsl): no readback
//! between sampling and the picture. The pixels are those of the CPU rasteriser in
//! `render/mod.rs` (same integer accumulators, same colour arithmetic), so the two backends
//! draw the same picture and tests compare them.
//!
//! [`GpuPainter::paint`] draws a [`Scene`] into any texture view: the browser passes its
//! canvas surface (see `canvas` below), tests an offscreen texture.

use super::{GridPlot, HeatLayer, PointsPlot};
use crate::error::{Error, Result};
use crate::gpu::{GpuBackend, GpuTensor};
use std::sync::Mutex;
use wgpu::util::DeviceExt;

const SHADER: &str = crate::gpu::wgsl!("render");
const WORKGROUP: u32 = 64;

/// What to draw.
pub enum Scene<'a> {
    /// 2-D points ([rows, 2] per sampling chunk) as a density heat map; `paths[c]` = the kept
    /// frames of chunk `c` (rows from `first_row[c]`), drawn as lines for the first
    /// `max_paths` samples.
    Points {
        plot: PointsPlot,
        states: Vec<&'a GpuTensor>,
        first_row: Vec<usize>,
        paths: Vec<Vec<&'a GpuTensor>>,
        max_paths: usize,
        /// The model's log-density under the samples.
        heat: Option<&'a HeatLayer>,
    },
    /// Images [rows, c, h, w] per chunk, tiled as `grid` says.
    Images { grid: GridPlot, chunks: Vec<(usize, &'a GpuTensor)> },
}

/// The uniform of the points kernels (`Plot` in render.wgsl).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PlotUniform {
    size: [u32; 2],
    count: u32,
    radius: u32,
    range: [f32; 4],
    grid_x: u32,
    stride: u32,
    heat: [u32; 2],
}

/// The uniform of the image grid pass (`Grid` in render.wgsl).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GridUniform {
    origin: [i32; 2],
    first: u32,
    count: u32,
    channels: u32,
    height: u32,
    width: u32,
    cols: u32,
    scale: u32,
    rows: u32,
    range: [f32; 2],
}

/// The render pipelines for one target format, compiled once.
pub struct GpuPainter {
    format: wgpu::TextureFormat,
    splat_points: wgpu::ComputePipeline,
    splat_paths: wgpu::ComputePipeline,
    density_peak: wgpu::ComputePipeline,
    composite_points: wgpu::RenderPipeline,
    composite_images: wgpu::RenderPipeline,
    /// The accumulator buffer, reused while the canvas keeps its size.
    accumulators: Mutex<Option<(u64, wgpu::Buffer)>>,
}

impl GpuPainter {
    pub fn new(backend: &GpuBackend, format: wgpu::TextureFormat) -> Self {
        let device = &backend.context().device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("render.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let compute = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let fullscreen = |entry: &str| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(entry),
                layout: None,
                vertex: wgpu::VertexState {
                    module: &module,
                    entry_point: Some("fullscreen"),
                    compilation_options: Default::default(),
                    buffers: &[],
                },
                primitive: wgpu::PrimitiveState::default(),
                depth_stencil: None,
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    targets: &[Some(wgpu::ColorTargetState {
                        format,
                        blend: None,
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        Self {
            format,
            splat_points: compute("splat_points"),
            splat_paths: compute("splat_paths"),
            density_peak: compute("density_peak"),
            composite_points: fullscreen("composite_points"),
            composite_images: fullscreen("composite_images"),
            accumulators: Mutex::new(None),
        }
    }

    pub fn format(&self) -> wgpu::TextureFormat {
        self.format
    }

    /// Records and submits the drawing of `scene` into `target` (`width`×`height`, the
    /// painter's format), after all work pending on `backend`.
    pub fn paint(
        &self,
        backend: &GpuBackend,
        scene: &Scene<'_>,
        target: &wgpu::TextureView,
        width: u32,
        height: u32,
    ) -> Result<()> {
        let device = &backend.context().device;
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("draw") });
        match scene {
            Scene::Points { plot, states, first_row, paths, max_paths, heat } => {
                let acc = self.accumulators(backend, plot)?;
                enc.clear_buffer(&acc, 0, None);
                let uniform = |count: usize| -> (wgpu::Buffer, [u32; 3]) {
                    let (groups, grid_x) = grid(backend, count);
                    let u = PlotUniform {
                        size: [plot.width as u32, plot.height as u32],
                        count: count as u32,
                        radius: plot.radius(),
                        range: [plot.range[0][0], plot.range[0][1], plot.range[1][0], plot.range[1][1]],
                        grid_x,
                        stride: grid_x * groups[1],
                        heat: heat.map_or([0, 0], |h| [h.width as u32, h.height as u32]),
                    };
                    let buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("plot"),
                        contents: bytemuck::bytes_of(&u),
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                    (buf, groups)
                };
                let mut pass = enc
                    .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("splat"), timestamp_writes: None });
                let dispatch = |pass: &mut wgpu::ComputePass<'_>,
                                pipeline: &wgpu::ComputePipeline,
                                u: &wgpu::Buffer,
                                groups: [u32; 3],
                                states: &[&GpuTensor]| {
                    // Bindings 1, 2, … are the states the kernel reads (auto layouts hold only
                    // the bindings an entry point uses).
                    let mut entries = vec![
                        wgpu::BindGroupEntry { binding: 0, resource: u.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 3, resource: acc.as_entire_binding() },
                    ];
                    for (i, t) in states.iter().enumerate() {
                        entries.push(wgpu::BindGroupEntry {
                            binding: 1 + i as u32,
                            resource: wgpu::BindingResource::Buffer(t.binding()),
                        });
                    }
                    let bg = device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &pipeline.get_bind_group_layout(0),
                        entries: &entries,
                    });
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, &bg, &[]);
                    pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                };
                for s in states {
                    if s.numel() >= 2 {
                        let (u, groups) = uniform(s.numel() / 2);
                        dispatch(&mut pass, &self.splat_points, &u, groups, &[s]);
                    }
                }
                for (frames, &first) in paths.iter().zip(first_row) {
                    let count = max_paths.saturating_sub(first);
                    for pair in frames.windows(2) {
                        let rows = (pair[0].numel().min(pair[1].numel()) / 2).min(count);
                        if rows > 0 {
                            let (u, groups) = uniform(rows);
                            dispatch(&mut pass, &self.splat_paths, &u, groups, &[pair[0], pair[1]]);
                        }
                    }
                }
                let (u, groups) = uniform(plot.width * plot.height);
                dispatch(&mut pass, &self.density_peak, &u, groups, &[]);
                drop(pass);
                // The shader reads the layer only when the uniform says it has cells.
                let levels: &[f32] = heat.map_or(&[0.0], |h| &h.levels);
                let heat_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("heat levels"),
                    contents: bytemuck::cast_slice(levels),
                    usage: wgpu::BufferUsages::STORAGE,
                });
                let bg = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &self.composite_points.get_bind_group_layout(0),
                    entries: &[
                        wgpu::BindGroupEntry { binding: 0, resource: u.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 4, resource: acc.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 7, resource: heat_buf.as_entire_binding() },
                    ],
                });
                let mut rp = render_pass(&mut enc, target, true);
                rp.set_pipeline(&self.composite_points);
                rp.set_bind_group(0, &bg, &[]);
                rp.draw(0..3, 0..1);
            }
            Scene::Images { grid, chunks } => {
                let (ox, oy) = grid.origin(width as usize, height as usize);
                for (i, (first, images)) in chunks.iter().enumerate() {
                    let u = GridUniform {
                        origin: [ox as i32, oy as i32],
                        first: *first as u32,
                        count: (images.numel() / grid.image_len().max(1)) as u32,
                        channels: grid.channels as u32,
                        height: grid.height as u32,
                        width: grid.width as u32,
                        cols: grid.cols as u32,
                        scale: grid.scale as u32,
                        rows: grid.rows() as u32,
                        range: grid.range,
                    };
                    let ubuf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("grid"),
                        contents: bytemuck::bytes_of(&u),
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                    let bg = device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &self.composite_images.get_bind_group_layout(0),
                        entries: &[
                            wgpu::BindGroupEntry { binding: 5, resource: ubuf.as_entire_binding() },
                            wgpu::BindGroupEntry {
                                binding: 6,
                                resource: wgpu::BindingResource::Buffer(images.binding()),
                            },
                        ],
                    });
                    let mut rp = render_pass(&mut enc, target, i == 0);
                    rp.set_pipeline(&self.composite_images);
                    rp.set_bind_group(0, &bg, &[]);
                    rp.draw(0..3, 0..1);
                }
                if chunks.is_empty() {
                    render_pass(&mut enc, target, true);
                }
            }
        }
        backend.submit_after_pending(enc.finish())
    }

    /// The accumulators for a plot: density and hits per pixel, then the peak.
    fn accumulators(&self, backend: &GpuBackend, plot: &PointsPlot) -> Result<wgpu::Buffer> {
        let bytes = (2 * plot.width as u64 * plot.height as u64 + 1) * 4;
        let ctx = backend.context();
        let limit = ctx.device_limits.max_storage_buffer_binding_size.min(ctx.device_limits.max_buffer_size);
        if bytes > limit {
            return Err(Error::InvalidOption {
                option: "canvas",
                reason: format!(
                    "{}×{} px needs {bytes} bytes of accumulators; this device binds at most {limit}",
                    plot.width, plot.height
                ),
            });
        }
        let mut slot = self.accumulators.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((size, buf)) = slot.as_ref()
            && *size == bytes
        {
            return Ok(buf.clone());
        }
        let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("plot accumulators"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        *slot = Some((bytes, buf.clone()));
        Ok(buf)
    }

    /// Paints `scene` into an offscreen `width`×`height` texture and reads it back (tests, and
    /// the CLI could use it).
    pub async fn paint_to_rgba(
        &self,
        backend: &GpuBackend,
        scene: &Scene<'_>,
        width: u32,
        height: u32,
    ) -> Result<super::Rgba> {
        let device = &backend.context().device;
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("offscreen"),
            size: wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: self.format,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        self.paint(backend, scene, &texture.create_view(&Default::default()), width, height)?;
        let row = (4 * width).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
        let buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("offscreen readback"),
            size: row as u64 * height as u64,
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut enc = device.create_command_encoder(&Default::default());
        enc.copy_texture_to_buffer(
            texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &buf,
                layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row), rows_per_image: None },
            },
            wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
        );
        backend.submit_after_pending(enc.finish())?;
        let bytes = backend.read_bytes(&buf, row as u64 * height as u64).await?;
        let bgra = matches!(self.format, wgpu::TextureFormat::Bgra8Unorm | wgpu::TextureFormat::Bgra8UnormSrgb);
        let mut pixels = Vec::with_capacity(4 * (width * height) as usize);
        for y in 0..height as usize {
            for px in bytes[y * row as usize..][..4 * width as usize].chunks_exact(4) {
                pixels.extend_from_slice(&if bgra {
                    [px[2], px[1], px[0], px[3]]
                } else {
                    [px[0], px[1], px[2], px[3]]
                });
            }
        }
        Ok(super::Rgba { width: width as usize, height: height as usize, pixels })
    }
}

/// Workgroups for `count` items, folded into 2-D past the per-dimension limit (and capped:
/// the kernels loop over items with a stride of the whole grid); and the invocations per row.
fn grid(backend: &GpuBackend, count: usize) -> ([u32; 3], u32) {
    let max = backend.context().plan.max_workgroups_per_dim.max(1) as usize;
    let groups = count.div_ceil(WORKGROUP as usize).max(1);
    let (gx, gy) = if groups <= max { (groups, 1) } else { (max, groups.div_ceil(max).min(max)) };
    ([gx as u32, gy as u32, 1], gx as u32 * WORKGROUP)
}

fn render_pass<'e>(enc: &'e mut wgpu::CommandEncoder, target: &wgpu::TextureView, clear: bool) -> wgpu::RenderPass<'e> {
    let [r, g, b, _] = super::BACKGROUND.map(|v| v as f64 / 255.0);
    enc.begin_render_pass(&wgpu::RenderPassDescriptor {
        label: Some("composite"),
        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
            view: target,
            depth_slice: None,
            resolve_target: None,
            ops: wgpu::Operations {
                load: if clear { wgpu::LoadOp::Clear(wgpu::Color { r, g, b, a: 1.0 }) } else { wgpu::LoadOp::Load },
                store: wgpu::StoreOp::Store,
            },
        })],
        depth_stencil_attachment: None,
        timestamp_writes: None,
        occlusion_query_set: None,
        multiview_mask: None,
    })
}

/// A `<canvas>` drawn by WebGPU: its surface, configured for the canvas size at each draw.
#[cfg(target_arch = "wasm32")]
pub struct GpuCanvas {
    surface: wgpu::Surface<'static>,
    painter: GpuPainter,
    alpha: wgpu::CompositeAlphaMode,
    configured: std::cell::Cell<(u32, u32)>,
}

#[cfg(target_arch = "wasm32")]
impl GpuCanvas {
    pub fn new(backend: &GpuBackend, canvas: web_sys::HtmlCanvasElement) -> Result<Self> {
        let ctx = backend.context();
        let surface = ctx.instance.create_surface(wgpu::SurfaceTarget::Canvas(canvas)).map_err(|e| {
            Error::Gpu(format!("cannot draw to this canvas with WebGPU (does it already have a 2d context?): {e}"))
        })?;
        let caps = surface.get_capabilities(&ctx.adapter);
        // A linear (non-sRGB) format: the colours are computed as the CPU's 8-bit values.
        let format = caps
            .formats
            .iter()
            .copied()
            .find(|f| !f.is_srgb())
            .or(caps.formats.first().copied())
            .ok_or_else(|| Error::Gpu("the canvas offers no texture format".into()))?;
        let alpha = if caps.alpha_modes.contains(&wgpu::CompositeAlphaMode::Opaque) {
            wgpu::CompositeAlphaMode::Opaque
        } else {
            caps.alpha_modes.first().copied().unwrap_or(wgpu::CompositeAlphaMode::Auto)
        };
        Ok(Self { surface, painter: GpuPainter::new(backend, format), alpha, configured: std::cell::Cell::new((0, 0)) })
    }

    /// Draws `scene` on the whole canvas (`width`×`height` device pixels) and presents it.
    pub fn draw(&self, backend: &GpuBackend, scene: &Scene<'_>, width: u32, height: u32) -> Result<()> {
        let (width, height) = (width.max(1), height.max(1));
        if self.configured.get() != (width, height) {
            self.surface.configure(
                &backend.context().device,
                &wgpu::SurfaceConfiguration {
                    usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
                    format: self.painter.format(),
                    color_space: wgpu::SurfaceColorSpace::Auto,
                    width,
                    height,
                    present_mode: wgpu::PresentMode::Fifo,
                    desired_maximum_frame_latency: 2,
                    alpha_mode: self.alpha,
                    view_formats: vec![],
                },
            );
            self.configured.set((width, height));
        }
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(f) | wgpu::CurrentSurfaceTexture::Suboptimal(f) => f,
            _ => {
                // Lost or outdated: configure again at the next draw.
                self.configured.set((0, 0));
                return Err(Error::Gpu("the canvas has no frame to draw into (lost or resized); try again".into()));
            }
        };
        let view = frame.texture.create_view(&Default::default());
        self.painter.paint(backend, scene, &view, width, height)?;
        backend.context().queue.present(frame);
        Ok(())
    }
}
