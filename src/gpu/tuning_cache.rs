//! The tuner's choices on disk (native): one small text file per adapter, so that a machine
//! measures its kernel variants once and every later run starts with them (0 ms of tuning).
//!
//! The file is `tuning-<16 hex digits of a hash of the adapter key>.txt` in the cache folder:
//! its first line is the whole [`adapter_key`] (adapter, driver, this crate's version), the rest
//! [`Tuning::to_text`]. A file whose key line differs (a hash collision, another driver or
//! version), or that does not parse, is ignored and overwritten by the next store: a stale or
//! foreign entry is re-tuned, never trusted half-way.

use super::GpuBackend;
use super::tuning::{Tuning, adapter_key};
use std::path::{Path, PathBuf};

/// The cache folder: `$PUSHFORWARD_CACHE_DIR`, else `$XDG_CACHE_HOME/pushforward`, else
/// `$HOME/.cache/pushforward`; None when none of them is set.
pub fn default_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("PUSHFORWARD_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("pushforward")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("pushforward")))
}

/// The file of the adapter with this key in `dir`.
pub fn file_for(dir: &Path, key: &str) -> PathBuf {
    // FNV-1a, 64 bits: stable across builds and platforms (the key line inside decides).
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    dir.join(format!("tuning-{hash:016x}.txt"))
}

/// Reads this adapter's stored tuning from `dir` into `gpu` (replacing what it had chosen, and
/// keeping a forced variant). Returns how many shape classes it brought, None when there was
/// no usable file.
pub fn load(gpu: &GpuBackend, dir: &Path) -> Option<usize> {
    let key = adapter_key(&gpu.context().info);
    let text = std::fs::read_to_string(file_for(dir, &key)).ok()?;
    let (first, rest) = text.split_once('\n')?;
    if first != key {
        return None;
    }
    let tuning = Tuning::from_text(rest, gpu.context().is_software())?;
    let classes = tuning.choices().count() + tuning.conv_choices().count();
    gpu.adopt_tuning(tuning);
    Some(classes)
}

/// Writes `gpu`'s measured choices to `dir` (created if missing), replacing the file at once
/// (written beside it, then renamed), so that a concurrent reader sees the old or the new.
pub fn store(gpu: &GpuBackend, dir: &Path) -> std::io::Result<PathBuf> {
    let key = adapter_key(&gpu.context().info);
    let path = file_for(dir, &key);
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, format!("{key}\n{}", gpu.tuning().to_text()))?;
    std::fs::rename(&tmp, &path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(path)
}
