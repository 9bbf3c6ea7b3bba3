//! Models: the weights format (load + validate), the architectures, and a `Network` that runs
//! a loaded model on any `Backend`.

pub mod config;
pub mod format;
pub mod json;
pub mod mlp;
pub mod unet;

pub use config::{ArchConfig, DataConfig, MlpConfig, ModelConfig, PathConfig, Provenance, UnetConfig};
pub use format::{load, save};

use crate::backend::Backend;
use crate::error::{Error, Result, num};
use crate::sorted_map::SortedMap;
use crate::tensor::Tensor;

/// The central-difference step of the divergence of networks without forward-mode tangents,
/// as a share of the plot box's width: f32 rounding (~1e-7·|v|/h) and truncation (~h²·|v‴|)
/// balance near 1e-3 of a box of a few units.
pub const FD_STEP: f32 = 1e-3;

/// A validated model in host memory: its config and every parameter, by `state_dict()` name.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub config: ModelConfig,
    pub params: SortedMap<String, Tensor>,
}

/// Every tensor the config's architecture needs, with its exact shape.
pub fn expected_params(config: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    match &config.arch {
        ArchConfig::Mlp(c) => mlp::param_shapes(c, config.num_classes),
        ArchConfig::Unet(c) => unet::param_shapes(c, config.num_classes),
        // The graph carries its own constants.
        ArchConfig::Onnx(_) => Vec::new(),
    }
}

impl Model {
    /// Parses and validates a weights file: `.safetensors` (see `format::load`) or an ONNX
    /// export with its declaration in the metadata (`crate::onnx::load`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if crate::onnx::proto::looks_like_onnx(bytes) { crate::onnx::load(bytes, None) } else { format::load(bytes) }
    }

    pub fn param_count(&self) -> usize {
        match &self.config.arch {
            // An ONNX graph's weights are its float initializers.
            ArchConfig::Onnx(g) => g.graph.constants.values().filter(|c| !c.is_int()).map(|c| c.len()).sum(),
            _ => self.params.values().map(Tensor::numel).sum(),
        }
    }

    /// A model with seeded random weights (PyTorch-like uniform fan-in init, GroupNorm at
    /// identity): for tests and benchmarks that need a network before trained weights exist.
    pub fn random(config: ModelConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        // Quality here only needs to be "random-looking": SplitMix64, uniform in [-1, 1).
        let mut g = crate::rng::SplitMix64(seed ^ 0x9E37_79B9_7F4A_7C15);
        let mut uniform = move || (g.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        let mut params = SortedMap::new();
        for (name, shape) in expected_params(&config) {
            let n: usize = shape.iter().product();
            let is_norm = name.contains("norm");
            let data: Vec<f32> = if is_norm {
                let one = if name.ends_with(".weight") { 1.0 } else { 0.0 };
                (0..n).map(|_| one + 0.1 * uniform()).collect()
            } else if name.starts_with("class_emb") {
                (0..n).map(|_| uniform()).collect()
            } else {
                let fan_in: usize = if name.ends_with(".bias") {
                    // Bias bound uses the weight's fan-in: look it up from the sibling tensor.
                    let w = name.trim_end_matches(".bias").to_string() + ".weight";
                    expected_params(&config)
                        .into_iter()
                        .find(|(k, _)| *k == w)
                        .map_or(1, |(_, s)| s[1..].iter().product())
                } else {
                    shape[1..].iter().product()
                };
                let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                (0..n).map(|_| bound * uniform()).collect()
            };
            params.insert(name, Tensor::new(shape, data)?);
        }
        Ok(Model { config, params })
    }
}

/// Parameters uploaded to a backend, looked up by name.
pub struct Params<B: Backend> {
    tensors: SortedMap<String, B::Tensor>,
}

