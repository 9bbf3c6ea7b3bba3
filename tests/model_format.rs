//! Weights-format loading and validation, and the architectures' forward on the CPU.

use pushforward::cpu::CpuBackend;
use pushforward::model::{
    self, ArchConfig, DataConfig, MlpConfig, Model, ModelConfig, Network, PathConfig, UnetConfig,
};
use pushforward::{Error, Tensor};
use std::collections::HashMap;

fn mlp_config(num_classes: usize) -> ModelConfig {
    ModelConfig {
        format_version: 1,
        arch: ArchConfig::Mlp(MlpConfig {
            data_dim: 2,
            width: 24,
            depth: 3,
            time_embed_dim: 8,
            time_scale: 1000.0,
            flow_map: false,
        }),
        data: DataConfig::Points2d { range: [[-3.0, 3.0], [-3.0, 3.0]] },
        num_classes,
        path: PathConfig::Linear,
        provenance: Default::default(),
        class_names: Vec::new(),
    }
}

fn unet_config() -> ModelConfig {
    ModelConfig {
        format_version: 1,
        arch: ArchConfig::Unet(UnetConfig {
            in_channels: 1,
            base_channels: 8,
            channel_mult: vec![1, 2, 2],
            num_res_blocks: 1,
            groups: 4,
            time_scale: 1000.0,
        }),
        data: DataConfig::Image { channels: 1, height: 12, width: 8, range: [-1.0, 1.0] },
        num_classes: 3,
        path: PathConfig::Linear,
        provenance: Default::default(),
        class_names: Vec::new(),
    }
}

/// Writes a safetensors file by hand, so tests can make files our own writer never would.
fn raw_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn config_json_escaped(cfg: &ModelConfig) -> String {
    serde_json::to_string(&cfg.to_json()).unwrap()
}

#[test]
fn save_then_load_round_trips_exactly() {
    for cfg in [mlp_config(0), mlp_config(4), unet_config()] {
        let m = Model::random(cfg, 7).unwrap();
        let bytes = model::save(&m).unwrap();
        let back = model::load(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.param_count(), m.param_count());
    }
}

#[test]
fn mlp_param_count_matches_formula() {
    let m = Model::random(mlp_config(0), 1).unwrap();
    // (2+8)·24+24 + 2·(24·24+24) + 24·2+2
    assert_eq!(m.param_count(), 264 + 2 * 600 + 50);
}

#[test]
fn f16_tensors_are_widened_exactly() {
    assert_eq!(model::format::f16_to_f32(0x3c00), 1.0);
    assert_eq!(model::format::f16_to_f32(0xc000), -2.0);
    assert_eq!(model::format::f16_to_f32(0x7bff), 65504.0);
    assert_eq!(model::format::f16_to_f32(0x0001), 2f32.powi(-24)); // smallest subnormal
    assert_eq!(model::format::f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24)); // largest subnormal
    assert_eq!(model::format::f16_to_f32(0x0400), 2f32.powi(-14)); // smallest normal
    assert!(model::format::f16_to_f32(0x7c00).is_infinite());
    assert!(model::format::f16_to_f32(0x7e00).is_nan());
    assert_eq!(model::format::f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());

    // A whole model stored as F16 loads and equals the F32 values rounded to half precision.
    let cfg = mlp_config(0);
    let m = Model::random(cfg.clone(), 3).unwrap();
    let mut names: Vec<_> = m.params.keys().cloned().collect();
    names.sort();
    let mut header = String::from("{");
    let mut data = Vec::new();
    let mut expect = HashMap::new();
    for name in &names {
        let t = &m.params[name];
        let start = data.len();
        let mut vals = Vec::new();
        for &v in t.data() {
            let h = f32_to_f16_truncate(v);
            data.extend_from_slice(&h.to_le_bytes());
            vals.push(model::format::f16_to_f32(h));
        }
        header += &format!(
            "\"{name}\":{{\"dtype\":\"F16\",\"shape\":{:?},\"data_offsets\":[{start},{}]}},",
            t.shape(),
            data.len()
        );
        expect.insert(name.clone(), vals);
    }
    header += &format!("\"__metadata__\":{{\"pushforward\":{}}}}}", config_json_escaped(&cfg));
    let loaded = model::load(&raw_safetensors(&header, &data)).unwrap();
    for (name, vals) in expect {
        assert_eq!(loaded.params[&name].data(), &vals[..], "{name}");
    }
}

