//! The JSON config stored in a weights file's safetensors metadata (key `"pushforward"`),
//! parsed strictly and checked against sane bounds so that a hostile file cannot make the
//! loader or the forward pass allocate or loop absurdly.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FORMAT_VERSION: u32 = 1;
/// Metadata key holding the JSON config.
pub const METADATA_KEY: &str = "pushforward";

// Bounds: generous for real models, small enough that a lying config is rejected up front.
const MAX_WIDTH: usize = 8192;
const MAX_DEPTH: usize = 64;
const MAX_EMBED_DIM: usize = 4096;
const MAX_DATA_DIM: usize = 4096;
const MAX_CHANNELS: usize = 2048;
const MAX_LEVELS: usize = 6;
const MAX_RES_BLOCKS: usize = 8;
const MAX_IMAGE_SIDE: usize = 1024;
const MAX_IMAGE_CHANNELS: usize = 4;
const MAX_CLASSES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub format_version: u32,
    pub arch: ArchConfig,
    pub data: DataConfig,
    pub num_classes: usize,
    pub path: PathConfig,
    #[serde(default)]
    pub provenance: Provenance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ArchConfig {
    Mlp(MlpConfig),
    Unet(UnetConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    pub data_dim: usize,
    pub width: usize,
    /// Number of hidden Linear+SiLU layers.
    pub depth: usize,
    pub time_embed_dim: usize,
    pub time_scale: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnetConfig {
    pub in_channels: usize,
    pub base_channels: usize,
    pub channel_mult: Vec<usize>,
    pub num_res_blocks: usize,
    pub groups: usize,
    pub time_scale: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DataConfig {
    /// 2-D points; `range` is the plotting box [[xmin, xmax], [ymin, ymax]].
    Points2d { range: [[f32; 2]; 2] },
    /// Images, NCHW, with pixel values mapped to `range` (e.g. [-1, 1]).
    Image { channels: usize, height: usize, width: usize, range: [f32; 2] },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PathConfig {
    /// x_t = (1−t)·x0 + t·x1.
    Linear,
    /// x_t = sin(πt/2)·x1 + cos(πt/2)·x0 (variance preserving).
    Cosine,
}

/// Where the model came from. Free-form apart from `metrics`, which maps names to numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    #[serde(default)]
    pub dataset: Option<String>,
    #[serde(default)]
    pub train_steps: Option<u64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Anything else the trainer recorded (batch size, machine, time, versions).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::Config { field: field.to_string(), reason: reason.into() }
}

fn check_range(field: &str, v: usize, lo: usize, hi: usize) -> Result<()> {
    if v < lo || v > hi {
        return Err(bad(field, format!("{v} is outside [{lo}, {hi}]")));
    }
    Ok(())
}

fn check_time_scale(field: &str, v: f32) -> Result<()> {
    if !v.is_finite() || v <= 0.0 || v > 1e6 {
        return Err(bad(field, format!("{v} must be finite and in (0, 1e6]")));
    }
    Ok(())
}

impl ModelConfig {
    /// A 2-D points MLP of the given size (range ±3, linear path, unconditional): for tests,
    /// benchmarks and random-weight models.
    pub fn mlp_preset(width: usize, depth: usize) -> Self {
        ModelConfig {
            format_version: FORMAT_VERSION,
            arch: ArchConfig::Mlp(MlpConfig { data_dim: 2, width, depth, time_embed_dim: 32, time_scale: 1000.0 }),
            data: DataConfig::Points2d { range: [[-3.0, 3.0], [-3.0, 3.0]] },
            num_classes: 0,
            path: PathConfig::Linear,
            provenance: Provenance::default(),
        }
    }

    /// An mnist-sized class-conditional U-Net (base 32, mult [1,2,2], 1 res block, 8 groups,
    /// 10 classes, 1×28×28 in [-1, 1]): the size benchmarks and GPU tests use with random
    /// weights. (The shipped `models/mnist.safetensors` is base 24; see models/README.md.)
    pub fn mnist_unet_preset() -> Self {
        ModelConfig {
            format_version: FORMAT_VERSION,
            arch: ArchConfig::Unet(UnetConfig {
                in_channels: 1,
                base_channels: 32,
                channel_mult: vec![1, 2, 2],
                num_res_blocks: 1,
                groups: 8,
                time_scale: 1000.0,
            }),
            data: DataConfig::Image { channels: 1, height: 28, width: 28, range: [-1.0, 1.0] },
            num_classes: 10,
            path: PathConfig::Linear,
            provenance: Provenance::default(),
        }
    }

    /// Parses and validates the JSON config string.
    pub fn from_json(json: &str) -> Result<Self> {
        let cfg: ModelConfig =
            serde_json::from_str(json).map_err(|e| bad(METADATA_KEY, format!("not a valid config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("config serialises")
    }

    /// Shape of one sample (without the batch dimension).
    pub fn sample_shape(&self) -> Vec<usize> {
        match &self.data {
            DataConfig::Points2d { .. } => vec![2],
            DataConfig::Image { channels, height, width, .. } => vec![*channels, *height, *width],
        }
    }

    /// Number of values in one sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape().iter().product()
    }

    pub fn validate(&self) -> Result<()> {
        if self.format_version != FORMAT_VERSION {
            return Err(bad(
                "format_version",
                format!("{} is not supported (expected {FORMAT_VERSION})", self.format_version),
            ));
        }
        check_range("num_classes", self.num_classes, 0, MAX_CLASSES)?;
        match &self.data {
            DataConfig::Points2d { range } => {
                for (axis, r) in range.iter().enumerate() {
                    if !(r[0].is_finite() && r[1].is_finite() && r[0] < r[1]) {
                        return Err(bad("data.range", format!("axis {axis}: {r:?} must be finite with min < max")));
                    }
                }
            }
            DataConfig::Image { channels, height, width, range } => {
                check_range("data.channels", *channels, 1, MAX_IMAGE_CHANNELS)?;
                check_range("data.height", *height, 1, MAX_IMAGE_SIDE)?;
                check_range("data.width", *width, 1, MAX_IMAGE_SIDE)?;
                if !(range[0].is_finite() && range[1].is_finite() && range[0] < range[1]) {
                    return Err(bad("data.range", format!("{range:?} must be finite with min < max")));
                }
            }
        }
        match &self.arch {
            ArchConfig::Mlp(m) => {
                let DataConfig::Points2d { .. } = self.data else {
                    return Err(bad("arch.kind", "the mlp architecture takes points2d data"));
                };
                if m.data_dim != 2 {
                    return Err(bad("arch.data_dim", format!("{} must equal the data dimension 2", m.data_dim)));
                }
                check_range("arch.data_dim", m.data_dim, 1, MAX_DATA_DIM)?;
                check_range("arch.width", m.width, 1, MAX_WIDTH)?;
                check_range("arch.depth", m.depth, 1, MAX_DEPTH)?;
                check_range("arch.time_embed_dim", m.time_embed_dim, 2, MAX_EMBED_DIM)?;
                if m.time_embed_dim % 2 != 0 {
                    return Err(bad("arch.time_embed_dim", format!("{} must be even", m.time_embed_dim)));
                }
                check_time_scale("arch.time_scale", m.time_scale)?;
            }
            ArchConfig::Unet(u) => {
                let DataConfig::Image { channels, height, width, .. } = self.data else {
                    return Err(bad("arch.kind", "the unet architecture takes image data"));
                };
                if u.in_channels != channels {
                    return Err(bad(
                        "arch.in_channels",
                        format!("{} must equal data.channels {channels}", u.in_channels),
                    ));
                }
                check_range("arch.base_channels", u.base_channels, 1, MAX_CHANNELS)?;
                check_range("arch.channel_mult (levels)", u.channel_mult.len(), 1, MAX_LEVELS)?;
                for &m in &u.channel_mult {
                    check_range("arch.channel_mult", m, 1, 64)?;
                    if u.base_channels * m > MAX_CHANNELS {
                        return Err(bad(
                            "arch.channel_mult",
                            format!("{m}×{} channels is over {MAX_CHANNELS}", u.base_channels),
                        ));
                    }
                }
                check_range("arch.num_res_blocks", u.num_res_blocks, 1, MAX_RES_BLOCKS)?;
                check_range("arch.groups", u.groups, 1, MAX_CHANNELS)?;
                check_time_scale("arch.time_scale", u.time_scale)?;
                if u.base_channels % 2 != 0 {
                    return Err(bad("arch.base_channels", "must be even (it is the time-embedding width)"));
                }
                let div = 1usize << (u.channel_mult.len() - 1);
                if height % div != 0 || width % div != 0 {
                    return Err(bad(
                        "data.height/width",
                        format!("{height}×{width} must be divisible by 2^(levels-1) = {div}"),
                    ));
                }
                // Every GroupNorm's channel count must split into `groups`.
                for (c, what) in crate::model::unet::norm_channel_counts(u) {
                    if c % u.groups != 0 {
                        return Err(bad(
                            "arch.groups",
                            format!("{} does not divide the {c} channels of {what}", u.groups),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
