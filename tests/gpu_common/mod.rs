//! Shared set-up of the GPU tests: one device per test binary, the adapter printed once, and a
//! loud failure (not a silent skip) when no adapter exists.
//!
//! `PUSHFORWARD_SKIP_GPU_TESTS=1` turns that failure into a skip, for machines without a Vulkan
//! adapter. A skipped test still *passes* in libtest's eyes, so every skip is also appended to
//! a log (`skip_log()`: `$PUSHFORWARD_GPU_SKIP_LOG`, by default
//! `target/pushforward-gpu-skips.txt`), one line per call: `<test binary> <test name>: <why>`.
//! `scripts/test.sh` empties it before `cargo test`, prints "GPU tests skipped: N" (distinct
//! tests) after, and fails under CI if N > 0. Under CI (`CI` set, not `0`/`false`) the variable
//! is refused here too, so a plain `cargo test` in CI cannot skip either.
#![allow(dead_code)]

use pushforward::gpu::{GpuBackend, GpuOptions};
use pushforward::model::{ArchConfig, DataConfig, MlpConfig, ModelConfig, PathConfig};
use std::io::Write;
use std::sync::OnceLock;

pub const SKIP_ENV: &str = "PUSHFORWARD_SKIP_GPU_TESTS";
/// Overrides where skips are logged (`scripts/test.sh` sets it).
pub const SKIP_LOG_ENV: &str = "PUSHFORWARD_GPU_SKIP_LOG";

/// Whether this runs under CI: `CI` set to anything but empty, `0` or `false`.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// The file every skipped GPU test is recorded in.
pub fn skip_log() -> std::path::PathBuf {
    match std::env::var_os(SKIP_LOG_ENV) {
        Some(p) if !p.is_empty() => p.into(),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pushforward-gpu-skips.txt"),
    }
}

/// A GPU test cannot get an adapter (`why`): fail with how to get one, or — only with
/// PUSHFORWARD_SKIP_GPU_TESTS=1 and not under CI — record the skip and return `None`.
fn skip_or_fail(why: &str) -> Option<GpuBackend> {
    let skip = std::env::var(SKIP_ENV).is_ok_and(|v| v == "1");
    if skip && !under_ci() {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let line = format!("{} {test}: {}\n", env!("CARGO_CRATE_NAME"), why.replace('\n', " "));
        let log = skip_log();
        if let Some(dir) = log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // One write of one short line in append mode: concurrent tests do not interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!("{SKIP_ENV}=1 but the skip of {test} cannot be recorded in {}: {e}", log.display());
        }
        eprintln!("{SKIP_ENV}=1: skipping GPU test {test} ({why}); recorded in {}", log.display());
        return None;
    }
    if skip {
        panic!(
            "{why}\n{SKIP_ENV}=1 is refused under CI (CI={:?}): CI must run the GPU tests on a Vulkan adapter \
             (lavapipe: `apt-get install mesa-vulkan-drivers libvulkan1`).",
            std::env::var("CI").unwrap_or_default()
        );
    }
    panic!(
        "{why}\nThe GPU tests need a Vulkan adapter. On Debian/Ubuntu install Mesa's software one \
         (lavapipe): `apt-get install mesa-vulkan-drivers libvulkan1` (scripts/setup.sh does it). \
         To skip these tests on a machine without one, set {SKIP_ENV}=1 (refused under CI; every \
         skip is counted in {}).",
        skip_log().display()
    )
}

/// Opens a device with `opts`; `None` only when PUSHFORWARD_SKIP_GPU_TESTS=1, not under CI, and
/// there is no adapter (the skip is recorded). Otherwise a missing adapter fails the test with
/// how to get one.
pub fn open(opts: &GpuOptions) -> Option<GpuBackend> {
    match GpuBackend::new(opts) {
        Ok(b) => {
            eprintln!("GPU tests run on {}", b.context().describe());
            Some(b)
        }
        Err(e) => skip_or_fail(&e.to_string()),
    }
}

/// The shared default-limits backend of this test binary. The device is opened once; when it
/// cannot be, every calling test fails or records its own skip.
pub fn gpu() -> Option<&'static GpuBackend> {
    static B: OnceLock<Result<GpuBackend, String>> = OnceLock::new();
    let b = B.get_or_init(|| {
        let b = GpuBackend::new(&GpuOptions::default()).map_err(|e| e.to_string());
        if let Ok(b) = &b {
            eprintln!("GPU tests run on {}", b.context().describe());
        }
        b
    });
    match b {
        Ok(b) => Some(b),
        Err(e) => {
            skip_or_fail(e);
            None
        }
    }
}

/// Deterministic test inputs in [-1, 1) (not every test crate that includes this module uses it).
#[allow(unused_imports)]
pub use pushforward::rng::test_values as rand_vec;

/// Largest violation ratio of |a-b| <= atol + rtol·|b| (≤ 1 passes) and the max abs error.
pub fn compare(a: &[f32], b: &[f32], atol: f32, rtol: f32) -> (f32, f32) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let mut worst = 0.0f32;
    let mut max_abs = 0.0f32;
    for (&x, &y) in a.iter().zip(b) {
        let d = (x - y).abs();
        if d.is_nan() {
            return (f32::INFINITY, f32::INFINITY);
        }
        max_abs = max_abs.max(d);
        worst = worst.max(d / (atol + rtol * y.abs()));
    }
    (worst, max_abs)
}

#[track_caller]
pub fn assert_close(what: &str, a: &[f32], b: &[f32], atol: f32, rtol: f32) -> f32 {
    let (worst, max_abs) = compare(a, b, atol, rtol);
    eprintln!("{what}: max |gpu-cpu| = {max_abs:.3e} (atol {atol:e}, rtol {rtol:e})");
    assert!(worst <= 1.0, "{what}: |gpu-cpu| up to {max_abs:e} exceeds atol {atol:e} + rtol {rtol:e}·|cpu|");
    max_abs
}

/// Blocking download.
pub fn host(b: &GpuBackend, t: &pushforward::gpu::GpuTensor) -> pushforward::Tensor {
    use pushforward::Backend;
    pollster::block_on(b.download(t)).expect("download")
}

/// The config of the GPU tests' 2-D MLP (width 256, depth 3: the shipped models' kind, wider);
/// `flow_map`: one that also takes the step length (MeanFlow).
pub fn mlp_config(num_classes: usize, flow_map: bool) -> ModelConfig {
    ModelConfig {
        format_version: 1,
        arch: ArchConfig::Mlp(MlpConfig {
            data_dim: 2,
            width: 256,
            depth: 3,
            time_embed_dim: 32,
            time_scale: 1000.0,
            flow_map,
        }),
        data: DataConfig::Points2d { range: [[-3.0, 3.0], [-3.0, 3.0]] },
        num_classes,
        path: PathConfig::Linear,
        provenance: Default::default(),
        class_names: Vec::new(),
    }
}