/// f32 → f16 by truncating the mantissa (normal range only; enough for small weights).
fn f32_to_f16_truncate(v: f32) -> u16 {
    if v == 0.0 {
        return 0;
    }
    let b = v.to_bits();
    let sign = ((b >> 31) as u16) << 15;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    assert!((1..31).contains(&exp), "value {v} outside the normal f16 range");
    sign | ((exp as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

fn valid_bytes() -> (Model, Vec<u8>) {
    let m = Model::random(mlp_config(0), 11).unwrap();
    let b = model::save(&m).unwrap();
    (m, b)
}

#[test]
fn truncated_and_garbage_files_are_typed_errors() {
    let (_, bytes) = valid_bytes();
    for cut in [0, 3, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        let err = model::load(&bytes[..cut]).unwrap_err();
        assert!(matches!(err, Error::WeightsFormat(_)), "cut at {cut}: {err}");
    }
    // Header length that points past the end of the file.
    let mut lying = bytes.clone();
    lying[..8].copy_from_slice(&(bytes.len() as u64 * 4).to_le_bytes());
    let err = model::load(&lying).unwrap_err();
    assert!(err.to_string().contains("past the end") || matches!(err, Error::WeightsFormat(_)), "{err}");
    // Header length of 2^63.
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&(1u64 << 63).to_le_bytes());
    assert!(matches!(model::load(&huge), Err(Error::WeightsFormat(_))));
    // Extra trailing bytes.
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0; 16]);
    assert!(matches!(model::load(&padded), Err(Error::WeightsFormat(_))));
    // Not JSON at all.
    assert!(matches!(model::load(&raw_safetensors("not json", &[])), Err(Error::WeightsFormat(_))));
}

#[test]
fn tensor_that_claims_more_data_than_the_file_is_rejected_before_allocating() {
    let cfg = mlp_config(0);
    // One tensor that claims 10^12 elements but the file holds 8 bytes of data.
    let header = format!(
        "{{\"layers.0.weight\":{{\"dtype\":\"F32\",\"shape\":[1000000,1000000],\"data_offsets\":[0,8]}},\"__metadata__\":{{\"pushforward\":{}}}}}",
        config_json_escaped(&cfg)
    );
    let err = model::load(&raw_safetensors(&header, &[0; 8])).unwrap_err();
    assert!(matches!(err, Error::WeightsFormat(_)), "{err}");
}

/// Rebuilds `m`'s file with one tensor replaced (or removed with `None`), or one added.
fn with_tensor(m: &Model, name: &str, t: Option<Tensor>) -> Vec<u8> {
    let mut m2 = m.clone();
    match t {
        Some(t) => {
            m2.params.insert(name.into(), t);
        }
        None => {
            m2.params.remove(name);
        }
    }
    model::save(&m2).unwrap()
}

#[test]
fn tensor_set_mismatches_name_the_tensor() {
    let (m, _) = valid_bytes();
    let err = model::load(&with_tensor(&m, "layers.1.bias", None)).unwrap_err();
    assert_eq!(err, Error::MissingTensor("layers.1.bias".into()));

    let err = model::load(&with_tensor(&m, "layers.9.weight", Some(Tensor::zeros(vec![2]).unwrap()))).unwrap_err();
    assert_eq!(err, Error::UnexpectedTensor("layers.9.weight".into()));

    let err = model::load(&with_tensor(&m, "out.weight", Some(Tensor::zeros(vec![2, 23]).unwrap()))).unwrap_err();
    assert_eq!(err, Error::TensorShape { name: "out.weight".into(), expected: vec![2, 24], found: vec![2, 23] });

    let mut nan = m.params["layers.0.bias"].clone();
    nan.data_mut()[5] = f32::NAN;
    let err = model::load(&with_tensor(&m, "layers.0.bias", Some(nan))).unwrap_err();
    assert_eq!(err, Error::NonFiniteWeight { name: "layers.0.bias".into(), index: 5 });

    let mut inf = m.params["out.bias"].clone();
    inf.data_mut()[1] = f32::NEG_INFINITY;
    assert!(matches!(model::load(&with_tensor(&m, "out.bias", Some(inf))), Err(Error::NonFiniteWeight { .. })));
}

