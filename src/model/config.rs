//! The JSON config stored in a weights file's safetensors metadata (key `"pushforward"`),
//! parsed strictly and checked against sane bounds so that a hostile file cannot make the
//! loader or the forward pass allocate or loop absurdly.

use crate::error::{Error, Result, num};
use crate::model::json::{self, JResult, Parser, Raw};
use crate::sorted_map::SortedMap;
use std::fmt::Write;

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
pub const MAX_CLASSES: usize = 100_000;
/// Longest class name, in characters (a caption, not a document).
pub const MAX_CLASS_NAME: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub format_version: u32,
    pub arch: ArchConfig,
    pub data: DataConfig,
    pub num_classes: usize,
    pub path: PathConfig,
    pub provenance: Provenance,
    /// Display names of the classes (`"class_names"`, optional): empty, or one per class, in
    /// label order. The demo's class picker and grid captions show them.
    pub class_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArchConfig {
    Mlp(MlpConfig),
    Unet(UnetConfig),
    /// Any network, from its ONNX export (`crate::onnx`): the graph and its declaration.
    Onnx(std::sync::Arc<crate::onnx::OnnxNetwork>),
}

impl ArchConfig {
    /// True when the network is a flow map (takes the step length as a second time input; an
    /// ONNX graph declares it as `inputs.step` or `inputs.end`).
    pub fn flow_map(&self) -> bool {
        match self {
            ArchConfig::Mlp(c) => c.flow_map,
            ArchConfig::Unet(_) => false,
            ArchConfig::Onnx(g) => g.declaration.jump.is_some(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MlpConfig {
    pub data_dim: usize,
    pub width: usize,
    /// Number of hidden Linear+SiLU layers.
    pub depth: usize,
    pub time_embed_dim: usize,
    pub time_scale: f32,
    /// A flow map (MeanFlow, Geng et al. 2025): the network also takes the length h of the
    /// step it is asked about, as a second time embedding after the first, and returns the
    /// average velocity over [t, t + h], so that x + h·u(x, t, h) is the state at t + h; h = 0
    /// is the instantaneous velocity. JSON `"flow_map": true` (absent: false).
    pub flow_map: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UnetConfig {
    pub in_channels: usize,
    pub base_channels: usize,
    pub channel_mult: Vec<usize>,
    pub num_res_blocks: usize,
    pub groups: usize,
    pub time_scale: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DataConfig {
    /// 2-D points; `range` is the plotting box [[xmin, xmax], [ymin, ymax]].
    Points2d { range: [[f32; 2]; 2] },
    /// Images, NCHW, with pixel values mapped to `range` (e.g. [-1, 1]).
    Image { channels: usize, height: usize, width: usize, range: [f32; 2] },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathConfig {
    /// x_t = (1−t)·x0 + t·x1.
    Linear,
    /// x_t = sin(πt/2)·x1 + cos(πt/2)·x0 (variance preserving).
    Cosine,
}

/// Where the model came from. Free-form apart from `metrics`, which maps names to numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provenance {
    pub dataset: Option<String>,
    pub train_steps: Option<u64>,
    pub seed: Option<u64>,
    pub metrics: SortedMap<String, f64>,
    /// Anything else the trainer recorded (batch size, machine, time, versions), as JSON text.
    pub extra: SortedMap<String, Raw>,
}

impl Provenance {
    /// True when the trainer drew noise independently of the data (`"coupling": "independent"`,
    /// train.py's default, also when the field is absent). Only then is the velocity the
    /// marginal E[x1 − x0 | x_t] from which the SDE sampler derives its score; minibatch-OT and
    /// reflow pairs tie x0 to the data.
    pub fn independent_coupling(&self) -> bool {
        self.extra.get("coupling").is_none_or(|c| c.as_str() == "\"independent\"")
    }
}

/// `[a,b]` (after the opening bracket has been written).
fn write_pair(o: &mut String, r: &[f32; 2]) {
    json::write_f32(o, r[0]);
    o.push(',');
    json::write_f32(o, r[1]);
    o.push(']');
}

/// The `kind` field of an internally tagged object, which must be one of `kinds`; and no field
/// that another kind uses.
fn kind<'k, const N: usize>(p: &mut Parser<'_>, f: &json::Fields<'k, N>, kinds: &[(&str, &[&str])]) -> JResult<usize> {
    let k = p.req(f, "kind", |p| p.string().map(|s| s.into_owned()))?;
    let Some(i) = kinds.iter().position(|(name, _)| *name == k) else {
        let names: Vec<&str> = kinds.iter().map(|(n, _)| *n).collect();
        return Err(p.error(format!("unknown kind `{k}` (expected one of {})", names.join(", "))));
    };
    if let Some(extra) = f.present().find(|key| *key != "kind" && !kinds[i].1.contains(key)) {
        return Err(p.error(format!("field `{extra}` does not belong to kind `{k}`")));
    }
    Ok(i)
}

const MLP_FIELDS: &[&str] = &["data_dim", "width", "depth", "time_embed_dim", "time_scale", "flow_map"];
const UNET_FIELDS: &[&str] =
    &["in_channels", "base_channels", "channel_mult", "num_res_blocks", "groups", "time_scale"];
/// Levels read from `channel_mult` before it is rejected (validation allows `MAX_LEVELS`).
const MAX_MULT_READ: usize = 64;

fn parse_config(p: &mut Parser<'_>) -> JResult<ModelConfig> {
    let f = p.fields(["format_version", "arch", "data", "num_classes", "path", "provenance", "class_names"])?;
    // The version first: a future format should say so rather than fail on a renamed field.
    let format_version = p.req(&f, "format_version", |p| {
        let v = p.u64()?;
        u32::try_from(v).map_err(|_| p.error(format!("{v} is not supported (expected {FORMAT_VERSION})")))
    })?;
    Ok(ModelConfig {
        format_version,
        arch: p.req(&f, "arch", parse_arch)?,
        data: p.req(&f, "data", parse_data)?,
        num_classes: p.req(&f, "num_classes", Parser::usize)?,
        path: p.req(&f, "path", |p| {
            let f = p.fields(["kind"])?;
            Ok(match kind(p, &f, &[("linear", &[]), ("cosine", &[])])? {
                0 => PathConfig::Linear,
                _ => PathConfig::Cosine,
            })
        })?,
        provenance: p.opt(&f, "provenance", parse_provenance)?.unwrap_or_default(),
        class_names: p
            .opt(&f, "class_names", |p| {
                let mut names = Vec::new();
                p.array(|p, i| {
                    // A bound on the count before the per-name work: validate() checks it against
                    // num_classes, but a lying file must not make the parser collect millions first.
                    if i >= MAX_CLASSES {
                        return Err(p.error(format!("more than {MAX_CLASSES} names")));
                    }
                    names.push(p.string()?.into_owned());
                    Ok(())
                })?;
                Ok(names)
            })?
            .unwrap_or_default(),
    })
}

fn parse_arch(p: &mut Parser<'_>) -> JResult<ArchConfig> {
    let f = p.fields([
        "kind",
        "data_dim",
        "width",
        "depth",
        "time_embed_dim",
        "time_scale",
        "in_channels",
        "base_channels",
        "channel_mult",
        "num_res_blocks",
        "groups",
        "flow_map",
    ])?;
    Ok(match kind(p, &f, &[("mlp", MLP_FIELDS), ("unet", UNET_FIELDS)])? {
        0 => ArchConfig::Mlp(MlpConfig {
            data_dim: p.req(&f, "data_dim", Parser::usize)?,
            width: p.req(&f, "width", Parser::usize)?,
            depth: p.req(&f, "depth", Parser::usize)?,
            time_embed_dim: p.req(&f, "time_embed_dim", Parser::usize)?,
            time_scale: p.req(&f, "time_scale", Parser::f32)?,
            flow_map: p.opt(&f, "flow_map", Parser::bool)?.unwrap_or(false),
        }),
        _ => ArchConfig::Unet(UnetConfig {
            in_channels: p.req(&f, "in_channels", Parser::usize)?,
            base_channels: p.req(&f, "base_channels", Parser::usize)?,
            channel_mult: p.req(&f, "channel_mult", |p| p.usize_array(MAX_MULT_READ, "levels"))?,
            num_res_blocks: p.req(&f, "num_res_blocks", Parser::usize)?,
            groups: p.req(&f, "groups", Parser::usize)?,
            time_scale: p.req(&f, "time_scale", Parser::f32)?,
        }),
    })
}

pub(crate) fn parse_data(p: &mut Parser<'_>) -> JResult<DataConfig> {
    let f = p.fields(["kind", "range", "channels", "height", "width"])?;
    let pair = |p: &mut Parser<'_>| p.array_of::<2, f32>(Parser::f32);
    Ok(match kind(p, &f, &[("points2d", &["range"]), ("image", &["channels", "height", "width", "range"])])? {
        0 => DataConfig::Points2d { range: p.req(&f, "range", |p| p.array_of::<2, [f32; 2]>(pair))? },
        _ => DataConfig::Image {
            channels: p.req(&f, "channels", Parser::usize)?,
            height: p.req(&f, "height", Parser::usize)?,
            width: p.req(&f, "width", Parser::usize)?,
            range: p.req(&f, "range", pair)?,
        },
    })
}

/// Free-form: `dataset` (string), `train_steps` and `seed` (integers) and `metrics` (names to
/// numbers) are typed, each may be `null`; any other key keeps its JSON text.
pub(crate) fn parse_provenance(p: &mut Parser<'_>) -> JResult<Provenance> {
    let mut pv = Provenance::default();
    let mut seen = [false; 4];
    p.object(|p, key| {
        let slot = ["dataset", "train_steps", "seed", "metrics"].iter().position(|k| *k == key);
        if let Some(i) = slot
            && std::mem::replace(&mut seen[i], true)
        {
            return Err(p.error("duplicate field"));
        }
        let nullable_u64 = |p: &mut Parser<'_>| if p.null() { Ok(None) } else { p.u64().map(Some) };
        match slot {
            Some(0) => pv.dataset = if p.null() { None } else { Some(p.string()?.into_owned()) },
            Some(1) => pv.train_steps = nullable_u64(p)?,
            Some(2) => pv.seed = nullable_u64(p)?,
            Some(_) => p.object(|p, name| {
                let v = p.f64()?;
                match pv.metrics.insert(name.to_string(), v) {
                    None => Ok(()),
                    Some(_) => Err(p.error("duplicate metric")),
                }
            })?,
            None => {
                let v = p.raw()?;
                if pv.extra.insert(key.to_string(), v).is_some() {
                    return Err(p.error("duplicate field"));
                }
            }
        }
        Ok(())
    })?;
    Ok(pv)
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
        return Err(bad(field, format!("{} must be finite and in (0, 1e6]", num(v))));
    }
    Ok(())
}

impl ModelConfig {
    /// A 2-D points MLP of the given size (range ±3, linear path, unconditional): for tests,
    /// benchmarks and random-weight models.
    pub fn mlp_preset(width: usize, depth: usize) -> Self {
        ModelConfig {
            format_version: FORMAT_VERSION,
            arch: ArchConfig::Mlp(MlpConfig {
                data_dim: 2,
                width,
                depth,
                time_embed_dim: 32,
                time_scale: 1000.0,
                flow_map: false,
            }),
            data: DataConfig::Points2d { range: [[-3.0, 3.0], [-3.0, 3.0]] },
            num_classes: 0,
            path: PathConfig::Linear,
            provenance: Provenance::default(),
            class_names: Vec::new(),
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
            class_names: Vec::new(),
        }
    }

    /// Parses and validates the JSON config string. Unknown, duplicate and missing fields are
    /// errors naming the field (`arch.width`); syntax errors name the byte.
    pub fn from_json(text: &str) -> Result<Self> {
        let mut p = Parser::new(text);
        let cfg = parse_config(&mut p)
            .and_then(|cfg| p.finish().map(|()| cfg))
            .map_err(|e| bad(if e.path.is_empty() { METADATA_KEY } else { &e.path }, e.msg))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as compact JSON (the inverse of `from_json`; `None` provenance fields are left out).
    pub fn to_json(&self) -> String {
        let mut o = String::new();
        let _ = write!(o, "{{\"format_version\":{},\"arch\":", self.format_version);
        match &self.arch {
            ArchConfig::Mlp(m) => {
                let _ = write!(
                    o,
                    "{{\"kind\":\"mlp\",\"data_dim\":{},\"width\":{},\"depth\":{},\"time_embed_dim\":{},\"time_scale\":",
                    m.data_dim, m.width, m.depth, m.time_embed_dim
                );
                json::write_f32(&mut o, m.time_scale);
                if m.flow_map {
                    o.push_str(",\"flow_map\":true");
                }
            }
            ArchConfig::Unet(u) => {
                let _ = write!(
                    o,
                    "{{\"kind\":\"unet\",\"in_channels\":{},\"base_channels\":{},\"channel_mult\":{:?},\"num_res_blocks\":{},\"groups\":{},\"time_scale\":",
                    u.in_channels, u.base_channels, u.channel_mult, u.num_res_blocks, u.groups
                );
                json::write_f32(&mut o, u.time_scale);
            }
            ArchConfig::Onnx(g) => {
                // The declaration, less its closing brace (closed below with the others).
                let d = g.declaration.to_json();
                o.push_str(&d[..d.len() - 1]);
                let _ = write!(o, ",\"nodes\":{},\"opset\":{}", g.graph.nodes.len(), g.graph.opset);
                if g.declaration.jump.is_some() {
                    o.push_str(",\"flow_map\":true");
                }
            }
        }
        o.push_str("},\"data\":");
        match &self.data {
            DataConfig::Points2d { range } => {
                o.push_str("{\"kind\":\"points2d\",\"range\":[");
                for (i, r) in range.iter().enumerate() {
                    o.push_str(if i == 0 { "[" } else { ",[" });
                    write_pair(&mut o, r);
                }
                o.push(']');
            }
            DataConfig::Image { channels, height, width, range } => {
                let _ = write!(
                    o,
                    "{{\"kind\":\"image\",\"channels\":{channels},\"height\":{height},\"width\":{width},\"range\":["
                );
                write_pair(&mut o, range);
            }
        }
        let path = match self.path {
            PathConfig::Linear => "linear",
            PathConfig::Cosine => "cosine",
        };
        let _ = write!(o, "}},\"num_classes\":{},", self.num_classes);
        if !self.class_names.is_empty() {
            o.push_str("\"class_names\":[");
            for (i, name) in self.class_names.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                json::write_str(&mut o, name);
            }
            o.push_str("],");
        }
        let _ = write!(o, "\"path\":{{\"kind\":\"{path}\"}},\"provenance\":{{");
        let pv = &self.provenance;
        if let Some(d) = &pv.dataset {
            o.push_str("\"dataset\":");
            json::write_str(&mut o, d);
            o.push(',');
        }
        for (key, v) in [("train_steps", pv.train_steps), ("seed", pv.seed)] {
            if let Some(v) = v {
                let _ = write!(o, "\"{key}\":{v},");
            }
        }
        o.push_str("\"metrics\":{");
        for (i, (k, v)) in pv.metrics.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            json::write_str(&mut o, k);
            o.push(':');
            json::write_f64(&mut o, *v);
        }
        o.push('}');
        for (k, v) in &pv.extra {
            o.push(',');
            json::write_str(&mut o, k);
            o.push(':');
            o.push_str(v.as_str());
        }
        o.push_str("}}");
        o
    }

    /// Shape of one sample (without the batch dimension).
    pub fn sample_shape(&self) -> Vec<usize> {
        match &self.data {
            DataConfig::Points2d { .. } => vec![2],
            DataConfig::Image { channels, height, width, .. } => vec![*channels, *height, *width],
        }
    }

    /// Multiply-adds ×2 of one network evaluation on one sample, for the reference
    /// architectures (linear layers and convolutions; what GFLOP/s figures count).
    pub fn flops_per_sample(&self) -> Option<f64> {
        match (&self.arch, &self.data) {
            (ArchConfig::Mlp(c), _) => Some(super::mlp::flops_per_sample(c)),
            (ArchConfig::Unet(c), DataConfig::Image { height, width, .. }) => {
                Some(super::unet::flops_per_sample(c, *height, *width))
            }
            _ => None,
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
        if !self.class_names.is_empty() && self.class_names.len() != self.num_classes {
            return Err(bad(
                "class_names",
                format!(
                    "{} names for {} classes (give one per class, or none)",
                    self.class_names.len(),
                    self.num_classes
                ),
            ));
        }
        if let Some(i) = self.class_names.iter().position(|n| n.is_empty() || n.chars().count() > MAX_CLASS_NAME) {
            return Err(bad("class_names", format!("name {i}: a name is 1 to {MAX_CLASS_NAME} characters")));
        }
        match &self.data {
            DataConfig::Points2d { range } => {
                for (axis, r) in range.iter().enumerate() {
                    if !(r[0].is_finite() && r[1].is_finite() && r[0] < r[1]) {
                        return Err(bad(
                            "data.range",
                            format!("axis {axis}: [{}, {}] must be finite with min < max", num(r[0]), num(r[1])),
                        ));
                    }
                }
            }
            DataConfig::Image { channels, height, width, range } => {
                check_range("data.channels", *channels, 1, MAX_IMAGE_CHANNELS)?;
                check_range("data.height", *height, 1, MAX_IMAGE_SIDE)?;
                check_range("data.width", *width, 1, MAX_IMAGE_SIDE)?;
                if !(range[0].is_finite() && range[1].is_finite() && range[0] < range[1]) {
                    return Err(bad(
                        "data.range",
                        format!("[{}, {}] must be finite with min < max", num(range[0]), num(range[1])),
                    ));
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
            // Checked against its declaration when loaded (`onnx::load`).
            ArchConfig::Onnx(_) => {}
        }
        Ok(())
    }
}
