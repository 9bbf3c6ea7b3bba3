//! The weights container: a standard `.safetensors` file whose `__metadata__["pushforward"]`
//! is the JSON `ModelConfig`. Read and written here by hand (with `json.rs`), strictly:
//!
//! - layout: 8-byte little-endian header length `n`, `n` bytes of UTF-8 JSON starting with `{`
//!   (trailing spaces allowed, as writers pad to 8 bytes), then the data section;
//! - header: one object; `__metadata__` (at most once) maps names to strings; every other key
//!   is a tensor `{"dtype", "shape", "data_offsets": [start, end]}` with exactly those fields,
//!   at most [`MAX_RANK`] dimensions, listed once, at most [`MAX_TENSORS`] of them;
//! - dtype: F32, or F16 (widened exactly on load); any other is `Error::TensorDtype`;
//! - data: `end - start` must be exactly `shape`'s element count × the dtype's size, and the
//!   tensors sorted by offset must tile the data section: no gap, no overlap, nothing after
//!   the last one (the same rule as the `safetensors` crate);
//! - weights: every value must be finite; a NaN or infinity is `Error::NonFiniteWeight` naming
//!   the tensor and the index of the first one (a model with them would only sample NaNs).
//!
//! `load` trusts nothing in the file: every size is checked against the bytes actually present
//! before anything is allocated for it, so memory is at most twice the file (F16 widened to
//! F32) plus a small constant, never a size the header merely claims (`tests/fuzz_loader.rs`
//! measures it). Every rejection is a typed `Error` that says what was wrong.

use super::{Model, ModelConfig, expected_params};
use crate::error::{Error, Result};
use crate::model::config::METADATA_KEY;
use crate::model::json::{self, JsonError, Parser};
use crate::sorted_map::{SortedMap, SortedSet};
use crate::tensor::Tensor;
use std::borrow::Cow;

/// Largest header accepted (the `safetensors` crate's limit).
pub const MAX_HEADER_BYTES: usize = 100_000_000;
/// Most dimensions a tensor may have (the architectures use at most 4).
pub const MAX_RANK: usize = 8;
/// Most tensors a file may hold (the largest U-Net the config bounds allow has ~1200).
pub const MAX_TENSORS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    F16,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }
}

/// One tensor's header entry, checked against the data section.
struct Entry<'a> {
    name: Cow<'a, str>,
    dtype: Dtype,
    shape: Vec<usize>,
    data: &'a [u8],
}

/// A parsed container: the config text (if any) and every tensor, in file-data order.
struct Container<'a> {
    config: Option<Cow<'a, str>>,
    tensors: Vec<Entry<'a>>,
}

fn format_err(msg: impl Into<String>) -> Error {
    Error::WeightsFormat(msg.into())
}

fn header_err(e: JsonError) -> Error {
    format_err(format!("header: {e}"))
}

/// A tensor entry before its offsets are checked against the file.
struct RawEntry<'a> {
    name: Cow<'a, str>,
    dtype: Result<Dtype, Cow<'a, str>>,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