#[test]
fn wrong_dtype_is_named() {
    let cfg = mlp_config(0);
    let header = format!(
        "{{\"out.bias\":{{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}},\"__metadata__\":{{\"pushforward\":{}}}}}",
        config_json_escaped(&cfg)
    );
    // Unexpected/missing checks come first for a partial file, so build a full file and swap one dtype.
    let (m, _) = valid_bytes();
    let bytes = model::save(&m).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let hdr = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let pos = hdr.find("\"out.bias\":{\"dtype\":\"F32\"").expect("writer puts dtype first");
    let swapped = hdr[..pos].to_string() + &hdr[pos..].replacen("F32", "I32", 1);
    let file = raw_safetensors(&swapped, &bytes[8 + n..]);
    assert_eq!(model::load(&file).unwrap_err(), Error::TensorDtype { name: "out.bias".into(), found: "I32".into() });
    assert!(model::load(&raw_safetensors(&header, &[0; 8])).is_err());
}

fn load_with_config_json(json: &str) -> Error {
    let (m, _) = valid_bytes();
    let bytes = model::save(&m).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let hdr: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut hdr = hdr.as_object().unwrap().clone();
    hdr.insert("__metadata__".into(), serde_json::json!({ "pushforward": json }));
    model::load(&raw_safetensors(&serde_json::to_string(&hdr).unwrap(), &bytes[8 + n..])).unwrap_err()
}

#[test]
fn absurd_or_missing_config_values_name_the_field() {
    let good: serde_json::Value = serde_json::from_str(&mlp_config(0).to_json()).unwrap();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("/arch/width", serde_json::json!(1_000_000_000u64), "arch.width"),
        ("/arch/depth", serde_json::json!(0), "arch.depth"),
        ("/arch/time_embed_dim", serde_json::json!(7), "arch.time_embed_dim"),
        ("/arch/time_scale", serde_json::json!(-1.0), "arch.time_scale"),
        ("/format_version", serde_json::json!(99), "format_version"),
        ("/num_classes", serde_json::json!(-3), "num_classes"),
        ("/data/range", serde_json::json!([[1.0, -1.0], [0.0, 1.0]]), "data.range"),
    ];
    for (ptr, value, field) in cases {
        let mut v = good.clone();
        *v.pointer_mut(ptr).unwrap() = value.clone();
        let err = load_with_config_json(&v.to_string());
        match &err {
            Error::Config { field: f, .. } => assert_eq!(f, field, "{ptr} = {value}: {err}"),
            other => panic!("{ptr} = {value}: expected a config error, got {other}"),
        }
    }
    assert!(matches!(load_with_config_json("{"), Error::Config { .. }));
    // A file with no metadata at all.
    let (m, _) = valid_bytes();
    let views: Vec<(String, safetensors::tensor::TensorView)> = Vec::new();
    let empty = safetensors::serialize(views, None).unwrap();
    assert!(matches!(model::load(&empty), Err(Error::Config { .. })));
    drop(m);
}

#[test]
fn unet_config_checks_groups_and_sides() {
    let mut cfg = unet_config();
    if let ArchConfig::Unet(u) = &mut cfg.arch {
        u.groups = 3;
    }
    assert!(matches!(cfg.validate(), Err(Error::Config { field, .. }) if field == "arch.groups"));
    let mut cfg = unet_config();
    cfg.data = DataConfig::Image { channels: 1, height: 10, width: 8, range: [-1.0, 1.0] };
    assert!(matches!(cfg.validate(), Err(Error::Config { .. })));
}

