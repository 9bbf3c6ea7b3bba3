//! Any velocity network from its ONNX export: a strict reader of the protobuf (`proto`), the
//! declaration that says which input is x / t / y and what the output predicts
//! (`declaration`), the graph with its shape subgraphs folded per batch size (`graph`), and an
//! executor over the `Backend` op set (`exec`), so one graph runs on the CPU kernels and on WGSL
//! with the same code — a network like `model::mlp`/`model::unet`, not a second engine.

pub mod declaration;
pub mod exec;
pub mod fold;
pub mod graph;
pub mod proto;

use crate::error::{Error, Result};
use crate::model::{ArchConfig, Model, ModelConfig};
use crate::sorted_map::SortedMap;
use std::sync::Arc;

/// A loaded ONNX velocity network: the graph and what it declares itself to be.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxNetwork {
    pub graph: graph::Graph,
    pub declaration: declaration::Declaration,
}

impl OnnxNetwork {
    /// One sample's peak of live values and largest value (for the memory budget); a graph
    /// that cannot be planned counts as nothing here — loading has already refused it.
    pub fn per_sample_values(&self) -> (usize, usize) {
        exec::per_sample_values(&self.graph, &self.declaration).unwrap_or((0, 0))
    }
}

/// Loads an ONNX export as a model. The declaration comes from `declaration` when given (JSON
/// beside the file, or passed to `Sampler.create`), else from the file's `metadata_props`.
pub fn load(bytes: &[u8], declaration: Option<&str>) -> Result<Model> {
    let proto = proto::parse_model(bytes)?;
    let graph = graph::Graph::from_proto(&proto)?;
    let text = match declaration {
        Some(d) => d.to_string(),
        None => proto
            .metadata
            .iter()
            .find(|(k, _)| k == declaration::METADATA_KEY)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Error::Config {
                field: "declaration".into(),
                reason: format!(
                    "this ONNX file has no `{}` entry in its metadata_props saying which input is x, t and y and what \
                     the output predicts: export it with train/onnx_export.py (export_onnx), or pass the declaration \
                     beside the file (Sampler.create's `declaration`, the embed's `declaration` attribute, the CLI's \
                     --declaration; train/README.md)",
                    declaration::METADATA_KEY
                ),
            })?,
    };
    let decl = declaration::Declaration::parse(&text)?;
    decl.check_graph(&graph)?;
    // Plan one sample now: an op the executor cannot run on x, t or y is a load-time error.
    exec::per_sample_values(&graph, &decl)?;
    let config = ModelConfig {
        format_version: 1,
        data: decl.data.clone(),
        num_classes: decl.num_classes,
        path: decl.path,
        provenance: decl.provenance.clone(),
        class_names: Vec::new(),
        arch: ArchConfig::Onnx(Arc::new(OnnxNetwork { graph, declaration: decl })),
    };
    config.validate()?;
    Ok(Model { config, params: SortedMap::new() })
}
