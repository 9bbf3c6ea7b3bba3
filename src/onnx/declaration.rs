//! How a graph says what it is: which input is x / t / y, t's shape, direction and scale, what
//! the output predicts, the data it makes. JSON in the ONNX `metadata_props` key `pushforward`
//! (written by `train/onnx_export.py`), or passed beside the file. Unknown or inconsistent
//! declarations are errors naming the field.

use super::graph::{Graph, GraphInput};
use super::proto::Dim;
use crate::error::{Error, Result, num, shown};
use crate::model::json::{self, JResult, Parser};
use crate::model::{DataConfig, PathConfig, Provenance};

/// The default floor of the data/noise conversions' denominators (as `train/onnx_export.py`).
pub const DEFAULT_OUTPUT_EPS: f32 = 0.05;

/// The metadata key that holds the declaration.
pub const METADATA_KEY: &str = "pushforward";

/// How t reaches the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeShape {
    /// A 0-d tensor.
    Scalar,
    /// [n].
    Batch,
    /// [n, 1].
    Batch1,
}

/// A flow map's second time input (MeanFlow, shortcut models): its output is then the average
/// velocity over [t, t + h] (x + h·out is its jump to t + h), not the instantaneous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JumpInput {
    /// The input takes the step length h ≥ 0 in the model's units (h·scale; "step").
    Step(String),
    /// The input takes the time the jump ends at, as the model counts time (τ(t + h)·scale:
    /// MeanFlow's r; "end").
    End(String),
}

impl JumpInput {
    pub fn name(&self) -> &str {
        match self {
            JumpInput::Step(n) | JumpInput::End(n) => n,
        }
    }
}

/// What the graph's output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prediction {
    /// dx/dt in the model's own time direction.
    Velocity,
    /// x1 (the data): v = (x̂1 − x_t)/(1 − t).
    Data,
    /// x0 (the noise): v = (x_t − x̂0)/t.
    Noise,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    pub x: String,
    pub t: String,
    pub y: Option<String>,
    /// Set for a flow map; fed in t's shape.
    pub jump: Option<JumpInput>,
    pub time_shape: TimeShape,
    /// The model's time runs data → noise (τ = 1 − t; its velocity is negated).
    pub reversed: bool,
    /// The model takes τ·scale.
    pub time_scale: f32,
    pub prediction: Prediction,
    /// The floor of the data/noise conversions' denominators (1 − t, t).
    pub output_eps: f32,
    pub num_classes: usize,
    /// The class id the model was trained to treat as "no class" (guidance).
    pub null_class: usize,
    pub data: DataConfig,
    pub path: PathConfig,
    pub provenance: Provenance,
}

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::Config { field: format!("declaration.{field}"), reason: reason.into() }
}

impl Declaration {
    /// Parses the declaration JSON.
    pub fn parse(text: &str) -> Result<Self> {
        let mut p = Parser::new(text);
        let d = parse(&mut p).and_then(|d| p.finish().map(|_| d)).map_err(|e| bad("json", e.to_string()))?;
        d.validate()?;
        Ok(d)
    }