fn parse_container(bytes: &[u8]) -> Result<Container<'_>> {
    let len = bytes.len();
    let Some((head, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(format_err(format!("file of {len} bytes is too short to hold a safetensors header")));
    };
    let n = u64::from_le_bytes(*head);
    if n > (rest.len() as u64) {
        return Err(format_err(format!("header length {n} runs past the end of the {len}-byte file")));
    }
    let n = n as usize; // ≤ rest.len()
    if n > MAX_HEADER_BYTES {
        return Err(format_err(format!("header of {n} bytes is over the {MAX_HEADER_BYTES}-byte limit")));
    }
    let (header, data) = rest.split_at(n);
    let header = std::str::from_utf8(header)
        .map_err(|e| format_err(format!("header is not UTF-8 (invalid byte at {})", e.valid_up_to())))?;

    if !header.starts_with('{') {
        return Err(format_err("header must start with '{' (a JSON object)"));
    }
    let mut p = Parser::new(header);
    let mut config = None;
    let mut seen_metadata = false;
    let mut raw: Vec<RawEntry<'_>> = Vec::new();
    p.object(|p, key| {
        if key == "__metadata__" {
            if std::mem::replace(&mut seen_metadata, true) {
                return Err(p.error("duplicate field"));
            }
            return p.object(|p, k| {
                let v = p.string()?;
                if k == METADATA_KEY {
                    if config.is_some() {
                        return Err(p.error("duplicate field"));
                    }
                    config = Some(v);
                }
                Ok(())
            });
        }
        if raw.len() == MAX_TENSORS {
            return Err(p.error(format!("more than {MAX_TENSORS} tensors")));
        }
        let f = p.fields(["dtype", "shape", "data_offsets"])?;
        let dtype = match p.req(&f, "dtype", Parser::string)? {
            d if d == "F32" => Ok(Dtype::F32),
            d if d == "F16" => Ok(Dtype::F16),
            other => Err(other),
        };
        let shape = p.req(&f, "shape", |p| p.usize_array(MAX_RANK, "dimensions"))?;
        let [start, end] = p.req(&f, "data_offsets", |p| p.array_of::<2, usize>(Parser::usize))?;
        raw.push(RawEntry { name: Cow::Owned(key.to_string()), dtype, shape, start, end });
        Ok(())
    })
    .map_err(header_err)?;
    p.finish().map_err(header_err)?;

    // Names once each; an unsupported dtype is named before any size is looked at.
    let mut names = SortedSet::with_capacity(raw.len());
    if let Some(e) = raw.iter().find(|e| !names.insert(&*e.name)) {
        return Err(format_err(format!("tensor `{}` is listed twice in the header", e.name)));
    }
    drop(names);
    if let Some(e) = raw.iter().filter(|e| e.dtype.is_err()).min_by(|a, b| a.name.cmp(&b.name)) {
        let found = e.dtype.as_ref().err().map_or_else(String::new, |d| d.to_string());
        return Err(Error::TensorDtype { name: e.name.to_string(), found });
    }
    // Each tensor's byte length must match its shape, and the tensors must tile the data.
    for e in &raw {
        let name = &e.name;
        let Ok(dtype) = e.dtype else { unreachable!("checked above") };
        if e.start > e.end {
            return Err(format_err(format!("tensor `{name}`: data_offsets [{}, {}] run backwards", e.start, e.end)));
        }
        let need = e.shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
        if need != Some(e.end - e.start) {
            let need = need.map_or_else(|| "more than usize::MAX".to_string(), |b| b.to_string());
            return Err(format_err(format!(
                "tensor `{name}`: shape {:?} of {dtype:?} needs {need} bytes but data_offsets [{}, {}] hold {}",
                e.shape,
                e.start,
                e.end,
                e.end - e.start
            )));
        }
    }
    sort_by_offsets(&mut raw);
    let mut at = 0;
    let mut prev: Option<&str> = None;
    for e in &raw {
        if e.start != at {
            let after = prev.map_or_else(|| "the start of the data section".to_string(), |p| format!("`{p}`"));
            let how = if e.start < at { "overlaps" } else { "leaves a gap after" };
            return Err(format_err(format!(
                "tensor `{}` (data_offsets [{}, {}]) {how} {after} (which ends at {at}): tensors must tile the data section",
                e.name, e.start, e.end
            )));
        }
        at = e.end;
        prev = Some(&e.name);
    }
    if at != data.len() {
        return Err(format_err(format!(
            "tensor data ends at byte {at} but the data section holds {} bytes (truncated or padded file)",
            data.len()
        )));
    }
    let tensors = raw
        .into_iter()
        .map(|e| Entry {
            data: &data[e.start..e.end], // in bounds: the tensors tile `data`
            dtype: e.dtype.unwrap_or(Dtype::F32),
            name: e.name,
            shape: e.shape,
        })
        .collect();
    Ok(Container { config, tensors })
}

/// Insertion sort by (start, end): writers list tensors in offset order or nearly (so this is
/// linear for real files), the count is capped at `MAX_TENSORS`, and it is a few hundred bytes
/// of wasm where `sort_unstable` was ~5 KB per instantiation.
fn sort_by_offsets(v: &mut [RawEntry<'_>]) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && (v[j - 1].start, v[j - 1].end) > (v[j].start, v[j].end) {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Parses and validates a weights file.
pub fn load(bytes: &[u8]) -> Result<Model> {
    let c = parse_container(bytes)?;
    let json = c.config.as_deref().ok_or_else(|| Error::Config {
        field: METADATA_KEY.into(),
        reason: "no config in the file's __metadata__".into(),
    })?;
    let config = ModelConfig::from_json(json)?;

    let expected = expected_params(&config);
    // Unexpected names first: a file for a different architecture should say so, not just
    // report the first missing tensor.
    let expected_names: SortedSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(extra) = c.tensors.iter().map(|e| &*e.name).filter(|n| !expected_names.contains(n)).min() {
        return Err(Error::UnexpectedTensor(extra.to_string()));
    }
    let by_name: SortedMap<&str, &Entry<'_>> = c.tensors.iter().map(|e| (&*e.name, e)).collect();
    let mut params = SortedMap::with_capacity(expected.len());
    for (name, shape) in expected {
        let Some(e) = by_name.get(name.as_str()) else { return Err(Error::MissingTensor(name)) };
        if e.shape != shape {
            return Err(Error::TensorShape { name, expected: shape, found: e.shape.clone() });
        }
        let data: Vec<f32> = match e.dtype {
            Dtype::F32 => e.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => e.data.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
        };
        if let Some(index) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteWeight { name, index });
        }
        params.insert(name, Tensor::new(shape, data)?);
    }
    Ok(Model { config, params })
}

/// Serialises a model to the same format (used by tests and tools; training writes it from
/// Python): F32 tensors in name order (the order `params` keeps), the config first in
/// `__metadata__`, the header padded with spaces to a multiple of 8 bytes so the data stays
/// aligned.
pub fn save(model: &Model) -> Result<Vec<u8>> {
    let entries: Vec<(&String, &Tensor)> = model.params.iter().collect();
    let mut header = String::from("{\"__metadata__\":{");
    json::write_str(&mut header, METADATA_KEY);
    header.push(':');
    json::write_str(&mut header, &model.config.to_json());
    header.push('}');
    let mut offset = 0;
    for (name, t) in &entries {
        header.push(',');
        json::write_str(&mut header, name);
        let end = offset + 4 * t.numel();
        header.push_str(&format!(":{{\"dtype\":\"F32\",\"shape\":{:?},\"data_offsets\":[{offset},{end}]}}", t.shape()));
        offset = end;
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (_, t) in entries {
        out.extend(t.data().iter().flat_map(|v| v.to_le_bytes()));
    }
    Ok(out)
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
