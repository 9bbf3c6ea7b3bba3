//! Compute pipelines, compiled once per device and cached by a typed key. Every kernel is a
//! variant of [`Kernel`]: its shader file, entry point, number of input bindings and family are
//! `match`es, so a missing kernel is a compile error, never a failed lookup at run time.

use crate::sorted_map::SortedMap;
use std::sync::Arc;

/// One WGSL file per kernel family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shader {
    Matmul,
    Conv2d,
    /// conv2d.wgsl + conv_gemm.wgsl (native builds only: see that file).
    ConvGemm,
    Norm,
    Elementwise,
    Embed,
    Reduce,
    Rng,
    Pointwise,
    Graph,
    Peak,
}

/// A shader from `shaders/`, as build.rs copied it into `OUT_DIR` (comments and indentation
/// stripped, line numbers kept).
macro_rules! wgsl {
    ($name:literal) => {
        include_str!(concat!(env!("OUT_DIR"), "/", $name, ".wgsl"))
    };
}
pub(crate) use wgsl;

impl Shader {
    fn source(self) -> &'static str {
        match self {
            Shader::Matmul => wgsl!("matmul"),
            Shader::Conv2d => wgsl!("conv2d"),
            Shader::Norm => concat!(wgsl!("workgroup_reduce"), wgsl!("norm")),
            Shader::Elementwise => wgsl!("elementwise"),
            Shader::Embed => wgsl!("embed"),
            Shader::Reduce => concat!(wgsl!("workgroup_reduce"), wgsl!("reduce")),
            Shader::Rng => concat!(wgsl!("sincos"), wgsl!("rng")),
            Shader::Pointwise => concat!(wgsl!("sincos"), wgsl!("pointwise")),
            Shader::Graph => wgsl!("graph"),
            // The benchmark's kernel and the implicit GEMM are not in the browser bundle (nothing
            // there runs them: `kernels::conv2d`).
            #[cfg(not(target_arch = "wasm32"))]
            Shader::Peak => wgsl!("peak"),
            #[cfg(not(target_arch = "wasm32"))]
            Shader::ConvGemm => concat!(wgsl!("conv2d"), wgsl!("conv_gemm")),
            #[cfg(target_arch = "wasm32")]
            Shader::Peak | Shader::ConvGemm => "",
        }
    }
}

/// Kernel families, for the per-family timing of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Matmul,
    Conv2d,
    Norm,
    Elementwise,
    Embed,
    Reduce,
    Rng,
    Pointwise,
    Graph,
    /// The benchmark's arithmetic-peak kernel.
    Peak,
}

impl Family {
    pub const ALL: [Family; 10] = [
        Family::Matmul,
        Family::Conv2d,
        Family::Norm,
        Family::Elementwise,
        Family::Embed,
        Family::Reduce,
        Family::Rng,
        Family::Pointwise,
        Family::Graph,
        Family::Peak,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Matmul => "matmul",
            Family::Conv2d => "conv2d",
            Family::Norm => "norm",
            Family::Elementwise => "elementwise",
            Family::Embed => "embed",
            Family::Reduce => "reduce",
            Family::Rng => "rng",
            Family::Pointwise => "pointwise",
            Family::Graph => "graph",
            Family::Peak => "peak",
        }
    }
}

/// Every compute kernel, with the parameters that select a distinct pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    /// `vec4`: k is a multiple of 4 and rows are read as whole vec4s.
    Linear {
        vec4: bool,
    },
    /// The workgroup-memory tiled linear layer (any k): 64×64 outputs per workgroup.
    LinearTiled,
    /// The same with 128×128 outputs per workgroup, 8×8 per invocation.
    LinearTiled128,
    /// `k3s1`: the 3×3 stride-1 specialisation.
    Conv2d {
        k3s1: bool,
    },
    /// The implicit-GEMM convolution: 128 pixels × 32 channels per workgroup.
    ConvGemm,
    /// The same with 256 pixels per workgroup, 8 × 4 outputs per invocation.
    ConvGemmWide,
    GroupNorm,
    Silu,
    SiluTangent,
    Add,
    AddChannelBias,
    Upsample2x,
    ConcatAxis1,
    Lincomb,
    Tile,
    GuidanceMix,
    BroadcastRows,
    GatherRows,
    RmsPartial,
    NonfinitePartial,
    FinishRms,
    FinishSum,
    Normal,
    PhiloxWords,
    /// Graph networks' unary functions (`pointwise::UnaryOp`).
    Unary,
    /// Graph networks' broadcasting binary operators.
    Binary,
    StridedCopy,
    BatchedMatmul,
    SoftmaxRows,
    LayerNormRows,
    /// The benchmark's fp32 peak: FMA chains, no memory traffic (`shaders/peak.wgsl`).
    FmaPeak,
}