    fn validate(&self) -> Result<()> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0 && self.time_scale <= 1e6) {
            return Err(bad("time.scale", format!("{} must be in (0, 1e6]", num(self.time_scale))));
        }
        if self.num_classes > crate::model::config::MAX_CLASSES {
            return Err(bad(
                "num_classes",
                format!("{} is over {}", self.num_classes, crate::model::config::MAX_CLASSES),
            ));
        }
        if (self.num_classes > 0) != self.y.is_some() {
            return Err(bad("inputs.y", "a class input is declared exactly when num_classes > 0"));
        }
        if self.num_classes > 0 && self.null_class < self.num_classes {
            return Err(bad(
                "null_class",
                format!(
                    "{} is one of the {} real classes (it must be ≥ num_classes)",
                    self.null_class, self.num_classes
                ),
            ));
        }
        if self.jump.is_some() && self.prediction != Prediction::Velocity {
            return Err(bad(
                "output",
                "a flow map (inputs.step or inputs.end) predicts the average velocity: output velocity",
            ));
        }
        if self.path != PathConfig::Linear && self.prediction != Prediction::Velocity {
            return Err(bad("output", "data and noise predictions are converted for the linear path only"));
        }
        Ok(())
    }

    /// Checks the declaration against the graph's inputs: each declared input exists, every
    /// graph input is declared, and fixed dimensions agree with the data shape.
    pub fn check_graph(&self, g: &Graph) -> Result<()> {
        let find = |name: &str, field: &str| -> Result<&GraphInput> {
            g.inputs.iter().find(|i| i.name == name).ok_or_else(|| {
                let names: Vec<String> = g.inputs.iter().map(|i| format!("`{}`", shown(&i.name, 40))).collect();
                bad(field, format!("the graph has no input `{}` (its inputs: {})", shown(name, 40), names.join(", ")))
            })
        };
        let x = find(&self.x, "inputs.x")?;
        let t = find(&self.t, "inputs.t")?;
        let jump = match &self.jump {
            Some(j) => {
                Some(find(j.name(), if matches!(j, JumpInput::Step(_)) { "inputs.step" } else { "inputs.end" })?)
            }
            None => None,
        };
        if x.int || t.int || jump.is_some_and(|j| j.int) {
            return Err(bad("inputs", "x, t and a flow map's step or end must be float inputs"));
        }
        if let Some(y) = &self.y
            && !find(y, "inputs.y")?.int
        {
            return Err(bad("inputs.y", "the class input must be an integer (int64) input"));
        }
        for i in &g.inputs {
            if i.name != self.x
                && i.name != self.t
                && Some(&i.name) != self.y.as_ref()
                && Some(i.name.as_str()) != self.jump.as_ref().map(JumpInput::name)
            {
                return Err(bad(
                    "inputs",
                    format!("graph input `{}` is not declared as x, t, y, step or end", shown(&i.name, 40)),
                ));
            }
        }
        let sample = match self.data {
            DataConfig::Points2d { .. } => vec![2],
            DataConfig::Image { channels, height, width, .. } => vec![channels, height, width],
        };
        if let Some(dims) = &x.shape {
            let fixed_ok = dims.len() == sample.len() + 1
                && dims[1..].iter().zip(&sample).all(|(d, &s)| !matches!(d, Dim::Value(v) if *v != s as i64));
            if !fixed_ok {
                return Err(bad(
                    "data",
                    format!("input `{}` has shape {dims:?}, the data needs [n, {sample:?}]", shown(&self.x, 40)),
                ));
            }
        }
        let rank = match self.time_shape {
            TimeShape::Scalar => 0,
            TimeShape::Batch => 1,
            TimeShape::Batch1 => 2,
        };
        // A flow map's second time comes in t's shape.
        for i in [Some(t), jump].into_iter().flatten() {
            if let Some(dims) = &i.shape
                && dims.len() != rank
            {
                return Err(bad(
                    "time.shape",
                    format!("input `{}` has rank {}, the declaration says {rank}", shown(&i.name, 40), dims.len()),
                ));
            }
        }
        Ok(())
    }

    /// t's shape for a batch of n.
    pub fn t_shape(&self, n: usize) -> Vec<usize> {
        match self.time_shape {
            TimeShape::Scalar => vec![],
            TimeShape::Batch => vec![n],
            TimeShape::Batch1 => vec![n, 1],
        }
    }

    /// The value the graph's t input gets at sampler time t.
    pub fn model_time(&self, t: f32) -> f32 {
        (if self.reversed { 1.0 - t } else { t }) * self.time_scale
    }

    /// The value a flow map's second time input gets for the jump from t to t + step.
    pub fn jump_time(&self, t: f32, step: f32) -> f32 {
        match self.jump {
            Some(JumpInput::End(_)) => self.model_time(t + step),
            _ => step * self.time_scale,
        }
    }

    /// (a, b) with v = a·output + b·x at time t.
    pub fn velocity_coefficients(&self, t: f32) -> (f32, f32) {
        // The conversions divide by 1 − t or t: near the end where they vanish, a floor keeps v
        // finite (the state is at the prediction there anyway).
        let floor = self.output_eps;
        match self.prediction {
            Prediction::Velocity => (if self.reversed { -1.0 } else { 1.0 }, 0.0),
            Prediction::Data => {
                let d = (1.0 - t).max(floor);
                (1.0 / d, -1.0 / d)
            }
            Prediction::Noise => {
                let d = t.max(floor);
                (-1.0 / d, 1.0 / d)
            }
        }
    }

    /// The declaration as JSON (for `info()`).
    pub fn to_json(&self) -> String {
        let mut o = String::from("{\"kind\":\"onnx\",\"inputs\":{\"x\":");
        json::write_str(&mut o, &self.x);
        o.push_str(",\"t\":");
        json::write_str(&mut o, &self.t);
        if let Some(y) = &self.y {
            o.push_str(",\"y\":");
            json::write_str(&mut o, y);
        }
        if let Some(j) = &self.jump {
            o.push_str(if matches!(j, JumpInput::Step(_)) { ",\"step\":" } else { ",\"end\":" });
            json::write_str(&mut o, j.name());
        }
        o.push_str("},\"time\":{\"shape\":\"");
        o.push_str(match self.time_shape {
            TimeShape::Scalar => "scalar",
            TimeShape::Batch => "batch",
            TimeShape::Batch1 => "batch1",
        });
        o.push_str("\",\"direction\":\"");
        o.push_str(if self.reversed { "data_to_noise" } else { "noise_to_data" });
        o.push_str("\",\"scale\":");
        json::write_f32(&mut o, self.time_scale);
        o.push_str("},\"output\":\"");
        o.push_str(match self.prediction {
            Prediction::Velocity => "velocity",
            Prediction::Data => "data",
            Prediction::Noise => "noise",
        });
        o.push_str("\",\"output_eps\":");
        json::write_f32(&mut o, self.output_eps);
        o.push_str(&format!(",\"null_class\":{}}}", self.null_class));
        o
    }
}

