//! `pushforward` — the native command line: sample a model to PNG (and .npy/.csv), print a
//! model's config, or benchmark the CPU kernels and sampler.

use pushforward::Backend;
use pushforward::cpu::CpuBackend;
use pushforward::error::shown;
use pushforward::gpu::tuning::WallTimer;
use pushforward::gpu::{GpuBackend, GpuOptions, tuning_cache};
use pushforward::model::{ArchConfig, DataConfig, Model};
use pushforward::options::{self, Entries, Value};
use pushforward::render;
use pushforward::sampler::{SampleOptions, SampleOutput, Sampler};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "\
pushforward — sample flow-matching models on the CPU or the GPU

USAGE:
  pushforward sample --model FILE [options]      FILE: .safetensors, or .onnx with its declaration
      --declaration F.json   what an .onnx file is, when its metadata does not say (train/README.md)
      --solver euler|midpoint|heun|rk4|ab2|dopri5   (default heun; ab2 for an image model, euler for a flow map)
      --steps N          fixed-step solvers (default 8; 1 for a flow map)
      --rtol X --atol X  dopri5 tolerances (default 1e-3)
      --n N              number of samples (default 4096 points / 20 images)
      --seed N           (default 0)
      --label K|all|none class for conditional models; `all` cycles 0..K-1 (default all)
      --guidance W       classifier-free guidance scale (default 1)
      --guidance-from T --guidance-to T   guide only for t in [from, to] (default 0, 1)
      --cfg-zero-star true   CFG-Zero*'s optimised scale per sample
      --zero-init-steps K    keep the noise for the first K steps (CFG-Zero*'s zero-init)
      --noise E          sample the SDE with noise level E (Euler–Maruyama; needs --solver euler)
      --trajectories K   draw the paths (of the first 300 samples), keeping every K-th step
      --max-steps N      dopri5 step budget (default 1000)
      --out FILE.png     (default samples.png)
      --npy FILE.npy     also write the raw samples as float32 .npy
      --csv FILE.csv     also write the raw samples as CSV
      --size PX          plot size for 2-D models (default 512)
      --backend cpu|gpu  where to run (default cpu; gpu = wgpu on Vulkan; it keeps the kernel
                         tuning in $PUSHFORWARD_CACHE_DIR or ~/.cache/pushforward, timing what it
                         lacks for up to $PUSHFORWARD_TUNE_BUDGET_MS, default 300)
  pushforward info --model FILE [--declaration F.json]
  pushforward bench [cpu|gpu] [--quick]
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if e.starts_with("usage") || e.contains("unknown") || e.contains("missing") {
                eprintln!("\n{USAGE}");
            }
            ExitCode::from(2)
        }
    }
}

/// `--key value` pairs (and bare `--flag`s) after the subcommand.
fn parse_flags(args: &[String], known: &[&str], bare: &[&str]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let Some(key) = a.strip_prefix("--") else { return Err(format!("unexpected argument `{}`", shown(a, 40))) };
        if bare.contains(&key) {
            out.insert(key.to_string(), String::new());
            i += 1;
            continue;
        }
        if !known.contains(&key) {
            return Err(format!("unknown option `--{}`", shown(key, 40)));
        }
        let v = args.get(i + 1).ok_or_else(|| format!("missing value for `--{key}`"))?;
        out.insert(key.to_string(), v.clone());
        i += 2;
    }
    Ok(out)
}