impl Kernel {
    pub const ALL: [Kernel; 33] = [
        Kernel::Linear { vec4: true },
        Kernel::Linear { vec4: false },
        Kernel::LinearTiled,
        Kernel::LinearTiled128,
        Kernel::Conv2d { k3s1: true },
        Kernel::Conv2d { k3s1: false },
        Kernel::ConvGemm,
        Kernel::ConvGemmWide,
        Kernel::GroupNorm,
        Kernel::Silu,
        Kernel::SiluTangent,
        Kernel::Add,
        Kernel::AddChannelBias,
        Kernel::Upsample2x,
        Kernel::ConcatAxis1,
        Kernel::Lincomb,
        Kernel::Tile,
        Kernel::GuidanceMix,
        Kernel::BroadcastRows,
        Kernel::GatherRows,
        Kernel::RmsPartial,
        Kernel::NonfinitePartial,
        Kernel::FinishRms,
        Kernel::FinishSum,
        Kernel::Normal,
        Kernel::PhiloxWords,
        Kernel::Unary,
        Kernel::Binary,
        Kernel::StridedCopy,
        Kernel::BatchedMatmul,
        Kernel::SoftmaxRows,
        Kernel::LayerNormRows,
        Kernel::FmaPeak,
    ];

    fn shader(self) -> Shader {
        use Kernel::*;
        match self {
            Linear { .. } | LinearTiled | LinearTiled128 => Shader::Matmul,
            Conv2d { .. } => Shader::Conv2d,
            ConvGemm | ConvGemmWide => Shader::ConvGemm,
            GroupNorm => Shader::Norm,
            Silu | SiluTangent | Add | AddChannelBias | Upsample2x | ConcatAxis1 | Lincomb | Tile | GuidanceMix => {
                Shader::Elementwise
            }
            BroadcastRows | GatherRows => Shader::Embed,
            RmsPartial | NonfinitePartial | FinishRms | FinishSum => Shader::Reduce,
            Normal | PhiloxWords => Shader::Rng,
            Unary | Binary => Shader::Pointwise,
            StridedCopy | BatchedMatmul | SoftmaxRows | LayerNormRows => Shader::Graph,
            FmaPeak => Shader::Peak,
        }
    }

