//! A deterministic mutation fuzzer over the weights loader and config parser
//! (`Model::from_bytes`): seeds are every shipped model, the fresh fixtures and a few generated
//! files (F16, U-Net, provenance with escapes); mutations are bit flips, interesting bytes,
//! truncation, splices, header-length lies and header-JSON-aware edits (numbers made huge,
//! negative or non-numbers, offsets swapped, entries duplicated or dropped, dtypes changed,
//! deep nesting, NaN/Inf weights).
//!
//! Every case must (1) not panic, (2) allocate no single block larger than
//! `4 × input + 64 KiB` during the load (a counting global allocator measures it), (3) fail,
//! if it fails, with a typed error whose message says what was wrong, and (4) if it loads,
//! be a container the `safetensors` crate also accepts, with a valid config, that saves and
//! loads back to the same model.
//!
//! Why `4 × input + 64 KiB`: weights are widened to f32 (F16 doubles: 2× the data), the header
//! entries kept while checking offsets take at most ~3.4× the bytes of their JSON (88 bytes per
//! entry, ≥ 52 bytes of JSON each, Vec doubling), and the fixed structures (the expected
//! tensor list of the largest config the bounds allow, hash tables) stay under 64 KiB.
//!
//! `PUSHFORWARD_FUZZ_CASES` sets the number of mutated cases (default 20 000, ~1.5 s; under CI
//! less is refused, here and by `scripts/test.sh`, and a value that is not a number always is);
//! see tests/fixtures/README.md for the long run. A failing input is written to
//! `target/fuzz-loader-failures/` for reproduction.

use pushforward::Error;
use pushforward::model::{self, Model, ModelConfig};
use std::path::PathBuf;

mod fuzz_common;
use fuzz_common::{Counting, Failure, Measured, Rng, alloc_bound, byte_edit, case_range, measured};

#[global_allocator]
static ALLOC: Counting = Counting;