/// The MLP written out longhand with plain loops (independent of the Backend code path).
fn mlp_reference(m: &Model, x: &[f32], t: f32) -> Vec<f32> {
    let p = |n: &str| m.params[n].data().to_vec();
    let ArchConfig::Mlp(c) = &m.config.arch else { unreachable!() };
    let half = c.time_embed_dim / 2;
    let n = x.len() / 2;
    let mut out = Vec::new();
    for i in 0..n {
        let mut h: Vec<f64> = vec![x[2 * i] as f64, x[2 * i + 1] as f64];
        let mut e = vec![0.0; c.time_embed_dim];
        for k in 0..half {
            let a = (c.time_scale * t) as f64 * (-(10000f64).ln() * k as f64 / half as f64).exp();
            e[k] = a.cos();
            e[half + k] = a.sin();
        }
        h.extend(e);
        let layer = |h: &[f64], w: &[f32], b: &[f32], act: bool| -> Vec<f64> {
            let fan_in = h.len();
            (0..b.len())
                .map(|j| {
                    let z = b[j] as f64 + (0..fan_in).map(|q| w[j * fan_in + q] as f64 * h[q]).sum::<f64>();
                    if act { z / (1.0 + (-z).exp()) } else { z }
                })
                .collect()
        };
        for l in 0..c.depth {
            h = layer(&h, &p(&format!("layers.{l}.weight")), &p(&format!("layers.{l}.bias")), true);
        }
        out.extend(layer(&h, &p("out.weight"), &p("out.bias"), false).into_iter().map(|v| v as f32));
    }
    out
}

#[test]
fn mlp_forward_matches_longhand_reference() {
    let m = Model::random(mlp_config(0), 5).unwrap();
    let b = CpuBackend;
    let net = Network::new(&b, &m).unwrap();
    let xs: Vec<f32> = (0..14).map(|i| (i as f32 * 0.37).sin() * 2.0).collect();
    for t in [0.0, 0.25, 0.5, 0.999, 1.0] {
        let x = Tensor::new(vec![7, 2], xs.clone()).unwrap();
        let v = net.velocity(&b, &x, t, None).unwrap();
        let r = mlp_reference(&m, &xs, t);
        for (a, e) in v.data().iter().zip(&r) {
            assert!((a - e).abs() <= 1e-5 + 1e-4 * e.abs(), "t={t}: {a} vs {e}");
        }
    }
}

#[test]
fn conditional_models_check_labels() {
    let b = CpuBackend;
    let m = Model::random(unet_config(), 9).unwrap();
    let net = Network::new(&b, &m).unwrap();
    let x = Tensor::new(vec![2, 1, 12, 8], (0..192).map(|i| (i as f32 * 0.1).cos()).collect()).unwrap();
    let v = net.velocity(&b, &x, 0.3, Some(&[0, 3])).unwrap();
    assert_eq!(v.shape(), &[2, 1, 12, 8]);
    assert!(v.data().iter().all(|v| v.is_finite()));
    // Labels change the output; the same labels reproduce it exactly.
    let v2 = net.velocity(&b, &x, 0.3, Some(&[1, 3])).unwrap();
    assert_ne!(v.data()[..96], v2.data()[..96]);
    assert_eq!(v.data()[96..], v2.data()[96..]);
    assert!(matches!(net.velocity(&b, &x, 0.3, Some(&[0, 4])), Err(Error::InvalidOption { option: "label", .. })));
    assert!(matches!(net.velocity(&b, &x, 0.3, None), Err(Error::InvalidOption { .. })));
    assert!(matches!(net.velocity(&b, &x, 0.3, Some(&[0])), Err(Error::Shape { .. })));
    let wrong = Tensor::zeros(vec![2, 1, 8, 8]).unwrap();
    assert!(matches!(net.velocity(&b, &wrong, 0.3, Some(&[0, 1])), Err(Error::Shape { .. })));

    let mlp = Network::new(&b, &Model::random(mlp_config(0), 1).unwrap()).unwrap();
    assert!(matches!(
        mlp.velocity(&b, &Tensor::zeros(vec![3, 2]).unwrap(), 0.5, Some(&[0, 0, 0])),
        Err(Error::InvalidOption { .. })
    ));
}

