//! One error type for the whole crate. Library code returns these instead of panicking on
//! anything a user can influence (weights files, sampling options, shapes).

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// The weights container itself is malformed (header, offsets, sizes).
    #[error("invalid weights file: {0}")]
    WeightsFormat(String),

    /// The JSON config in the safetensors metadata is missing, unparsable or out of bounds.
    #[error("invalid model config field `{field}`: {reason}")]
    Config { field: String, reason: String },

    /// A tensor the architecture needs is absent.
    #[error("weights file is missing tensor `{0}`")]
    MissingTensor(String),

    /// A tensor is present but not one the architecture uses.
    #[error("weights file has unexpected tensor `{0}`")]
    UnexpectedTensor(String),

    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape { name: String, expected: Vec<usize>, found: Vec<usize> },

    #[error("tensor `{name}` has dtype {found}, expected F32 or F16")]
    TensorDtype { name: String, found: String },

    #[error("tensor `{name}` contains a non-finite value (NaN or infinity) at index {index}")]
    NonFiniteWeight { name: String, index: usize },

    /// Shapes passed to a kernel or model do not fit together.
    #[error("shape mismatch in {op}: {detail}")]
    Shape { op: &'static str, detail: String },

    /// A sampling option is out of its valid range.
    #[error("invalid sampling option `{option}`: {reason}")]
    InvalidOption { option: &'static str, reason: String },

    /// The solve produced NaN or infinity (diverging network or absurd step size).
    #[error("the ODE solution became non-finite at t = {t}")]
    NonFiniteState { t: f32 },

    /// Adaptive solver hit its step budget before reaching the end time.
    #[error("adaptive solver stopped after {steps} steps at t = {t} (max_steps reached)")]
    MaxStepsExceeded { steps: usize, t: f32 },

    #[error("sampling was cancelled")]
    Cancelled,

    #[error("I/O error: {0}")]
    Io(String),

    /// No GPU adapter could be found (no driver, or no Vulkan/WebGPU implementation).
    #[error("no GPU adapter found: {0}")]
    NoAdapter(String),

    /// The GPU device was lost (driver reset, device destroyed, out of memory in the driver).
    #[error("GPU device lost: {0}")]
    DeviceLost(String),

    /// Any other GPU failure: device request, validation, buffer mapping, a size beyond the
    /// device's limits.
    #[error("GPU error: {0}")]
    Gpu(String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
