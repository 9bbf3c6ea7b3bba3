//! The one contract for request options: names, defaults, limits and validation of every option
//! the JS API, its CPU workers and the CLI accept. A caller turns its own input (a JS object, a
//! worker message, `--flag value` pairs) into [`Entries`] and calls the parser here; nothing
//! else restates a default or a bound. `defaults_json` publishes them for the demo and embed.

use crate::error::{Error, Result, num, shown};
use crate::model::{DataConfig, ModelConfig};
use crate::ode::Solver;
use crate::sampler::{Labels, MAX_BATCH_VALUES, MAX_GUIDANCE, MAX_STEPS, SampleOptions};

/// Trajectory lines are drawn for this many samples (more would hide the density); only their
/// frames are kept unless every sample's path is asked for (`trajectories: 'all'`).
pub const MAX_DRAWN_PATHS: usize = 300;
/// Default sample counts: a quick, readable picture on any backend.
pub const DEFAULT_POINTS: usize = 4096;
pub const DEFAULT_IMAGES: usize = 20;
/// `pathsFrom` takes at most this many points.
pub const MAX_CHOSEN_POINTS: usize = 4096;
/// Grids of `density` and `velocityField`, per side.
pub const MAX_DENSITY_RESOLUTION: usize = 512;
pub const MAX_FIELD_RESOLUTION: usize = 256;
/// Steps of `density` and `pathsFrom` (each kept step of `pathsFrom` is returned).
pub const MAX_AUX_STEPS: usize = 1000;
/// `animate` durations, ms.
pub const MAX_ANIMATION_MS: f64 = 600_000.0;

/// One option value as the caller gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    /// Anything else (an object, a function, …), by its type name.
    Other(&'static str),
}

impl Value {
    /// The value as an error message shows it (escaped and truncated).
    fn show(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Num(v) => num(*v).to_string(),
            Value::Str(s) => format!("\"{}\"", shown(s, 40)),
            Value::Other(t) => format!("a value of type {t}"),
        }
    }
}

/// The options of one call: (name, value) pairs, each name at most once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entries(pub Vec<(String, Value)>);

/// How to state an option error.
fn bad(option: &'static str, reason: String) -> Error {
    Error::InvalidOption { option, reason }
}

impl Entries {
    /// Refuses names outside `known` (a misspelt option must not silently do nothing).
    pub fn check_known(&self, call: &str, known: &[&str]) -> Result<()> {
        for (k, _) in &self.0 {
            if !known.contains(&k.as_str()) {
                return Err(bad(
                    "options",
                    format!("unknown {call} option `{}` (expected one of {})", shown(k, 40), known.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// The value of `key`, if given (null counts as given).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A whole number in `lo..=hi` (`default` when absent).
    pub fn whole(&self, key: &'static str, default: usize, lo: usize, hi: usize) -> Result<usize> {
        self.whole_u64(key, default as u64, lo as u64, hi as u64).map(|v| v as usize)
    }

    /// [`Entries::whole`] beyond 32 bits (seeds, in wasm32).
    pub fn whole_u64(&self, key: &'static str, default: u64, lo: u64, hi: u64) -> Result<u64> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Num(v)) if v.fract() == 0.0 && *v >= lo as f64 && *v <= hi as f64 => Ok(*v as u64),
            Some(v) => Err(bad(key, format!("{} must be a whole number in {lo}..={hi}", v.show()))),
        }
    }

    /// A finite number in `lo..=hi` (`default` when absent).
    pub fn number(&self, key: &'static str, default: f64, lo: f64, hi: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Num(v)) if v.is_finite() && (lo..=hi).contains(v) => Ok(*v),
            Some(v) => Err(bad(key, format!("{} must be a number in [{}, {}]", v.show(), num(lo), num(hi)))),
        }
    }

    /// A string (`None` when absent).
    pub fn string(&self, key: &'static str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(v) => Err(bad(key, format!("{} must be a string", v.show()))),
        }
    }

    /// A boolean (`default` when absent).
    pub fn flag(&self, key: &'static str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(bad(key, format!("{} must be true or false", v.show()))),
        }
    }

    /// A solver name (case-insensitive), `default` when absent.
    pub fn solver(&self, default: Solver) -> Result<Solver> {
        self.string("solver")?.map_or(Ok(default), str::parse)
    }
}

/// The options of `sample()` (and of a worker's share of one), in the JS API's names.
pub const SAMPLE_OPTIONS: [&str; 17] = [
    "n",
    "solver",
    "steps",
    "rtol",
    "atol",
    "maxSteps",
    "seed",
    "guidance",
    "guidanceFrom",
    "guidanceTo",
    "cfgZeroStar",
    "zeroInitSteps",
    "noise",
    "label",
    "trajectories",
    "returnSamples",
    "profile",
];

/// Which trajectory frames a request keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paths {
    None,
    /// The paths that are drawn: the first [`MAX_DRAWN_PATHS`] samples, every `stride` steps.
    Drawn {
        stride: usize,
    },
    /// Every sample's state, every step (capped by thinning): what `animate`/`drawAt` play.
    All,
}

/// A parsed `sample()` request.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    pub options: SampleOptions,
    pub paths: Paths,
    pub return_samples: bool,
    /// Time each CPU kernel (`crate::profile`) and each worker's share.
    pub profile: bool,
}