/// A small valid file as (header JSON, data), to edit by hand.
fn small_file() -> (String, Vec<u8>) {
    let (_, bytes) = valid_bytes();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (String::from_utf8(bytes[8..8 + n].to_vec()).unwrap(), bytes[8 + n..].to_vec())
}

/// The `data_offsets` of tensor `name` in a header written by `model::save`.
fn offsets_of(header: &str, name: &str) -> (usize, usize, [usize; 2]) {
    let at = header.find(&format!("\"{name}\":")).unwrap();
    let start = at + header[at..].find("\"data_offsets\":[").unwrap() + "\"data_offsets\":[".len();
    let end = start + header[start..].find(']').unwrap();
    let v: Vec<usize> = header[start..end].split(',').map(|s| s.parse().unwrap()).collect();
    (start, end, [v[0], v[1]])
}

fn format_error(bytes: &[u8]) -> String {
    match model::load(bytes) {
        Err(Error::WeightsFormat(m)) => m,
        other => panic!("expected a weights-format error, got {other:?}"),
    }
}

#[test]
fn overlapping_gapped_and_reversed_offsets_are_rejected_and_named() {
    let (header, data) = small_file();
    // `out.bias` (8 bytes) moved onto the first bytes of another tensor: an overlap.
    let (s, e, [a, _]) = offsets_of(&header, "out.bias");
    let overlap = format!("{}0,8{}", &header[..s], &header[e..]);
    let msg = format_error(&raw_safetensors(&overlap, &data));
    assert!(msg.contains("overlaps") && msg.contains("must tile"), "{msg}");
    // The same tensor pushed 4 bytes later: a gap before it and data past the end.
    let gap = format!("{}{},{}{}", &header[..s], a + 4, a + 12, &header[e..]);
    let msg = format_error(&raw_safetensors(&gap, &[&data[..], &[0; 4]].concat()));
    assert!(msg.contains("gap") && msg.contains("out.bias"), "{msg}");
    // Reversed offsets.
    let rev = format!("{}{},{}{}", &header[..s], a + 8, a, &header[e..]);
    let msg = format_error(&raw_safetensors(&rev, &data));
    assert!(msg.contains("backwards") && msg.contains("out.bias"), "{msg}");
    // Offsets that disagree with the shape.
    let short = format!("{}{},{}{}", &header[..s], a, a + 4, &header[e..]);
    let msg = format_error(&raw_safetensors(&short, &data[..data.len() - 4]));
    assert!(msg.contains("needs 8 bytes") && msg.contains("out.bias"), "{msg}");
}

#[test]
fn out_of_order_offsets_that_tile_the_data_load() {
    // Two tensors' data swapped in the file, header order unchanged: valid safetensors.
    let (m, _) = valid_bytes();
    let (header, data) = small_file();
    let (s1, e1, [a1, b1]) = offsets_of(&header, "layers.0.bias");
    let (s2, e2, [a2, b2]) = offsets_of(&header, "layers.0.weight");
    assert_eq!(b1, a2, "the writer stores layers.0.bias just before layers.0.weight");
    let mut swapped = data[..a1].to_vec();
    swapped.extend_from_slice(&data[a2..b2]);
    swapped.extend_from_slice(&data[a1..b1]);
    swapped.extend_from_slice(&data[b2..]);
    let (n1, n2) = (b1 - a1, b2 - a2);
    let h =
        format!("{}{},{}{}{},{}{}", &header[..s1], a1 + n2, a1 + n2 + n1, &header[e1..s2], a1, a1 + n2, &header[e2..]);
    assert_eq!(model::load(&raw_safetensors(&h, &swapped)).unwrap(), m);
}