impl<B: Backend> Params<B> {
    pub fn get(&self, name: &str) -> Result<&B::Tensor> {
        self.tensors.get(name).ok_or_else(|| Error::MissingTensor(name.to_string()))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// A model ready to run on one backend.
pub struct Network<B: Backend> {
    pub config: ModelConfig,
    params: Params<B>,
    /// An ONNX model's graph on this backend.
    graph: Option<crate::onnx::exec::GraphRunner<B>>,
    /// Values of one row's largest activation: the unit of a backend's row blocks.
    row_values: usize,
}

impl<B: Backend> Network<B> {
    pub fn new(backend: &B, model: &Model) -> Result<Self> {
        let mut tensors = SortedMap::with_capacity(model.params.len());
        for (name, t) in &model.params {
            tensors.insert(name.clone(), backend.upload(t)?);
        }
        if let ArchConfig::Mlp(c) = &model.config.arch {
            let get = |k: &str| model.params.get(k).ok_or_else(|| Error::MissingTensor(k.to_string()));
            for (name, t) in mlp::derived_params(c, get("layers.0.weight")?, get("out.weight")?)? {
                tensors.insert(name, backend.upload(&t)?);
            }
        }
        let graph = match &model.config.arch {
            ArchConfig::Onnx(g) => Some(crate::onnx::exec::GraphRunner::new(g.clone())),
            _ => None,
        };
        let row_values = crate::memory::footprint(&model.config).largest_tensor;
        Ok(Self { config: model.config.clone(), params: Params { tensors }, graph, row_values })
    }

    /// The graph of an ONNX model on this backend (raw forwards for parity tests).
    pub fn graph(&self) -> Option<&crate::onnx::exec::GraphRunner<B>> {
        self.graph.as_ref()
    }

    /// The velocity and its divergence ([n, 1]) at x [n, d] for 2-D point models, for
    /// log-densities by the instantaneous change of variables (`crate::density`): exact, by
    /// forward-mode tangents, for the MLP; by central differences for any other network (an
    /// ONNX graph): ∂v_i/∂x_i ≈ (v_i(x + h·e_i) − v_i(x − h·e_i))/2h with h = `FD_STEP` times the
    /// plot box's width (2d + 1 forwards; error measured in tests/onnx_models.rs).
    pub fn velocity_and_divergence(&self, backend: &B, x: &B::Tensor, t: f32) -> Result<(B::Tensor, B::Tensor)> {
        if self.config.num_classes > 0 {
            return Err(Error::InvalidOption {
                option: "model",
                reason: "log-densities of class-conditional models are not supported".into(),
            });
        }
        let DataConfig::Points2d { range } = self.config.data else {
            return Err(Error::InvalidOption {
                option: "model",
                reason: "log-densities are for 2-D point models".into(),
            });
        };
        let shape = backend.shape(x).to_vec();
        if shape.len() != 2 || shape[1] != 2 {
            return Err(Error::Shape {
                op: "velocity_and_divergence",
                detail: format!("input {shape:?}, model takes [n, 2]"),
            });
        }
        if let ArchConfig::Mlp(c) = &self.config.arch {
            return mlp::forward_with_divergence(backend, c, &self.params, x, t, None);
        }
        let (n, d) = (shape[0], shape[1]);
        let h = FD_STEP * (range[0][1] - range[0][0]).max(range[1][1] - range[1][0]);
        let v = self.velocity(backend, x, t, None)?;
        let mut div: Option<B::Tensor> = None;
        for i in 0..d {
            let mut e = vec![0.0; d];
            e[i] = h;
            let step = backend.upload(&Tensor::new(vec![1, d], e)?)?;
            let plus = self.velocity(backend, &backend.binary(x, &step, crate::pointwise::BinaryOp::Add)?, t, None)?;
            let minus = self.velocity(backend, &backend.binary(x, &step, crate::pointwise::BinaryOp::Sub)?, t, None)?;
            // Column i of (v+ − v−)/2h.
            let diff = backend.lincomb(&plus, &[(-1.0 + 1.0 / (2.0 * h), &plus), (-1.0 / (2.0 * h), &minus)])?;
            let col = backend.strided_copy(&diff, &[n, 1], i, &[d, 1])?;
            div = Some(match div {
                None => col,
                Some(acc) => backend.add(&acc, &col)?,
            });
        }
        Ok((v, div.expect("d = 2")))
    }

    /// The velocity v(x, t[, y]) for a batch x [n, …sample shape]. `labels` (one per row, each
    /// ≤ num_classes, where num_classes is the null class) is required exactly when the model
    /// is class-conditional.
    pub fn velocity(&self, backend: &B, x: &B::Tensor, t: f32, labels: Option<&[u32]>) -> Result<B::Tensor> {
        self.average_velocity(backend, x, t, 0.0, labels)
    }

    /// The average velocity over [t, t + step] of a flow-map model (`ArchConfig::flow_map`):
    /// x + step·u is its estimate of the state at t + step. `step` 0 is the instantaneous
    /// velocity, the only one other networks give (any other step is an error for them).
    pub fn average_velocity(
        &self,
        backend: &B,
        x: &B::Tensor,
        t: f32,
        step: f32,
        labels: Option<&[u32]>,
    ) -> Result<B::Tensor> {
        if step != 0.0 && !self.config.arch.flow_map() {
            return Err(Error::InvalidOption {
                option: "step",
                reason: format!("{} ≠ 0 needs a flow-map model; this one is a velocity field", num(step)),
            });
        }
        let shape = backend.shape(x);
        let sample = self.config.sample_shape();
        if shape.len() != sample.len() + 1 || shape[1..] != sample[..] {
            return Err(Error::Shape {
                op: "velocity",
                detail: format!("input {shape:?}, model takes [n, {sample:?}]"),
            });
        }
        match (labels, self.config.num_classes) {
            (None, 0) => {}
            (Some(ids), k) if k > 0 => {
                if ids.len() != shape[0] {
                    return Err(Error::Shape {
                        op: "velocity",
                        detail: format!("{} labels for {} rows", ids.len(), shape[0]),
                    });
                }
                if let Some(&bad) = ids.iter().find(|&&id| id as usize > k) {
                    return Err(Error::InvalidOption {
                        option: "label",
                        reason: format!("{bad} is out of range 0..={k}"),
                    });
                }
            }
            (Some(_), _) => {
                return Err(Error::InvalidOption { option: "label", reason: "this model is unconditional".into() });
            }
            (None, _) => {
                return Err(Error::InvalidOption { option: "label", reason: "this model is class-conditional".into() });
            }
        }
        // A sample's velocity depends on that sample alone (the sampler already splits batches
        // over workers and memory chunks), so a backend may run a batch block by block of rows
        // (`Backend::map_row_blocks`, given the network's largest activation per sample).
        let forward = |x: &B::Tensor, labels: Option<&[u32]>| match &self.config.arch {
            ArchConfig::Mlp(c) => mlp::forward(backend, c, &self.params, x, t, step, labels),
            ArchConfig::Unet(c) => unet::forward(backend, c, &self.params, x, t, labels),
            ArchConfig::Onnx(_) => match &self.graph {
                Some(g) => g.velocity(backend, x, t, step, labels),
                None => Err(Error::Shape { op: "velocity", detail: "internal: the graph was not prepared".into() }),
            },
        };
        backend.map_row_blocks(x, labels, self.row_values, &forward)
    }
}
