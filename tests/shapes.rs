//! Op shapes are checked once (`pushforward::shapes`) for both backends: every bad shape is a
//! typed `Error::Shape` naming the op, with the same message on the CPU and the GPU, and every
//! good shape gives the same output shape on both.

mod gpu_common;

use pushforward::cpu::{Activation, CpuBackend};
use pushforward::{Backend, Error, Result, Tensor};

fn host(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>();
    Tensor::new(shape.to_vec(), gpu_common::rand_vec(n, n as u64 + 1)).unwrap()
}

/// One call of an op: what it is (for messages), the op a shape error must name (`None`: the
/// shapes fit), and what came back (the output's shape).
struct Case {
    what: String,
    bad: Option<&'static str>,
    got: Result<Vec<usize>>,
}

/// Every op on fitting and misfitting shapes, on backend `b`.
fn cases<B: Backend>(b: &B) -> Vec<Case> {
    let up = |shape: &[usize]| b.upload(&host(shape)).unwrap();
    let shape = |r: Result<B::Tensor>| r.map(|t| b.shape(&t).to_vec());
    let mut out = Vec::new();
    let mut case = |what: String, bad: Option<&'static str>, got: Result<Vec<usize>>| out.push(Case { what, bad, got });

    // linear: x [n, k] · w [m, k]ᵀ + b [m].
    for (x, w, bias, bad) in [
        (&[3, 4][..], &[5, 4][..], Some(&[5][..]), false),
        (&[3, 4], &[5, 4], None, false),
        (&[0, 4], &[5, 4], None, false),
        (&[3, 4], &[5, 3], None, true),
        (&[3, 4], &[5, 4], Some(&[4][..]), true),
        (&[3, 4], &[5, 4], Some(&[5, 1][..]), true),
        (&[3, 4, 1], &[5, 4], None, true),
        (&[3, 4], &[4], None, true),
    ] {
        let bt = bias.map(up);
        let got = shape(b.linear(&up(x), &up(w), bt.as_ref(), Activation::Silu));
        case(format!("linear x {x:?} w {w:?} b {bias:?}"), bad.then_some("linear"), got);
    }

    // conv2d: x [n, c_in, h, w], w [c_out, c_in, kh, kw], b [c_out], stride, pad.
    let huge = usize::MAX / 2 + 1;
    for (x, w, bias, stride, pad, bad) in [
        (&[2, 3, 5, 6][..], &[4, 3, 3, 3][..], Some(&[4][..]), 1, 1, false),
        (&[2, 3, 5, 6], &[4, 3, 3, 3], None, 2, 0, false),
        (&[1, 1, 1, 1], &[1, 1, 3, 3], None, 1, 1, false),
        (&[2, 3, 5, 6], &[4, 2, 3, 3], None, 1, 1, true),
        (&[2, 3, 5, 6], &[4, 3, 3, 3], None, 0, 1, true),
        (&[2, 3, 2, 6], &[4, 3, 5, 3], None, 1, 1, true),
        (&[2, 3, 6, 2], &[4, 3, 3, 5], None, 1, 1, true),
        (&[2, 3, 5, 6], &[4, 3, 3, 3], Some(&[3][..]), 1, 1, true),
        (&[3, 5, 6], &[4, 3, 3, 3], None, 1, 1, true),
        (&[2, 3, 5, 6], &[4, 3, 3], None, 1, 1, true),
        (&[2, 3, 5, 6], &[4, 3, 3, 3], None, 1, huge, true),
    ] {
        let bt = bias.map(up);
        let got = shape(b.conv2d(&up(x), &up(w), bt.as_ref(), stride, pad));
        let what = format!("conv2d x {x:?} w {w:?} b {bias:?} stride {stride} pad {pad}");
        case(what, bad.then_some("conv2d"), got);
    }

    // group_norm: groups dividing c; gamma and beta [c].
    for (x, groups, gamma, beta, bad) in [
        (&[2, 4, 3, 3][..], 2, &[4][..], &[4][..], false),
        (&[2, 4, 3, 3], 0, &[4], &[4], true),
        (&[2, 4, 3, 3], 3, &[4], &[4], true),
        (&[2, 4, 3, 3], 2, &[3], &[4], true),
        (&[2, 4, 3, 3], 2, &[4], &[4, 1], true),
        (&[2, 4, 9], 2, &[4], &[4], true),
    ] {
        let got = shape(b.group_norm(&up(x), groups, &up(gamma), &up(beta), 1e-5, Activation::None));
        case(
            format!("group_norm x {x:?} groups {groups} gamma {gamma:?} beta {beta:?}"),
            bad.then_some("group_norm"),
            got,
        );
    }

    // Same-shape binary ops.
    for (a, c, bad) in [(&[3, 4][..], &[3, 4][..], false), (&[3, 4], &[4, 3], true), (&[3, 4], &[3, 4, 1], true)] {
        case(format!("add {a:?} {c:?}"), bad.then_some("add"), shape(b.add(&up(a), &up(c))));
        let got = shape(b.silu_tangent(&up(a), &up(c)));
        case(format!("silu_tangent {a:?} {c:?}"), bad.then_some("silu_tangent"), got);
        let got = pollster::block_on(b.scaled_rms_error(&up(a), &up(a), &up(c), 1e-3, 1e-3)).map(|_| a.to_vec());
        case(format!("scaled_rms_error x_new {c:?}"), bad.then_some("scaled_rms_error"), got);
        let got = pollster::block_on(b.scaled_rms_error(&up(a), &up(c), &up(a), 1e-3, 1e-3)).map(|_| a.to_vec());
        case(format!("scaled_rms_error x_old {c:?}"), bad.then_some("scaled_rms_error"), got);
    }

    // add_channel_bias: x [n, c, h, w] + bias [n, c].
    for (x, bias, bad) in [
        (&[2, 3, 4, 4][..], &[2, 3][..], false),
        (&[2, 3, 4, 4], &[2, 4], true),
        (&[2, 3, 4, 4], &[3], true),
        (&[2, 3, 16], &[2, 3], true),
    ] {
        let got = shape(b.add_channel_bias(&up(x), &up(bias)));
        case(format!("add_channel_bias x {x:?} bias {bias:?}"), bad.then_some("add_channel_bias"), got);
    }

    // upsample_nearest2x: NCHW only, doubling must not overflow.
    for (x, bad) in [(&[2, 3, 4, 5][..], false), (&[2, 3, 4][..], true), (&[1, 1, usize::MAX, 0][..], true)] {
        let got = shape(b.upsample_nearest2x(&up(x)));
        case(format!("upsample_nearest2x {x:?}"), bad.then_some("upsample_nearest2x"), got);
    }

    // concat_axis1: [n, ca, …] ++ [n, cb, …].
    for (a, c, bad) in [
        (&[2, 3, 4, 4][..], &[2, 5, 4, 4][..], false),
        (&[2, 3][..], &[2, 5][..], false),
        (&[6][..], &[6][..], true),
        (&[2, 3, 4, 4], &[3, 3, 4, 4], true),
        (&[2, 3, 4, 4], &[2, 3, 4, 5], true),
        (&[2, 3, 4, 4], &[2, 3, 16], true),
        (&[1, usize::MAX, 0], &[1, 1, 0], true),
    ] {
        let got = shape(b.concat_axis1(&up(a), &up(c)));
        case(format!("concat_axis1 {a:?} {c:?}"), bad.then_some("concat_axis1"), got);
    }

    // time_embedding: even dims only.
    for (n, dim, bad) in [(3, 8, false), (0, 8, false), (3, 7, true)] {
        let got = shape(b.time_embedding(0.3, n, dim, 1000.0));
        case(format!("time_embedding n {n} dim {dim}"), bad.then_some("time_embedding"), got);
    }

    // embedding: table [vocab, d], every id < vocab (also when d is 0 or there are no rows).
    for (table, ids, bad) in [
        (&[4, 3][..], &[0u32, 3, 1][..], false),
        (&[4, 3], &[], false),
        (&[4, 3], &[0, 4], true),
        (&[4, 0], &[7], true),
        (&[12], &[0], true),
    ] {
        let got = shape(b.embedding(&up(table), ids));
        case(format!("embedding table {table:?} ids {ids:?}"), bad.then_some("embedding"), got);
    }

    // lincomb: every term of x's shape (more terms than one GPU dispatch takes, too).
    let x = up(&[3, 4]);
    let (same, other) = (up(&[3, 4]), up(&[4, 3]));
    for (i, bad) in [(None, false), (Some(0), true), (Some(7), true)] {
        let terms: Vec<(f32, &B::Tensor)> = (0..8).map(|j| (0.5, if Some(j) == i { &other } else { &same })).collect();
        case(format!("lincomb bad term {i:?}"), bad.then_some("lincomb"), shape(b.lincomb(&x, &terms)));
    }

    // slice_rows: a row range inside axis 0.
    #[allow(clippy::reversed_empty_ranges)]
    for (x, rows, bad) in [
        (&[5, 2][..], 1..3, false),
        (&[5, 2], 5..5, false),
        (&[5, 2], 4..6, true),
        (&[5, 2], 3..1, true),
        (&[][..], 0..0, true),
    ] {
        let got = shape(b.slice_rows(&up(x), rows.clone()));
        case(format!("slice_rows {x:?} rows {rows:?}"), bad.then_some("slice_rows"), got);
    }

    // repeat2 and guidance_mix: axis 0 doubled and halved.
    for (x, bad) in [(&[3, 2][..], false), (&[][..], true), (&[usize::MAX, 0][..], true)] {
        case(format!("repeat2 {x:?}"), bad.then_some("repeat2"), shape(b.repeat2(&up(x))));
    }
    for (v, bad) in [(&[4, 2][..], false), (&[3, 2][..], true), (&[][..], true)] {
        let got = shape(b.guidance_mix(&up(v), 2.0));
        case(format!("guidance_mix {v:?}"), bad.then_some("guidance_mix"), got);
    }
    out
}