#[test]
fn duplicate_or_malformed_header_entries_are_rejected() {
    let (header, data) = small_file();
    let entry_start = header.find("\"out.bias\":").unwrap();
    let entry_end = entry_start + header[entry_start..].find('}').unwrap() + 1;
    let entry = &header[entry_start..entry_end];
    let cases: Vec<(String, &str)> = vec![
        // The same tensor twice.
        (format!("{},{}", &header[..entry_end], &header[entry_start..]), "`out.bias` is listed twice"),
        // Two __metadata__ objects.
        (header.replacen('{', "{\"__metadata__\":{},", 1), "duplicate"),
        // An unknown field in a tensor entry.
        (header.replacen(entry, &entry.replace("\"dtype\"", "\"align\":8,\"dtype\""), 1), "unknown field"),
        // A missing field.
        (header.replacen(entry, &entry.replace(",\"shape\":[2]", ""), 1), "missing field `shape`"),
        // More than MAX_RANK dimensions.
        (header.replacen(entry, &entry.replace("[2]", "[1,1,1,1,1,1,1,1,2]"), 1), "more than 8 dimensions"),
        // A negative or fractional offset.
        (header.replacen(entry, &entry.replace("data_offsets\":[", "data_offsets\":[-"), 1), "non-negative integer"),
        // Trailing garbage after the JSON object, leading whitespace.
        (format!("{header}x"), "after the JSON document"),
        (format!(" {header}"), "must start with '{'"),
        // A trailing comma.
        (format!("{},}}", header.trim_end().strip_suffix('}').unwrap()), "string key"),
    ];
    for (h, want) in cases {
        let msg = format_error(&raw_safetensors(&h, &data));
        assert!(msg.contains(want), "{want}: {msg}\n{h}");
    }
    // Not UTF-8.
    let mut bytes = raw_safetensors(&header, &data);
    bytes[20] = 0xff;
    assert!(format_error(&bytes).contains("not UTF-8"));
}

#[test]
fn nan_and_inf_in_f16_weights_are_rejected_like_f32() {
    // Rule: any non-finite weight (F32 or F16) rejects the file, naming the tensor and index.
    // `out.weight` [2, 24] is the last tensor in the file: store it as F16, all 1.0 but index 7.
    let (header, data) = small_file();
    let (s, e, [a, _]) = offsets_of(&header, "out.weight");
    let mut h = format!("{}{},{}{}", &header[..s], a, a + 96, &header[e..]);
    let dt = h.find("\"out.weight\":{\"dtype\":\"F32\"").unwrap();
    h.replace_range(dt..dt + 27, "\"out.weight\":{\"dtype\":\"F16\"");
    let mut d = data[..a].to_vec();
    for i in 0..48 {
        d.extend_from_slice(&(if i == 7 { 0x7c00u16 } else { 0x3c00 }).to_le_bytes()); // +inf, 1.0
    }
    assert_eq!(
        model::load(&raw_safetensors(&h, &d)).unwrap_err(),
        Error::NonFiniteWeight { name: "out.weight".into(), index: 7 }
    );
    d[a + 14..a + 16].copy_from_slice(&0x7e00u16.to_le_bytes()); // NaN
    assert!(matches!(model::load(&raw_safetensors(&h, &d)), Err(Error::NonFiniteWeight { index: 7, .. })));
}

