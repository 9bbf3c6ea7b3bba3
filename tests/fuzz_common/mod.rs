//! What the fuzzers (`tests/fuzz_loader.rs`, `tests/fuzz_onnx.rs`) share: an allocator that
//! measures what one call allocates, the measured call with its panics caught, the allocation
//! bound, the seeded case generator, the case count with its CI minimum, and failure reports.
//! Each fuzzer installs the allocator: `#[global_allocator] static A: Counting = Counting;`.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

/// Sums every allocation (and every realloc's new size) made by this thread while measuring,
/// and records the largest single one.
pub struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the allocator can run while thread-locals are being torn down.
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let _ = TOTAL.try_with(|t| t.set(t.get() + size));
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// What a measured call returned and allocated.
pub struct Measured<T> {
    pub result: T,
    pub total: usize,
    pub largest: usize,
}

/// `f()` and what it allocated on this thread. A panic is caught (and reported by the caller,
/// not printed by the panic hook).
pub fn measured<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<Measured<T>, String> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !MEASURING.with(Cell::get) {
                default(info);
            }
        }));
    });
    std::panic::catch_unwind(|| {
        TOTAL.with(|t| t.set(0));
        LARGEST.with(|l| l.set(0));
        MEASURING.with(|m| m.set(true));
        let result = f();
        MEASURING.with(|m| m.set(false));
        Measured { result, total: TOTAL.with(Cell::get), largest: LARGEST.with(Cell::get) }
    })
    .map_err(|p| {
        MEASURING.with(|m| m.set(false));
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        format!("panicked: {}", msg.unwrap_or_default())
    })
}

/// The most a reader may allocate for an input of `len` bytes.
pub fn alloc_bound(len: usize) -> usize {
    4 * len + 64 * 1024
}

/// SplitMix64 (`rng::SplitMix64`), seeded per case so any case can be rerun alone.
pub struct Rng(pub pushforward::rng::SplitMix64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// The format-blind edits both fuzzers make, `kind` 0–3: flip a bit, write one of the format's
/// `interesting` bytes (kinds 0 and 1 need a non-empty input), truncate, or splice in up to 64
/// bytes of another seed. `pos` picks an offset, biased by each fuzzer to where its parsing is.
pub fn byte_edit(
    rng: &mut Rng,
    b: &mut Vec<u8>,
    kind: usize,
    pos: &dyn Fn(&mut Rng, usize) -> usize,
    interesting: &[u8],
    seeds: &[(String, Vec<u8>)],
) {
    match kind {
        0 => {
            let i = pos(rng, b.len()).min(b.len() - 1);
            b[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = pos(rng, b.len()).min(b.len() - 1);
            b[i] = *rng.pick(interesting);
        }
        2 => {
            let cut = if rng.below(2) == 0 { rng.below(b.len() + 1) } else { pos(rng, b.len()) };
            b.truncate(cut);
        }
        _ => {
            let (_, other) = rng.pick(seeds);
            let (a, o) = (pos(rng, b.len()).min(b.len()), rng.below(other.len()));
            let n = rng.below(64).min(other.len() - o);
            let m = rng.below(64).min(b.len() - a);
            b.splice(a..a + m, other[o..o + n].iter().copied());
        }
    }
}

/// Mutated cases per run when `PUSHFORWARD_FUZZ_CASES` is unset: the least CI runs
/// (`scripts/test.sh` reads this line and refuses less under CI too).
pub const DEFAULT_CASES: u64 = 20_000;

/// A whole-number environment variable, `default` when unset; anything else that does not parse
/// fails the test (a typo must not silently run the default, or zero, cases).
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => default,
        Ok(v) => v.trim().parse().unwrap_or_else(|e| panic!("{name}={v:?} is not a whole number: {e}")),
        Err(e) => panic!("{name}: {e}"),
    }
}

/// The case numbers of this run: `PUSHFORWARD_FUZZ_CASES` of them from `PUSHFORWARD_FUZZ_SEED`
/// (for runs that explore new cases). Under CI at least the default: a shortened run passing
/// there would claim coverage it did not have.
pub fn case_range() -> std::ops::Range<u64> {
    let cases = env_u64("PUSHFORWARD_FUZZ_CASES", DEFAULT_CASES);
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"));
    assert!(
        !ci || cases >= DEFAULT_CASES,
        "PUSHFORWARD_FUZZ_CASES={cases} is below the default {DEFAULT_CASES}, refused under CI"
    );
    let offset = env_u64("PUSHFORWARD_FUZZ_SEED", 0);
    offset..offset + cases
}

/// A failing input and what was wrong.
pub struct Failure {
    pub case: String,
    pub what: String,
    pub input: Vec<u8>,
}

/// Writes the first failing inputs to `dir` as `CASE.ext` and fails the test listing them.
pub fn report(failures: &[Failure], dir: &Path, ext: &str) {
    if failures.is_empty() {
        return;
    }
    std::fs::create_dir_all(dir).unwrap();
    let mut msg = format!("{} failing inputs (written to {}):\n", failures.len(), dir.display());
    for f in failures.iter().take(20) {
        let path = dir.join(format!("{}.{ext}", f.case));
        std::fs::write(&path, &f.input).unwrap();
        msg += &format!("  {}: {}\n", path.display(), f.what);
    }
    panic!("{msg}");
}