/// Largest seed (JS numbers are exact integers up to 2^53 − 1).
const MAX_SEED: u64 = (1 << 53) - 1;

/// The defaults of `sample()` for a model.
pub fn default_n(config: &ModelConfig) -> usize {
    match config.data {
        DataConfig::Image { .. } => DEFAULT_IMAGES,
        DataConfig::Points2d { .. } => DEFAULT_POINTS,
    }
}

/// Parses and validates `sample()`'s options for `config`.
pub fn parse_sample(config: &ModelConfig, e: &Entries) -> Result<SampleRequest> {
    e.check_known("sample", &SAMPLE_OPTIONS)?;
    let d = SampleOptions::for_model(config);
    let max_n = MAX_BATCH_VALUES / config.sample_len().max(1);
    let labels = match e.get("label") {
        Some(v) if config.num_classes == 0 && *v != Value::Null => {
            return Err(bad("label", format!("{}: this model is unconditional", v.show())));
        }
        None if config.num_classes > 0 => Labels::Cycle,
        None | Some(Value::Null) => Labels::Unconditional,
        Some(Value::Str(s)) if s == "all" => Labels::Cycle,
        Some(Value::Num(c)) if c.fract() == 0.0 && *c >= 0.0 && *c <= config.num_classes as f64 => {
            Labels::Class(*c as u32)
        }
        Some(v) => {
            return Err(bad(
                "label",
                format!(
                    "{} must be a class number in 0..{} (or {} = unconditional), \"all\" or null",
                    v.show(),
                    config.num_classes,
                    config.num_classes
                ),
            ));
        }
    };
    let (trajectory_every, paths) = match e.get("trajectories") {
        None | Some(Value::Null | Value::Bool(false)) => (None, Paths::None),
        Some(Value::Bool(true)) => (Some(1), Paths::Drawn { stride: 1 }),
        Some(Value::Str(s)) if s == "all" => (Some(1), Paths::All),
        Some(Value::Num(k)) if k.fract() == 0.0 && *k >= 1.0 && *k <= MAX_STEPS as f64 => {
            (Some(*k as usize), Paths::Drawn { stride: *k as usize })
        }
        Some(v) => {
            return Err(bad(
                "trajectories",
                format!("{} must be true, false, 'all' or a step stride in 1..={MAX_STEPS}", v.show()),
            ));
        }
    };
    let options = SampleOptions {
        n: e.whole("n", default_n(config), 1, max_n)?,
        solver: e.solver(d.solver)?,
        steps: e.whole("steps", d.steps, 1, MAX_STEPS)?,
        rtol: e.number("rtol", d.rtol as f64, 1e-10, 1.0)? as f32,
        atol: e.number("atol", d.atol as f64, 1e-10, 1.0)? as f32,
        max_steps: e.whole("maxSteps", d.max_steps, 1, MAX_STEPS)?,
        seed: e.whole_u64("seed", 0, 0, MAX_SEED)?,
        labels,
        guidance: e.number("guidance", d.guidance as f64, 0.0, MAX_GUIDANCE as f64)? as f32,
        guidance_interval: [
            e.number("guidanceFrom", d.guidance_interval[0] as f64, 0.0, 1.0)? as f32,
            e.number("guidanceTo", d.guidance_interval[1] as f64, 0.0, 1.0)? as f32,
        ],
        cfg_zero_star: e.flag("cfgZeroStar", d.cfg_zero_star)?,
        zero_init_steps: e.whole("zeroInitSteps", d.zero_init_steps, 0, MAX_STEPS - 1)?,
        noise: e.number("noise", 0.0, 0.0, crate::ode::sde::MAX_NOISE as f64)? as f32,
        trajectory_every,
        trajectory_rows: match paths {
            Paths::Drawn { .. } => Some(MAX_DRAWN_PATHS),
            Paths::None | Paths::All => None,
        },
    };
    Ok(SampleRequest {
        options,
        paths,
        return_samples: e.flag("returnSamples", false)?,
        profile: e.flag("profile", false)?,
    })
}