#[test]
fn config_json_is_strict_and_errors_name_the_field() {
    let good = mlp_config(0).to_json();
    let cases: Vec<(String, &str, &str)> = vec![
        (good.replacen("\"width\":24", "\"width\":24,\"width\":24", 1), "arch.width", "duplicate"),
        (good.replacen("\"width\":24", "\"widht\":24", 1), "arch.widht", "unknown field"),
        (good.replacen("\"width\":24,", "", 1), "arch", "missing field `width`"),
        (good.replacen("\"width\":24", "\"width\":\"24\"", 1), "arch.width", "found a string"),
        (good.replacen("\"width\":24", "\"width\":24.0", 1), "arch.width", "non-negative integer"),
        (good.replacen("\"width\":24", "\"width\":99999999999999999999", 1), "arch.width", "64 bits"),
        (good.replacen("\"kind\":\"mlp\"", "\"kind\":\"transformer\"", 1), "arch", "unknown kind `transformer`"),
        (good.replacen("\"depth\":3", "\"depth\":3,\"groups\":2", 1), "arch", "does not belong to kind `mlp`"),
        (good.replacen("1000.0", "1e999", 1), "arch.time_scale", "out of the f64 range"),
        (good.replacen("1000.0", "NaN", 1), "arch.time_scale", "found an invalid character"),
        (good.replacen("[-3.0,3.0],[-3.0,3.0]", "[-3.0,3.0]", 1), "data.range", "expected 2 elements, found 1"),
        (good.replacen("[[-3.0,3.0],[-3.0,3.0]]", "[-3.0,3.0]", 1), "data.range[0]", "expected an array"),
        (good.replacen("[-3.0,3.0],[-3.0,3.0]", "[-3.0,3.0],[-3.0,3.0],[0.0,1.0]", 1), "data.range[2]", "expected 2"),
        (good.replacen("\"metrics\":{}", "\"metrics\":{\"a\":1,\"a\":2}", 1), "provenance.metrics.a", "duplicate"),
        (good.replacen("\"metrics\":{}", "\"metrics\":{},\"x\":[1,2,]", 1), "provenance.x[2]", "expected a value"),
        (
            good.replacen("\"metrics\":{}", &format!("\"metrics\":{{}},\"x\":{}{}", "[".repeat(70), "]".repeat(70)), 1),
            "provenance.x[0][0]*",
            "deeper than 64",
        ),
        (good.replacen("\"metrics\":{}", "\"metrics\":{},\"x\":\"\\ud800\"", 1), "provenance.x", "unpaired surrogate"),
        (format!("{good} {{}}"), "pushforward", "after the JSON document"),
    ];
    for (json, field, want) in cases {
        match ModelConfig::from_json(&json) {
            Err(Error::Config { field: f, reason }) => {
                // A trailing `*` matches any path that starts with the rest.
                let path_ok = field.strip_suffix('*').map_or(f == field, |prefix| f.starts_with(prefix));
                assert!(path_ok && reason.contains(want), "{want}: got `{f}`: {reason}\n{json}")
            }
            other => panic!("{want}: expected a config error, got {other:?}\n{json}"),
        }
    }
}

#[test]
fn config_json_round_trips_provenance_and_escapes() {
    let mut cfg = unet_config();
    cfg.provenance.dataset = Some("quote\" backslash\\ tab\t é 😀 \u{1}".into());
    cfg.provenance.seed = Some(u64::MAX);
    cfg.provenance.metrics.insert("sw2".into(), 0.021418173925090992);
    cfg.provenance.metrics.insert("tiny".into(), 1e-300);
    let text = cfg.to_json();
    assert_eq!(ModelConfig::from_json(&text).unwrap(), cfg);
    // Free-form fields keep their JSON text, and serde sees them as the values they spell.
    let with_extra = text.replacen(
        "\"metrics\":",
        "\"lr\":0.002,\"n\":-5,\"big\":18446744073709551616,\"tags\":[\"a\\u00e9\",null,true,{\"k\":1.5}],\"metrics\":",
        1,
    );
    let cfg2 = ModelConfig::from_json(&with_extra).unwrap();
    assert_eq!(cfg2.provenance.extra["tags"].as_str(), "[\"a\\u00e9\",null,true,{\"k\":1.5}]");
    assert_eq!(ModelConfig::from_json(&cfg2.to_json()).unwrap(), cfg2);
    // What `to_json` writes is JSON with the values the text spells (the browser's `info()`
    // hands it to `JSON.parse`).
    let v: serde_json::Value = serde_json::from_str(&cfg2.to_json()).unwrap();
    assert_eq!(v["provenance"]["lr"], serde_json::json!(0.002));
    assert_eq!(v["provenance"]["n"], serde_json::json!(-5));
    assert_eq!(v["provenance"]["big"], serde_json::json!(18446744073709551616.0));
    assert_eq!(v["provenance"]["tags"], serde_json::json!(["aé", null, true, {"k": 1.5}]));
    assert_eq!(v["provenance"]["seed"], serde_json::json!(u64::MAX));
    assert_eq!(v["provenance"]["dataset"], serde_json::json!(cfg.provenance.dataset));
    assert_eq!(v["arch"]["channel_mult"], serde_json::json!([1, 2, 2]));
}

