//! The native CLI end to end: info, sample (PNG + .npy + .csv), the GPU backend's kernel
//! tuning kept on disk, and clear errors.

mod gpu_common;

use pushforward::model::{self, ArchConfig, DataConfig, MlpConfig, Model, ModelConfig, PathConfig};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pushforward"))
}

fn temp_model() -> (std::path::PathBuf, Model) {
    let m = Model::random(
        ModelConfig {
            format_version: 1,
            arch: ArchConfig::Mlp(MlpConfig {
                data_dim: 2,
                width: 16,
                depth: 2,
                time_embed_dim: 8,
                time_scale: 1000.0,
                flow_map: false,
            }),
            data: DataConfig::Points2d { range: [[-3.0, 3.0], [-3.0, 3.0]] },
            num_classes: 0,
            path: PathConfig::Linear,
            provenance: Default::default(),
            class_names: Vec::new(),
        },
        1,
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("pushforward-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One file per call: the tests run in parallel threads of one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let p = dir.join(format!("m{}.safetensors", CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::write(&p, model::save(&m).unwrap()).unwrap();
    (p, m)
}

#[test]
fn info_prints_config_and_parameter_count() {
    let (p, m) = temp_model();
    let out = bin().args(["info", "--model", p.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains(&format!("parameters: {}", m.param_count())), "{s}");
    assert!(s.contains("\"kind\": \"mlp\""), "{s}");
}

/// `--backend gpu` measures the linear classes its solve ran and stores them per adapter; the
/// next run starts from the file and measures nothing. The budget is raised for the test: at the
/// default 300 ms a loaded CI machine measured one class of two (a budget, not a defect).
#[test]
fn the_gpu_backend_tunes_once_per_adapter() {
    if gpu_common::gpu().is_none() {
        return;
    }
    let (p, _) = temp_model();
    let cache = p.with_extension("tuning");
    let run = || {
        let out = bin()
            .env("PUSHFORWARD_CACHE_DIR", &cache)
            .env("PUSHFORWARD_TUNE_BUDGET_MS", "600000")
            .args(["sample", "--model", p.to_str().unwrap(), "--n", "300", "--steps", "2", "--backend", "gpu"])
            .args(["--out", cache.with_extension("png").to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err.lines().rev().find(|l| l.starts_with("kernel tuning")).unwrap_or_else(|| panic!("{err}")).to_string()
    };
    let first = run();
    println!("{first}");
    // The MLP's products at 300 rows (classes round n, k and m up to powers of two): the first
    // layer's embedding share on one row (1, 8 → 16: its folded bias), the first layer's point
    // columns (2 → 16), 16 → 16, 16 → 2.
    assert!(first.contains("no stored tuning; measured 4 more in"), "{first}");
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let second = run();
    println!("{second}");
    assert_eq!(second, "kernel tuning: 4 stored shape classes, nothing to measure");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn sample_writes_png_npy_and_csv() {
    let (p, _) = temp_model();
    let dir = p.parent().unwrap();
    let (png, npy, csv) = (dir.join("s.png"), dir.join("s.npy"), dir.join("s.csv"));
    let out = bin()
        .args(["sample", "--model", p.to_str().unwrap(), "--n", "300", "--steps", "4", "--solver", "rk4"])
        .args(["--trajectories", "1", "--size", "64", "--out", png.to_str().unwrap()])
        .args(["--npy", npy.to_str().unwrap(), "--csv", csv.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("16 NFE"));
    let png = std::fs::read(&png).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 64);
    let npy = std::fs::read(&npy).unwrap();
    assert_eq!(&npy[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0);
    assert!(std::str::from_utf8(&npy[10..10 + hlen]).unwrap().contains("'shape': (300, 2)"));
    assert_eq!(npy.len(), 10 + hlen + 300 * 2 * 4);
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv.lines().count(), 301);
    // The CSV and .npy hold the same numbers.
    let first: Vec<f32> = csv.lines().nth(1).unwrap().split(',').map(|v| v.parse().unwrap()).collect();
    let v0 = f32::from_le_bytes(npy[10 + hlen..14 + hlen].try_into().unwrap());
    assert_eq!(first[0], v0);
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let (p, _) = temp_model();
    let m = p.to_str().unwrap();
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["sample"],
        vec!["sample", "--model", "/nonexistent/file.safetensors"],
        vec!["sample", "--model", m, "--solver", "leapfrog"],
        vec!["sample", "--model", m, "--steps", "zero"],
        vec!["sample", "--model", m, "--steps", "0"],
        vec!["sample", "--model", m, "--label", "3"],
        vec!["sample", "--model", m, "--bogus", "1"],
        vec!["info", "--model", env!("CARGO_MANIFEST_DIR")],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    // A corrupt file names the problem.
    let bad = p.with_file_name("bad.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let out = bin().args(["info", "--model", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid weights file"));
}