/// A flag's text as an option value: a number, true/false, `--label none` = null, else text.
/// A flag's name as the options contract spells it: `max-steps` → `maxSteps`.
fn camel_case(flag: &str) -> String {
    let mut out = String::with_capacity(flag.len());
    let mut upper = false;
    for ch in flag.chars() {
        match ch {
            '-' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

fn flag_value(key: &str, v: &str) -> Value {
    match v {
        "none" if key == "label" => Value::Null,
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => v.parse::<f64>().map_or_else(|_| Value::Str(v.to_string()), Value::Num),
    }
}

fn num<T: std::str::FromStr>(flags: &HashMap<String, String>, key: &str, default: T) -> Result<T, String> {
    match flags.get(key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("`--{key} {}` is not a valid number", shown(v, 40))),
    }
}

/// The model of `--model FILE` (.safetensors or .onnx), with `--declaration FILE` (JSON) for an
/// ONNX file whose metadata does not say what it is.
fn load_model(flags: &HashMap<String, String>) -> Result<Model, String> {
    let path = flags.get("model").ok_or("missing `--model FILE`")?;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", shown(path, 200)))?;
    let model = match flags.get("declaration") {
        Some(d) => {
            let text = std::fs::read_to_string(d).map_err(|e| format!("cannot read `{}`: {e}", shown(d, 200)))?;
            pushforward::onnx::load(&bytes, Some(&text))
        }
        None => Model::from_bytes(&bytes),
    };
    model.map_err(|e| format!("`{}`: {e}", shown(path, 200)))
}

fn run(args: &[String]) -> Result<(), String> {
    let Some(cmd) = args.first() else { return Err("usage: a subcommand is required".into()) };
    match cmd.as_str() {
        "sample" => sample(&args[1..]),
        "info" => info(&args[1..]),
        "bench" => bench(&args[1..]),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown subcommand `{}`", shown(other, 40))),
    }
}

fn info(args: &[String]) -> Result<(), String> {
    let flags = parse_flags(args, &["model", "declaration"], &[])?;
    let m = load_model(&flags)?;
    println!("parameters: {}", m.param_count());
    println!("{}", pushforward::model::json::pretty(&m.config.to_json()));
    Ok(())
}

fn sample(args: &[String]) -> Result<(), String> {
    let flags = parse_flags(
        args,
        &[
            "model",
            "declaration",
            "solver",
            "steps",
            "rtol",
            "atol",
            "n",
            "seed",
            "label",
            "guidance",
            "guidance-from",
            "guidance-to",
            "cfg-zero-star",
            "zero-init-steps",
            "noise",
            "trajectories",
            "out",
            "npy",
            "csv",
            "size",
            "max-steps",
            "backend",
        ],
        &[],
    )?;
    let model = load_model(&flags)?;
    // The sampling options go through the crate's one options contract (the JS API uses the
    // same names, defaults and bounds); the rest are the CLI's own.
    const OWN: [&str; 7] = ["model", "declaration", "out", "npy", "csv", "size", "backend"];
    let entries = Entries(
        flags
            .iter()
            .filter(|(k, _)| !OWN.contains(&k.as_str()))
            .map(|(k, v)| (camel_case(k), flag_value(k, v)))
            .collect(),
    );
    let opts = options::parse_sample(&model.config, &entries).map_err(|e| e.to_string())?.options;
    let (out, secs, backend_name) = match flags.get("backend").map(String::as_str) {
        None | Some("cpu") => run_sampler(CpuBackend, &model, &opts)?,
        Some("gpu") => {
            let gpu = GpuBackend::new(&GpuOptions::default()).map_err(|e| e.to_string())?;
            let cache = tuning_cache::default_dir();
            let loaded = cache.as_deref().and_then(|d| tuning_cache::load(&gpu, d));
            let out = run_sampler(&gpu, &model, &opts)?;
            tune_for_next_time(&gpu, cache.as_deref(), loaded);
            out
        }
        Some(other) => return Err(format!("unknown backend `{}` (expected cpu or gpu)", shown(other, 40))),
    };
    println!(
        "{} samples, solver {}, {} NFE ({} accepted, {} rejected steps), {:.3} s on the {} backend",
        opts.n, opts.solver, out.stats.nfe, out.stats.accepted, out.stats.rejected, secs, backend_name
    );

    let img = match &model.config.data {
        DataConfig::Points2d { range } => {
            let size = num(&flags, "size", 512usize)?.clamp(16, 4096);
            let frames: Vec<Vec<f32>> = out.frames.iter().map(|(_, t)| t.data().to_vec()).collect();
            render::density_plot(out.samples.data(), *range, size, size, &frames, 300, None)
        }
        DataConfig::Image { .. } => {
            let grid = render::GridPlot::for_model(&model.config, opts.n, 3).expect("an image model");
            render::image_grid(out.samples.data(), &grid)
        }
    };
    let png_path = flags.get("out").cloned().unwrap_or_else(|| "samples.png".into());
    let png = render::png::encode(&img).map_err(|e| e.to_string())?;
    std::fs::write(&png_path, png).map_err(|e| format!("cannot write `{}`: {e}", shown(&png_path, 200)))?;
    println!("wrote {png_path}");
    if let Some(p) = flags.get("npy") {
        std::fs::write(p, npy_bytes(out.samples.shape(), out.samples.data()))
            .map_err(|e| format!("cannot write `{}`: {e}", shown(p, 200)))?;
        println!("wrote {p}");
    }
    if let Some(p) = flags.get("csv") {
        let row = out.samples.shape()[1..].iter().product::<usize>().max(1);
        let mut s = String::new();
        if let ArchConfig::Mlp(_) = model.config.arch {
            s.push_str("x,y\n");
        }
        for r in out.samples.data().chunks(row) {
            s.push_str(&r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","));
            s.push('\n');
        }
        std::fs::write(p, s).map_err(|e| format!("cannot write `{}`: {e}", shown(p, 200)))?;
        println!("wrote {p}");
    }
    Ok(())
}

/// The GPU kernels' variants for the next run: the linear and convolution shape classes this solve ran that
/// the stored tuning lacks are timed (a class is started only while the budget, 300 ms or
/// `$PUSHFORWARD_TUNE_BUDGET_MS`, lasts) and the file rewritten, so that a machine tunes once
/// (`tuning_cache`). Says what it did on stderr; a failure only says so.
fn tune_for_next_time(gpu: &GpuBackend, cache: Option<&std::path::Path>, loaded: Option<usize>) {
    let Some(dir) = cache else { return };
    let budget_ms = match std::env::var("PUSHFORWARD_TUNE_BUDGET_MS") {
        Err(_) => 300.0,
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(ms) if ms.is_finite() && ms >= 0.0 => ms,
            _ => {
                eprintln!("kernel tuning: PUSHFORWARD_TUNE_BUDGET_MS={v:?} is not a number of milliseconds; using 300");
                300.0
            }
        },
    };
    let from = loaded.map_or("no stored tuning".to_string(), |k| format!("{k} stored shape classes"));
    let (untuned, untuned_conv) = (gpu.tuning().untuned(), gpu.tuning().untuned_conv());
    if untuned.is_empty() && untuned_conv.is_empty() {
        eprintln!("kernel tuning: {from}, nothing to measure");
        return;
    }
    let start = Instant::now();
    let tuned = pollster::block_on(async {
        let linear = gpu.tune_linear(&untuned, budget_ms, &mut WallTimer).await?;
        let left = budget_ms - start.elapsed().as_secs_f64() * 1e3;
        Ok::<usize, pushforward::Error>(linear + gpu.tune_conv(&untuned_conv, left, &mut WallTimer).await?)
    });
    match tuned {
        Ok(tuned) => match tuning_cache::store(gpu, dir) {
            Ok(path) => eprintln!(
                "kernel tuning: {from}; measured {tuned} more in {:.0} ms, stored in {}",
                start.elapsed().as_secs_f64() * 1e3,
                path.display()
            ),
            Err(e) => eprintln!("kernel tuning: not stored in {} ({e})", dir.display()),
        },
        Err(e) => eprintln!("kernel tuning failed ({e}); the defaults stay"),
    }
}