/// `class_names` is optional, round-trips (escapes included), and must give one non-empty name
/// of at most 64 characters per class; a lying list is a config error naming the field.
#[test]
fn class_names_round_trip_and_are_checked() {
    let mut cfg = unet_config();
    assert!(!cfg.to_json().contains("class_names"), "absent when empty");
    cfg.class_names = vec!["Smileys & Emotion".into(), "quote\" é 😀".into(), "Flags".into()];
    let text = cfg.to_json();
    assert_eq!(ModelConfig::from_json(&text).unwrap(), cfg);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["class_names"], serde_json::json!(["Smileys & Emotion", "quote\" é 😀", "Flags"]));

    let good: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (names, why) in [
        (serde_json::json!(["a", "b"]), "2 names for 3 classes"),
        (serde_json::json!(["a", "b", "c", "d"]), "4 names for 3 classes"),
        (serde_json::json!(["a", "", "c"]), "a name is 1 to 64 characters"),
        (serde_json::json!(["a", "x".repeat(65), "c"]), "a name is 1 to 64 characters"),
    ] {
        let mut v = good.clone();
        v["class_names"] = names;
        match load_with_config_json(&v.to_string()) {
            Error::Config { field, reason } => {
                assert_eq!(field, "class_names");
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("expected a config error, got {other}"),
        }
    }
    let mut v = good.clone();
    v["class_names"] = serde_json::json!([1, 2, 3]);
    assert!(matches!(load_with_config_json(&v.to_string()), Error::Config { .. }));
}

/// Error text never echoes hostile input raw (#13 item 9): a tensor name with terminal escapes
/// and 100 000 characters, and a 1 MB number in the config, become short messages with the
/// control characters escaped.
#[test]
fn errors_escape_and_truncate_what_they_echo() {
    let (m, _) = valid_bytes();
    let hostile = format!("\u{1b}[2J\u{1b}]0;pwned\u{7}{}", "A".repeat(100_000));
    let err = model::load(&with_tensor(&m, &hostile, Some(Tensor::zeros(vec![2]).unwrap()))).unwrap_err();
    let text = err.to_string();
    println!("{} characters: {}", text.len(), &text[..text.len().min(200)]);
    assert!(matches!(err, Error::UnexpectedTensor(_)));
    assert!(text.len() < 400, "{} characters", text.len());
    assert!(!text.chars().any(char::is_control), "control characters reach the message");
    assert!(text.contains("\\u{1b}[2J"), "the escape is shown escaped: {text}");
    assert!(text.contains("more characters"));

    let huge = format!("{{\"format_version\":1,\"num_classes\":{}}}", "9".repeat(1_000_000));
    let text = load_with_config_json(&huge).to_string();
    assert!(text.len() < 1000, "a 1 MB number became a {}-character message", text.len());

    assert_eq!(pushforward::error::shown("tab\there\u{7}", 80), "tab here\\u{7}");
    assert_eq!(pushforward::error::shown("abcdef", 3), "abc… (3 more characters)");
}

/// The network's flop count (what the GPU benchmark's GFLOP/s divide by) agrees with the
/// browser benchmark's independent JavaScript count (`www/bench/nets.js` `flopsPerRow`, which
/// walks the U-Net's levels its own way) on the shipped moons MLP and mnist U-Net.
#[test]
fn flops_per_sample_match_the_browser_benchmarks_count() {
    for (path, js_flops) in [("models/moons.safetensors", 107_520.0), ("models/mnist.safetensors", 150_455_808.0)] {
        let model = Model::from_bytes(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(model.config.flops_per_sample(), Some(js_flops), "{path}");
    }
}
