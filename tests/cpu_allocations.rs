//! The CPU backend's ODE loop reuses its buffers across steps and calls (the tensor buffer
//! recycler in `tensor.rs`): after a warm-up call, sampling allocates no large buffer at all.
//! A counting global allocator records every allocation of ≥ 64 KiB.

use pushforward::cpu::CpuBackend;
use pushforward::model::Model;
use pushforward::ode::Solver;
use pushforward::sampler::{SampleOptions, Sampler};
use std::alloc::{GlobalAlloc, Layout, System};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static LARGE: AtomicUsize = AtomicUsize::new(0);
const LARGE_BYTES: usize = 64 << 10;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() >= LARGE_BYTES {
            LARGE.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new >= LARGE_BYTES {
            LARGE.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn a_warm_sampling_call_allocates_no_large_buffers() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/moons.safetensors");
    let model = Model::from_bytes(&std::fs::read(path).unwrap()).unwrap();
    let s = Sampler::new(CpuBackend, &model).unwrap();
    // 4096 points × 128 wide = 2 MiB per hidden activation: every op's output is "large".
    // 16,384 points run in 16 row blocks of 1,024 (`map_row_blocks`), whose stacked velocity
    // (128 KiB) is large too; so are the samples a call returns (the caller keeps them: the one
    // large allocation a warm call makes).
    for n in [4096, 16384] {
        warm_calls_allocate_nothing_large(&s, n);
    }
}

fn warm_calls_allocate_nothing_large(s: &Sampler<CpuBackend>, n: usize) {
    let o = SampleOptions { n, solver: Solver::Heun, steps: 8, seed: 1, ..Default::default() };
    let run = || {
        let before = LARGE.load(Ordering::Relaxed);
        let out = s.sample(&o, &mut |_| ControlFlow::Continue(())).unwrap();
        assert_eq!(out.stats.nfe, 16);
        drop(out);
        LARGE.load(Ordering::Relaxed) - before
    };
    let first = run();
    let (second, third) = (run(), run());
    println!("{n} points: large (≥ 64 KiB) allocations: first call {first}, second {second}, third {third}");
    let returned = usize::from(n * 2 * 4 >= LARGE_BYTES);
    assert!(first > 0, "the counter sees the first call's buffers");
    assert_eq!(second, returned, "a warm call allocated {second} large buffers");
    assert_eq!(third, returned);
}