/// Samples with progress on stderr; returns the output, the wall time and the backend's name.
fn run_sampler<B: Backend>(
    backend: B,
    model: &Model,
    opts: &SampleOptions,
) -> Result<(SampleOutput, f64, String), String> {
    let name = backend.name();
    let sampler = Sampler::new(backend, model).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let out = sampler
        .sample(opts, &mut |p| {
            if let Some(total) = p.total_steps {
                eprint!("\rstep {}/{} (t = {:.3}, {} NFE)", p.step, total, p.t, p.nfe);
            } else {
                eprint!("\rstep {} (t = {:.3}, {} NFE)", p.step, p.t, p.nfe);
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| format!("\n{e}"))?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!();
    Ok((out, secs, name))
}

/// NumPy .npy v1.0, little-endian float32, C order.
fn npy_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims = shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
    let dims = if shape.len() == 1 { format!("{dims},") } else { dims };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    // Pad so that magic(6) + version(2) + len(2) + header + '\n' is a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn bench(args: &[String]) -> Result<(), String> {
    let (which, rest) = match args.first().map(String::as_str) {
        Some("cpu") => ("cpu", &args[1..]),
        Some("gpu") => ("gpu", &args[1..]),
        _ => ("cpu", args),
    };
    let flags = parse_flags(rest, &[], &["quick"])?;
    let quick = flags.contains_key("quick");
    match which {
        "gpu" => pushforward::bench::run_gpu(quick),
        _ => {
            pushforward::bench::run_cpu(quick);
            Ok(())
        }
    }
}