/// Each case is what it claims: fitting shapes succeed, misfitting ones are `Error::Shape`
/// naming the op.
fn check(backend: &str, cases: &[Case]) {
    for c in cases {
        match (&c.got, c.bad) {
            (Ok(_), None) => {}
            (Err(Error::Shape { op, .. }), Some(want)) if *op == want => {}
            (got, want) => panic!(
                "{backend}: {}: got {got:?}, expected {}",
                c.what,
                match want {
                    Some(op) => format!("Error::Shape {{ op: {op:?}, .. }}"),
                    None => "Ok".into(),
                }
            ),
        }
    }
}

#[test]
fn cpu_shape_errors_are_typed_and_name_the_op() {
    let cpu = cases(&CpuBackend);
    check("cpu", &cpu);
    assert!(cpu.iter().filter(|c| c.bad.is_some()).count() >= 40);
}

/// The GPU gives exactly the CPU's results: the same output shapes, the same errors (op and
/// message), and no validation error on the device.
#[test]
fn gpu_shape_errors_are_the_cpus() {
    let Some(g) = gpu_common::gpu() else { return };
    let gpu = cases(g);
    check("gpu", &gpu);
    let cpu = cases(&CpuBackend);
    assert_eq!(gpu.len(), cpu.len());
    for (g, c) in gpu.iter().zip(&cpu) {
        assert_eq!(g.what, c.what);
        assert_eq!(g.got, c.got, "{}: the GPU and CPU backends differ", g.what);
    }
    g.context().check().unwrap();
}