/// `density({ resolution, steps })`: grid cells per side and RK4 steps.
pub fn parse_density(e: &Entries) -> Result<(usize, usize)> {
    e.check_known("density", &["resolution", "steps"])?;
    Ok((e.whole("resolution", 64, 2, MAX_DENSITY_RESOLUTION)?, e.whole("steps", 16, 1, MAX_AUX_STEPS)?))
}

/// `velocityField({ t, resolution })`.
pub fn parse_field(e: &Entries) -> Result<(f32, usize)> {
    e.check_known("velocityField", &["t", "resolution"])?;
    Ok((e.number("t", 0.5, 0.0, 1.0)? as f32, e.whole("resolution", 20, 1, MAX_FIELD_RESOLUTION)?))
}

/// `pathsFrom(points, { solver, steps })`.
pub fn parse_paths(e: &Entries) -> Result<(Solver, usize)> {
    e.check_known("pathsFrom", &["solver", "steps"])?;
    Ok((e.solver(Solver::Heun)?, e.whole("steps", 16, 1, MAX_AUX_STEPS)?))
}

/// `animate({ duration })`, ms.
pub fn parse_animation(e: &Entries) -> Result<f64> {
    e.check_known("animate", &["duration"])?;
    e.number("duration", 2000.0, 1.0, MAX_ANIMATION_MS)
}

/// The defaults and bounds of `sample()` for `config`, as JSON, for the demo and the embed:
/// `{"n": 4096, "solver": "heun", …, "limits": {"n": [1, …], …}, "solvers": [...]}`.
pub fn defaults_json(config: &ModelConfig) -> String {
    let d = SampleOptions::for_model(config);
    let max_n = MAX_BATCH_VALUES / config.sample_len().max(1);
    let solvers: Vec<String> = Solver::ALL.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "{{\"n\":{},\"solver\":\"{}\",\"steps\":{},\"rtol\":{},\"atol\":{},\"maxSteps\":{},\"seed\":0,\
         \"guidance\":{},\"guidanceFrom\":0,\"guidanceTo\":1,\"cfgZeroStar\":false,\"zeroInitSteps\":0,\"noise\":0,\"maxDrawnPaths\":{MAX_DRAWN_PATHS},\"solvers\":[{}],\
         \"limits\":{{\"n\":[1,{max_n}],\"steps\":[1,{MAX_STEPS}],\"maxSteps\":[1,{MAX_STEPS}],\
         \"guidance\":[0,{}],\"noise\":[0,{}],\"seed\":[0,{MAX_SEED}],\"rtol\":[1e-10,1],\"atol\":[1e-10,1]}}}}",
        default_n(config),
        d.solver,
        d.steps,
        num(d.rtol),
        num(d.atol),
        d.max_steps,
        num(d.guidance),
        solvers.join(","),
        num(MAX_GUIDANCE),
        num(crate::ode::sde::MAX_NOISE),
    )
}