/// `Model::from_bytes` and what it allocated (panics caught).
fn load_measured(bytes: &[u8]) -> Result<Measured<Result<Model, Error>>, String> {
    measured(|| Model::from_bytes(bytes))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_len(bytes: &[u8]) -> usize {
    bytes.get(..8).map_or(0, |h| u64::from_le_bytes(h.try_into().unwrap()) as usize)
}

/// Splits a well-formed file into (header text, data).
fn split(bytes: &[u8]) -> (String, Vec<u8>) {
    let n = header_len(bytes);
    (String::from_utf8(bytes[8..8 + n].to_vec()).unwrap(), bytes[8 + n..].to_vec())
}

fn join(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// f32 → f16 bits, truncating (values here are small weights in the normal range or zero).
fn f16_bits(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 31) as u16) << 15;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if v == 0.0 || exp <= 0 {
        return sign;
    }
    sign | ((exp.min(30) as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

/// The same model stored as F16 (offsets recomputed).
fn as_f16(bytes: &[u8]) -> Vec<u8> {
    let (header, data) = split(bytes);
    let mut out_data = Vec::new();
    let mut h = header.clone();
    // The writer lists tensors in offset order; rewrite each entry in turn.
    let mut pos = 0;
    while let Some(i) = h[pos..].find("\"data_offsets\":[") {
        let at = pos + i + "\"data_offsets\":[".len();
        let close = at + h[at..].find(']').unwrap();
        let nums: Vec<usize> = h[at..close].split(',').map(|s| s.parse().unwrap()).collect();
        let start = out_data.len();
        for c in data[nums[0]..nums[1]].chunks_exact(4) {
            out_data.extend_from_slice(&f16_bits(f32::from_le_bytes(c.try_into().unwrap())).to_le_bytes());
        }
        let repl = format!("{start},{}", out_data.len());
        h.replace_range(at..close, &repl);
        pos = at + repl.len();
    }
    join(&h.replace("\"F32\"", "\"F16\""), &out_data)
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("models"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    paths.push(root().join("tests/fixtures/fresh_mlp.safetensors"));
    paths.push(root().join("tests/fixtures/fresh_unet.safetensors"));
    paths.sort();
    for p in paths {
        v.push((p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()));
    }
    // Small generated files: cheap to load, so most mutations reach deep checks.
    let mut small = ModelConfig::mlp_preset(8, 2);
    small.num_classes = 2;
    small.provenance.dataset = Some("tab\tquote\" \u{e9}\u{1F600}".into());
    small.provenance.metrics.insert("sw2".into(), 0.0123);
    let small = model::save(&Model::random(small, 1).unwrap()).unwrap();
    v.push(("small_f16".into(), as_f16(&small)));
    v.push(("small_mlp".into(), small));
    let mut unet = ModelConfig::mnist_unet_preset();
    if let model::ArchConfig::Unet(u) = &mut unet.arch {
        u.base_channels = 8;
        u.groups = 4;
        u.channel_mult = vec![1, 2];
    }
    unet.data = model::DataConfig::Image { channels: 1, height: 8, width: 8, range: [-1.0, 1.0] };
    v.push(("small_unet".into(), model::save(&Model::random(unet, 2).unwrap()).unwrap()));
    v
}

const INTERESTING_BYTES: &[u8] = b"\x00\xff\x7f\x80\"{}[],:-09eE.\\ \nu";
const INTERESTING_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "-3",
    "1",
    "2",
    "7",
    "1e9",
    "1000000000",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "-0",
    "0.5",
    "1.5e300",
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    "null",
    "true",
    "\"1\"",
    "[]",
    "{}",
    "01",
    "1.",
    ".5",
    "1e",
    "--1",
    "0x10",
];
const DTYPES: &[&str] = &["F16", "BF16", "F64", "I32", "U8", "BOOL", "f32", "", "F32 ", "F8_E4M3"];

/// Byte ranges of the JSON-ish numbers in `s` (also inside the escaped config string).
fn numbers(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() || (b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_digit() || matches!(b[i], b'.' | b'e' | b'E' | b'+' | b'-')) {
                i += 1;
            }
            out.push((start, i));
        } else {
            i += 1;
        }
    }
    out
}

/// Applies one random mutation.
fn mutate(rng: &mut Rng, input: &[u8], others: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = input.to_vec();
    let hl = header_len(&b).min(b.len().saturating_sub(8));
    // Most edits target the header, where the parsing is.
    let pos = |rng: &mut Rng, len: usize| {
        if rng.below(4) > 0 && hl > 0 { 8 + rng.below(hl) } else { rng.below(len.max(1)) }
    };
    let header_text = |b: &[u8]| std::str::from_utf8(b.get(8..8 + hl)?).ok().map(str::to_string);
    match rng.below(12) {
        k @ (0 | 1) if !b.is_empty() => byte_edit(rng, &mut b, k, &pos, INTERESTING_BYTES, others),
        k @ (2 | 3) => byte_edit(rng, &mut b, k, &pos, INTERESTING_BYTES, others),
        4 if b.len() >= 8 => {
            let len = b.len() as u64;
            let n = *rng.pick(&[
                0,
                1,
                2,
                len,
                len - 8,
                len - 7,
                hl as u64 + 1,
                (hl as u64).saturating_sub(1),
                1 << 63,
                u64::MAX,
                100_000_001,
            ]);
            b[..8].copy_from_slice(&n.to_le_bytes());
        }
        k @ 5..=9 => {
            if let Some(h2) = header_text(&b).and_then(|h| edit_header(rng, k, &h)) {
                return join(&h2, &b[8 + hl..]);
            }
        }
        10 if b.len() > 8 + hl + 4 => {
            // A weight becomes NaN, ±Inf, a subnormal or huge.
            let d = 8 + hl;
            let i = d + rng.below((b.len() - d) / 4) * 4;
            let v: u32 =
                *rng.pick(&[0x7fc0_0000, 0x7f80_0000, 0xff80_0000, 0x0000_0001, 0x7f7f_ffff, 0x7e00_7e00, 0x7c00_7c00]);
            b[i..i + 4].copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            // Random garbage run.
            let i = pos(rng, b.len()).min(b.len());
            let n = rng.below(16);
            for k in 0..n {
                if i + k < b.len() {
                    b[i + k] = rng.next() as u8;
                }
            }
        }
    }
    b
}

/// A header-JSON-aware edit of kind `k` (see `mutate`); `None` when the header does not have
/// what the edit needs (it may already be mangled by an earlier mutation).
fn edit_header(rng: &mut Rng, k: usize, h: &str) -> Option<String> {
    match k {
        5 => {
            // A number in the header (or in the config inside it) replaced.
            let nums = numbers(h);
            if nums.is_empty() {
                return None;
            }
            let (s, e) = *rng.pick(&nums);
            let mut repl = rng.pick(INTERESTING_NUMBERS).to_string();
            if h.find("__metadata__").is_some_and(|m| s > m) && h[..s].contains("\\\"") {
                // Inside the escaped config string: keep the string valid.
                repl = repl.replace('"', "\\\"");
            }
            Some(format!("{}{repl}{}", &h[..s], &h[e..]))
        }
        6 => {
            // Swap two tensors' data_offsets, or make one overlap another.
            let offs: Vec<(usize, usize)> = h
                .match_indices("\"data_offsets\":[")
                .filter_map(|(i, m)| Some((i + m.len(), i + m.len() + h[i + m.len()..].find(']')?)))
                .collect();
            if offs.len() < 2 {
                return None;
            }
            let (x, y) = (rng.below(offs.len()), rng.below(offs.len()));
            if x == y {
                return None;
            }
            let (lo, hi) = (offs[x.min(y)], offs[x.max(y)]);
            let (tx, ty) = (&h[lo.0..lo.1], &h[hi.0..hi.1]);
            let ty = if rng.below(2) == 0 {
                ty.to_string()
            } else {
                format!("{},{}", ty.split(',').next()?, tx.split(',').nth(1)?)
            };
            Some(format!("{}{ty}{}{tx}{}", &h[..lo.0], &h[lo.1..hi.0], &h[hi.1..]))
        }
        7 => {
            // Duplicate, drop or rename a tensor entry.
            let es = entries(h);
            if es.is_empty() {
                return None;
            }
            let (s, e) = *rng.pick(&es);
            let h2 = match rng.below(3) {
                0 => format!("{},{}", &h[..e], &h[s..]),
                1 => format!("{}{}", &h[..s], h[e..].trim_start_matches(',')),
                _ => format!("{}\"layers.99.weight\"{}", &h[..s], &h[s + 1 + h[s + 1..].find('"')? + 1..]),
            };
            Some(h2.replace("{,", "{").trim_end_matches([',', ' ']).to_string())
        }
        8 => {
            let ds: Vec<usize> = h.match_indices("\"dtype\":\"").map(|(i, m)| i + m.len()).collect();
            if ds.is_empty() {
                return None;
            }
            let at = *rng.pick(&ds);
            let end = at + h[at..].find('"')?;
            Some(format!("{}{}{}", &h[..at], rng.pick(DTYPES), &h[end..]))
        }
        _ => {
            // Deep nesting or odd values in the provenance (inside the escaped config).
            let i = h.find("\\\"provenance\\\":")?;
            let at = i + h[i..].find('{')? + 1;
            let depth = *rng.pick(&[10, 63, 64, 65, 200, 5000]);
            let v = match rng.below(4) {
                0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
                1 => format!("{}0{}", "[".repeat(depth), "]".repeat(depth)),
                2 => "\\\"\\\\ud800\\\"".to_string(),
                _ => "\\\"\\\\u00e9\\\\n\\\"".to_string(),
            };
            let key = *rng.pick(&["x", "metrics", "seed", "dataset"]);
            Some(format!("{}\\\"{key}\\\": {v}, {}", &h[..at], &h[at..]))
        }
    }
}

/// Each tensor entry `"name":{...}` of a header (names without escapes), as byte ranges.
fn entries(h: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = h[pos..].find("\":{\"dtype\"") {
        let key_end = pos + i + 1;
        let (Some(key_start), Some(close)) = (h[..key_end - 1].rfind('"'), h[key_end..].find('}')) else { break };
        let end = key_end + close + 1;
        out.push((key_start, end));
        pos = end;
    }
    out
}

/// Checks one input; returns what was wrong, if anything, or the largest allocation as a
/// fraction of the bound.
fn check(bytes: &[u8]) -> Result<f64, String> {
    let Measured { result, largest, .. } = load_measured(bytes)?;
    if largest > alloc_bound(bytes.len()) {
        return Err(format!("allocated {largest} bytes at once for a {}-byte input", bytes.len()));
    }
    match result {
        Err(e) => {
            let msg = e.to_string();
            let specific = match &e {
                Error::WeightsFormat(m) => !m.is_empty(),
                Error::Config { field, reason } => !field.is_empty() && !reason.is_empty(),
                Error::MissingTensor(n) | Error::UnexpectedTensor(n) => !n.is_empty(),
                Error::TensorShape { name, .. }
                | Error::TensorDtype { name, .. }
                | Error::NonFiniteWeight { name, .. } => !name.is_empty(),
                _ => false,
            };
            if !specific {
                return Err(format!("rejected with a vague or unexpected error: {msg}"));
            }
        }
        Ok(m) => {
            if safetensors::SafeTensors::deserialize(bytes).is_err() {
                return Err("loaded, but the safetensors crate rejects the container".into());
            }
            m.config.validate().map_err(|e| format!("loaded an invalid config: {e}"))?;
            let again = model::save(&m).map_err(|e| format!("loaded but cannot save: {e}"))?;
            if Model::from_bytes(&again).as_ref() != Ok(&m) {
                return Err("loaded, but save → load does not give the same model".into());
            }
        }
    }
    Ok(largest as f64 / alloc_bound(bytes.len()) as f64)
}

fn report(failures: &[Failure]) {
    fuzz_common::report(failures, &root().join("target/fuzz-loader-failures"), "safetensors");
}

#[test]
fn seeds_load_and_respect_the_bounds() {
    let mut failures = Vec::new();
    for (name, bytes) in seeds() {
        if let Err(what) = check(&bytes) {
            failures.push(Failure { case: format!("seed-{name}"), what, input: bytes.clone() });
        }
        if Model::from_bytes(&bytes).is_err() {
            failures.push(Failure { case: format!("seed-{name}"), what: "a seed does not load".into(), input: bytes });
        }
    }
    report(&failures);
}

#[test]
fn mutated_files_never_panic_overallocate_or_fail_vaguely() {
    let range = case_range();
    let cases = range.end - range.start;
    let seeds = seeds();
    let started = std::time::Instant::now();
    let (mut failures, mut accepted, mut worst) = (Vec::new(), 0u64, 0f64);
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    for case in range {
        let mut rng = Rng(pushforward::rng::SplitMix64(case.wrapping_mul(0xA24B_AED4_963E_E407)));
        let (name, seed) = &seeds[rng.below(seeds.len())];
        let mut input = seed.clone();
        for _ in 0..1 + rng.below(3) {
            input = mutate(&mut rng, &input, &seeds);
        }
        match check(&input) {
            Ok(ratio) => worst = worst.max(ratio),
            Err(what) => failures.push(Failure { case: format!("case-{case}-{name}"), what, input: input.clone() }),
        }
        match Model::from_bytes(&input) {
            Ok(_) => accepted += 1,
            Err(e) => {
                let kind = format!("{e:?}");
                *kinds.entry(kind[..kind.find(['(', ' ']).unwrap_or(kind.len())].to_string()).or_default() += 1;
            }
        }
    }
    println!(
        "fuzz_loader: {cases} cases in {:.1} s, {accepted} loaded, rejections by kind {kinds:?}, largest allocation {:.0}% of the bound",
        started.elapsed().as_secs_f64(),
        worst * 100.0
    );
    report(&failures);
}

/// The config bounds keep the expected tensor list (built before any tensor is read) small.
#[test]
fn largest_allowed_architecture_fits_the_tensor_cap() {
    let mut cfg = ModelConfig::mnist_unet_preset();
    if let model::ArchConfig::Unet(u) = &mut cfg.arch {
        u.channel_mult = vec![1; 6];
        u.num_res_blocks = 8;
        u.base_channels = 8;
    }
    cfg.data = model::DataConfig::Image { channels: 1, height: 32, width: 32, range: [-1.0, 1.0] };
    cfg.validate().unwrap();
    let n = model::expected_params(&cfg).len();
    assert!(n <= model::format::MAX_TENSORS, "{n} tensors");
}