fn parse(p: &mut Parser<'_>) -> JResult<Declaration> {
    let f = p.fields([
        "format_version",
        "inputs",
        "time",
        "output",
        "output_eps",
        "num_classes",
        "null_class",
        "data",
        "path",
        "provenance",
    ])?;
    let version = p.req(&f, "format_version", Parser::u64)?;
    if version != 1 {
        return Err(p.error(format!("format_version {version} is not supported (expected 1)")));
    }
    let (x, t, y, jump) = p.req(&f, "inputs", |p| {
        let f = p.fields(["x", "t", "y", "step", "end"])?;
        let s = |p: &mut Parser<'_>| p.string().map(|s| s.into_owned());
        let (x, t, y) = (p.req(&f, "x", s)?, p.req(&f, "t", s)?, p.opt(&f, "y", s)?);
        let jump = match (p.opt(&f, "step", s)?, p.opt(&f, "end", s)?) {
            (Some(_), Some(_)) => return Err(p.error("a flow map declares step or end, not both")),
            (step, end) => step.map(JumpInput::Step).or(end.map(JumpInput::End)),
        };
        let mut names = vec![x.as_str(), t.as_str()];
        names.extend(y.as_deref().into_iter().chain(jump.as_ref().map(JumpInput::name)));
        if (1..names.len()).any(|i| names[..i].contains(&names[i])) {
            return Err(p.error("the declared input names must be distinct"));
        }
        Ok((x, t, y, jump))
    })?;
    let (time_shape, reversed, time_scale) = p
        .opt(&f, "time", |p| {
            let f = p.fields(["shape", "direction", "scale"])?;
            let shape = match p.opt(&f, "shape", |p| p.string().map(|s| s.into_owned()))?.as_deref() {
                None | Some("batch") => TimeShape::Batch,
                Some("scalar") => TimeShape::Scalar,
                Some("batch1") => TimeShape::Batch1,
                Some(o) => return Err(p.error(format!("time.shape `{o}` (expected scalar, batch or batch1)"))),
            };
            let reversed = match p.opt(&f, "direction", |p| p.string().map(|s| s.into_owned()))?.as_deref() {
                None | Some("noise_to_data") => false,
                Some("data_to_noise") => true,
                Some(o) => {
                    return Err(p.error(format!("time.direction `{o}` (expected noise_to_data or data_to_noise)")));
                }
            };
            Ok((shape, reversed, p.opt(&f, "scale", Parser::f32)?.unwrap_or(1.0)))
        })?
        .unwrap_or((TimeShape::Batch, false, 1.0));
    let prediction = match p.opt(&f, "output", |p| p.string().map(|s| s.into_owned()))?.as_deref() {
        None | Some("velocity") => Prediction::Velocity,
        Some("data") => Prediction::Data,
        Some("noise") => Prediction::Noise,
        Some(o) => return Err(p.error(format!("output `{o}` (expected velocity, data or noise)"))),
    };
    let output_eps = p.opt(&f, "output_eps", Parser::f32)?;
    if output_eps.is_some() && prediction == Prediction::Velocity {
        return Err(p.error("output_eps applies to output data or noise only"));
    }
    let output_eps = output_eps.unwrap_or(DEFAULT_OUTPUT_EPS);
    if !(output_eps > 0.0 && output_eps <= 0.5) {
        return Err(p.error(format!("output_eps {} must be in (0, 0.5]", num(output_eps))));
    }
    let num_classes = p.opt(&f, "num_classes", Parser::usize)?.unwrap_or(0);
    let null_class = p.opt(&f, "null_class", Parser::usize)?.unwrap_or(num_classes);
    let data = p.req(&f, "data", crate::model::config::parse_data)?;
    let path = p
        .opt(&f, "path", |p| {
            let f = p.fields(["kind"])?;
            match p.req(&f, "kind", |p| p.string().map(|s| s.into_owned()))?.as_str() {
                "linear" => Ok(PathConfig::Linear),
                "cosine" => Ok(PathConfig::Cosine),
                o => Err(p.error(format!("path.kind `{o}` (expected linear or cosine)"))),
            }
        })?
        .unwrap_or(PathConfig::Linear);
    let provenance = p.opt(&f, "provenance", crate::model::config::parse_provenance)?.unwrap_or_default();
    Ok(Declaration {
        x,
        t,
        y,
        jump,
        time_shape,
        reversed,
        time_scale,
        prediction,
        output_eps,
        num_classes,
        null_class,
        data,
        path,
        provenance,
    })
}