    fn entry(self) -> &'static str {
        use Kernel::*;
        match self {
            Linear { vec4: true } => "linear_k4",
            Linear { vec4: false } => "linear_any",
            LinearTiled => "linear_tiled",
            LinearTiled128 => "linear_tiled128",
            Conv2d { k3s1: true } => "conv3x3_s1",
            Conv2d { k3s1: false } => "conv2d",
            // Not in the browser bundle (`Shader::ConvGemm` is empty there).
            #[cfg(not(target_arch = "wasm32"))]
            ConvGemm => "conv_gemm",
            #[cfg(not(target_arch = "wasm32"))]
            ConvGemmWide => "conv_gemm_wide",
            #[cfg(target_arch = "wasm32")]
            ConvGemm | ConvGemmWide => "",
            GroupNorm => "group_norm",
            Silu => "silu",
            SiluTangent => "silu_tangent",
            Add => "add",
            AddChannelBias => "add_channel_bias",
            Upsample2x => "upsample_nearest2x",
            ConcatAxis1 => "concat_axis1",
            Lincomb => "lincomb",
            Tile => "tile",
            GuidanceMix => "guidance_mix",
            BroadcastRows => "broadcast_rows",
            GatherRows => "gather_rows",
            RmsPartial => "rms_partial",
            NonfinitePartial => "nonfinite_partial",
            FinishRms => "finish_rms",
            FinishSum => "finish_sum",
            Normal => "normal",
            PhiloxWords => "philox_words",
            Unary => "unary",
            Binary => "binary",
            StridedCopy => "strided_copy",
            BatchedMatmul => "batched_matmul",
            SoftmaxRows => "softmax_rows",
            LayerNormRows => "layer_norm_rows",
            FmaPeak => "fma_peak",
        }
    }

    /// Read-only storage inputs (bindings 2..2+inputs); binding 1 is the output.
    pub fn inputs(self) -> usize {
        use Kernel::*;
        match self {
            Conv2d { .. } => 5,
            Linear { .. }
            | LinearTiled
            | LinearTiled128
            | ConvGemm
            | ConvGemmWide
            | GroupNorm
            | RmsPartial
            | LayerNormRows => 3,
            SiluTangent | Add | AddChannelBias | ConcatAxis1 | GatherRows | Binary | BatchedMatmul => 2,
            StridedCopy | SoftmaxRows | Unary | Silu | Upsample2x | Tile | GuidanceMix | BroadcastRows
            | NonfinitePartial | FinishRms | FinishSum => 1,
            Lincomb => 1 + LINCOMB_TERMS,
            Normal | PhiloxWords | FmaPeak => 0,
        }
    }

    pub fn family(self) -> Family {
        match self.shader() {
            Shader::Matmul => Family::Matmul,
            Shader::Conv2d | Shader::ConvGemm => Family::Conv2d,
            Shader::Norm => Family::Norm,
            Shader::Elementwise => Family::Elementwise,
            Shader::Embed => Family::Embed,
            Shader::Reduce => Family::Reduce,
            Shader::Rng => Family::Rng,
            Shader::Pointwise => Family::Pointwise,
            Shader::Graph => Family::Graph,
            Shader::Peak => Family::Peak,
        }
    }
}

/// Terms of x + Σ cᵢkᵢ one lincomb dispatch takes (with x and the output that is 8 storage
/// bindings, WebGPU's default per-stage limit). Longer sums are chained.
pub const LINCOMB_TERMS: usize = 6;

/// Bytes of the uniform parameter slot every kernel binds (each `Params` struct fits).
pub const PARAMS_BYTES: u64 = 256;

pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: Arc<wgpu::BindGroupLayout>,
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: SortedMap<Shader, wgpu::ShaderModule>,
    layouts: SortedMap<usize, (Arc<wgpu::BindGroupLayout>, wgpu::PipelineLayout)>,
    pipelines: SortedMap<Kernel, Arc<Pipeline>>,
}

impl PipelineCache {
    /// Number of pipelines compiled so far (each kernel at most once).
    pub fn compiled(&self) -> usize {
        self.pipelines.len()
    }

    pub fn get(&mut self, device: &wgpu::Device, kernel: Kernel) -> Arc<Pipeline> {
        if let Some(p) = self.pipelines.get(&kernel) {
            return p.clone();
        }
        let shader = kernel.shader();
        let module = self.modules.get_or_insert_with(shader, || {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.entry()),
                source: wgpu::ShaderSource::Wgsl(shader.source().into()),
            })
        });
        let inputs = kernel.inputs();
        let (bgl, layout) = self.layouts.get_or_insert_with(inputs, || {
            // Binding 0: the params slot in the uniform arena (dynamic offset); 1: the output;
            // 2..: read-only inputs.
            let mut entries = vec![
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: wgpu::BufferSize::new(PARAMS_BYTES),
                    },
                    count: None,
                },
                storage_entry(1, false),
            ];
            entries.extend((0..inputs).map(|i| storage_entry(2 + i as u32, true)));
            let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("pushforward kernel"),
                entries: &entries,
            });
            let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("pushforward kernel"),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
            (Arc::new(bgl), layout)
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry()),
            layout: Some(layout),
            module,
            entry_point: Some(kernel.entry()),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        let p = Arc::new(Pipeline { pipeline, layout: bgl.clone() });
        self.pipelines.insert(kernel, p.clone());
        p
    }
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}
