//! One error type for the whole crate. Library code returns these instead of panicking on
//! anything a user can influence (weights files, sampling options, shapes).

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How much of an echoed name (tensor, field, option value) an error message shows.
pub const NAME: usize = 80;
/// How much of an echoed reason or detail an error message shows.
pub const LONG: usize = 400;

/// `s` as an error message may show it: control characters (terminal escapes, newlines) escaped
/// as `\u{…}`, and at most `max` characters, the rest elided with the count. Every string that
/// can come from a file, a URL or an option passes through here before it is shown, so a hostile
/// name cannot drive a terminal and a 90 MB number does not become a 90 MB message.
pub fn shown(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (count, c) in s.chars().enumerate() {
        if count == max {
            // Characters = bytes that do not continue a UTF-8 sequence (not `chars().count()`,
            // whose SWAR counter is ~1 KB of wasm for one message).
            let total = s.bytes().filter(|b| b & 0xC0 != 0x80).count();
            out.push_str(&format!("… ({} more characters)", total - max));
            break;
        }
        if matches!(c, '\n' | '\r' | '\t') {
            // Line breaks and tabs in a reason are harmless; shown as spaces, on one line.
            out.push(' ');
        } else if c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// A number as messages and the JSON writer show it: [`Num::f32`] the shortest decimal that
/// reads back as the same f32, [`Num::f64`] the same for f64. Natively that is std's `Display`;
/// in the browser build it is JavaScript's number formatting, so that core's float formatting
/// (Grisu and Dragon4 with their tables, ~8 KB of the gzipped wasm) is not compiled in. The
/// two agree digit for digit except that JavaScript writes magnitudes below 1e-6 or from 1e21
/// up with an exponent (`1e-7`) and infinity as `Infinity`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num {
    value: f64,
    single: bool,
}

impl Num {
    pub fn f32(x: f32) -> Self {
        Self { value: x as f64, single: true }
    }

    pub fn f64(x: f64) -> Self {
        Self { value: x, single: false }
    }
}

impl From<f32> for Num {
    fn from(x: f32) -> Self {
        Num::f32(x)
    }
}

impl From<f64> for Num {
    fn from(x: f64) -> Self {
        Num::f64(x)
    }
}

/// `x` (f32 or f64) as messages show numbers: see [`Num`].
pub fn num(x: impl Into<Num>) -> Num {
    x.into()
}

impl std::fmt::Display for Num {
    #[cfg(not(target_arch = "wasm32"))]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.single {
            std::fmt::Display::fmt(&(self.value as f32), f)
        } else {
            std::fmt::Display::fmt(&self.value, f)
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use js_sys::Number;
        let text = |x: f64| Number::from(x).to_string_with_radix(10).map(String::from).unwrap_or_default();
        // An f32 printed as f64 would show its binary expansion (0.1f32 = 0.10000000149…): the
        // fewest significant digits that round back to the same f32 instead (at most 9).
        let shortest = || {
            let n = Number::from(self.value);
            (1..=9).find_map(|digits| {
                let s = String::from(n.to_precision(digits).ok()?);
                let v = crate::model::json::parse_f64(&s)?;
                (v as f32 == self.value as f32).then(|| text(v))
            })
        };
        let s = if self.single && self.value.is_finite() { shortest() } else { None };
        f.write_str(&s.unwrap_or_else(|| text(self.value)))
    }
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// The weights container itself is malformed (header, offsets, sizes).
    #[error("invalid weights file: {}", shown(.0, LONG))]
    WeightsFormat(String),

    /// The JSON config in the safetensors metadata is missing, unparsable or out of bounds.
    #[error("invalid model config field `{}`: {}", shown(field, NAME), shown(reason, LONG))]
    Config { field: String, reason: String },

    /// A tensor the architecture needs is absent.
    #[error("weights file is missing tensor `{}`", shown(.0, NAME))]
    MissingTensor(String),

    /// A tensor is present but not one the architecture uses.
    #[error("weights file has unexpected tensor `{}`", shown(.0, NAME))]
    UnexpectedTensor(String),

    #[error("tensor `{}` has shape {}, expected {expected:?}", shown(name, NAME), shown(&format!("{found:?}"), NAME))]
    TensorShape { name: String, expected: Vec<usize>, found: Vec<usize> },

    #[error("tensor `{}` has dtype {}, expected F32 or F16", shown(name, NAME), shown(found, NAME))]
    TensorDtype { name: String, found: String },

    #[error("tensor `{}` contains a non-finite value (NaN or infinity) at index {index}", shown(name, NAME))]
    NonFiniteWeight { name: String, index: usize },

    /// Shapes passed to a kernel or model do not fit together.
    #[error("shape mismatch in {op}: {}", shown(detail, LONG))]
    Shape { op: &'static str, detail: String },

    /// A sampling option is out of its valid range.
    #[error("invalid option `{option}`: {}", shown(reason, LONG))]
    InvalidOption { option: &'static str, reason: String },

    /// The solve produced NaN or infinity (diverging network or absurd step size).
    #[error("the ODE solution became non-finite at t = {}", Num::f32(*t))]
    NonFiniteState { t: f32 },

    /// Adaptive solver hit its step budget before reaching the end time.
    #[error("adaptive solver stopped after {steps} steps at t = {} (max_steps reached)", Num::f32(*t))]
    MaxStepsExceeded { steps: usize, t: f32 },

    /// A request or a model needs more memory than the backend's budget (`crate::memory`), or
    /// an allocation failed.
    #[error("out of memory: {}", shown(.0, LONG))]
    OutOfMemory(String),

    #[error("sampling was cancelled")]
    Cancelled,

    /// The sampler was disposed while (or before) the call ran.
    #[error("the sampler was disposed")]
    Disposed,

    /// A CPU worker of the browser's pool failed (its message).
    #[error("a CPU worker failed: {}", shown(.0, LONG))]
    Worker(String),

    #[error("I/O error: {}", shown(.0, LONG))]
    Io(String),

    /// No GPU adapter could be found (no driver, or no Vulkan/WebGPU implementation).
    #[error("no GPU adapter found: {}", shown(.0, LONG))]
    NoAdapter(String),

    /// The GPU device was lost (driver reset, device destroyed, out of memory in the driver).
    #[error("GPU device lost: {}", shown(.0, LONG))]
    DeviceLost(String),

    /// Any other GPU failure: device request, validation, buffer mapping, a size beyond the
    /// device's limits.
    #[error("GPU error: {}", shown(.0, LONG))]
    Gpu(String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
