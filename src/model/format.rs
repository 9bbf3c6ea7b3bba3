//! The weights container: a standard `.safetensors` file whose `__metadata__["pushforward"]`
//! is the JSON `ModelConfig`.
//!
//! `load` trusts nothing in the file. The safetensors parser checks the header length against
//! the buffer and every tensor's offsets against the data section before we look at a tensor;
//! we then check the config's bounds, that the tensor set is exactly what the architecture
//! needs (names, shapes, dtypes), and that every weight is finite. Memory allocated is at most
//! twice the file (F16 widened to F32), never a size the header merely claims.

use super::{Model, ModelConfig, expected_params};
use crate::error::{Error, Result};
use crate::model::config::METADATA_KEY;
use crate::tensor::Tensor;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;

/// Parses and validates a weights file.
pub fn load(bytes: &[u8]) -> Result<Model> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::WeightsFormat(describe(&e, bytes.len())))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| Error::WeightsFormat(e.to_string()))?;
    let json = meta.metadata().as_ref().and_then(|m| m.get(METADATA_KEY)).ok_or_else(|| Error::Config {
        field: METADATA_KEY.into(),
        reason: "no config in the file's __metadata__".into(),
    })?;
    let config = ModelConfig::from_json(json)?;

    let expected = expected_params(&config);
    // Unexpected names first: a file for a different architecture should say so, not just
    // report the first missing tensor.
    let expected_names: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut names = st.names();
    names.sort_unstable();
    if let Some(extra) = names.iter().find(|n| !expected_names.contains(**n)) {
        return Err(Error::UnexpectedTensor(extra.to_string()));
    }
    let mut params = HashMap::with_capacity(expected.len());
    for (name, shape) in expected {
        let view = st.tensor(&name).map_err(|_| Error::MissingTensor(name.clone()))?;
        if view.shape() != shape.as_slice() {
            return Err(Error::TensorShape { name, expected: shape, found: view.shape().to_vec() });
        }
        let data = to_f32(&name, &view)?;
        if let Some(index) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteWeight { name, index });
        }
        params.insert(name, Tensor::new(shape, data)?);
    }
    Ok(Model { config, params })
}

/// Serialises a model to the same format (used by tests and tools; training writes it from Python).
pub fn save(model: &Model) -> Result<Vec<u8>> {
    let mut entries: Vec<(&String, &Tensor)> = model.params.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = entries
        .into_iter()
        .map(|(n, t)| (n.clone(), t.shape().to_vec(), t.data().iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::WeightsFormat(e.to_string()))?;
    let meta = HashMap::from([(METADATA_KEY.to_string(), model.config.to_json())]);
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::WeightsFormat(e.to_string()))
}

fn describe(e: &safetensors::SafeTensorError, len: usize) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall => format!("file of {len} bytes is too short to hold a safetensors header"),
        E::InvalidHeaderLength => format!("header length runs past the end of the {len}-byte file"),
        E::MetadataIncompleteBuffer => "tensor data does not exactly fill the file (truncated or padded)".into(),
        other => other.to_string(),
    }
}

fn to_f32(name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let raw = view.data();
    match view.dtype() {
        Dtype::F32 => Ok(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        Dtype::F16 => Ok(raw.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()),
        other => Err(Error::TensorDtype { name: name.to_string(), found: format!("{other:?}") }),
    }
}

/// IEEE 754 binary16 → binary32, exact (subnormals, infinities and NaN included).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if mant == 0 => sign,
        0 => {
            // Subnormal: value = mant · 2^-24; normalise it.
            let shift = mant.leading_zeros() - 21; // bring the top set bit to position 10
            let m = (mant << shift) & 0x3ff;
            let e = 127 - 15 - shift + 1;
            sign | (e << 23) | (m << 13)
        }
        0x1f => sign | 0x7f80_0000 | (mant << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}
