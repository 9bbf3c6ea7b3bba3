//! Shared set-up of the GPU tests: one device per test binary, the adapter printed once, and a
//! loud failure (not a silent skip) when no adapter exists.
#![allow(dead_code)]

use pushforward::gpu::{GpuBackend, GpuOptions};
use std::sync::OnceLock;

pub const SKIP_ENV: &str = "PUSHFORWARD_SKIP_GPU_TESTS";

/// Opens a device with `opts`; `None` only when PUSHFORWARD_SKIP_GPU_TESTS=1 and there is no
/// adapter. Without that variable a missing adapter fails the test with how to get one.
pub fn open(opts: &GpuOptions) -> Option<GpuBackend> {
    match GpuBackend::new(opts) {
        Ok(b) => Some(b),
        Err(e) if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") => {
            eprintln!("{SKIP_ENV}=1: skipping GPU test ({e})");
            None
        }
        Err(e) => panic!(
            "{e}\nThe GPU tests need a Vulkan adapter. On Debian/Ubuntu install Mesa's software one \
             (lavapipe): `apt-get install mesa-vulkan-drivers libvulkan1` (scripts/setup.sh does it). \
             To skip these tests on a machine without one, set {SKIP_ENV}=1 (CI never does)."
        ),
    }
}

/// The shared default-limits backend of this test binary.
pub fn gpu() -> Option<&'static GpuBackend> {
    static B: OnceLock<Option<GpuBackend>> = OnceLock::new();
    B.get_or_init(|| {
        let b = open(&GpuOptions::default());
        if let Some(b) = &b {
            eprintln!("GPU tests run on {}", b.context().describe());
        }
        b
    })
    .as_ref()
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
