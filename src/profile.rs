//! A per-kernel timer for the CPU backend, off unless a call asks for it (`sample({ profile:
//! true })` in the browser, where it says which kernels a solve spends its time in).
//!
//! Each `CpuBackend` operation opens a [`Span`]; while a profile is being recorded on this
//! thread, the span adds its wall time to its operation's row. Off, a span costs one
//! thread-local read. The clock (`host::now_ms`) is `performance.now()` in wasm (the page's and each worker's
//! own; 5 µs resolution when cross-origin isolated, 100 µs otherwise, so a row of many short
//! calls is a sum of coarse readings) and `Instant` natively. The recording is per thread: calls
//! in flight at once on one thread (the page's, without workers) share it, and it is stopped by
//! the profiled call that ends first.

use crate::host::now_ms;
use std::cell::RefCell;

/// One row of a profile: an operation, how many times it ran, and its summed wall time.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTime {
    pub name: String,
    pub calls: u64,
    pub ms: f64,
}

thread_local! {
    /// The rows being recorded on this thread, or None when no profile is on.
    static RECORDING: RefCell<Option<Vec<KernelTime>>> = const { RefCell::new(None) };
}

/// Starts recording on this thread (discarding a recording left unfinished).
pub fn start() {
    RECORDING.with(|r| *r.borrow_mut() = Some(Vec::new()));
}

/// Stops recording and returns the rows, slowest first (empty if none was started).
pub fn finish() -> Vec<KernelTime> {
    let mut rows = RECORDING.with(|r| r.borrow_mut().take()).unwrap_or_default();
    slowest_first(&mut rows);
    rows
}

/// Insertion sort: a profile has a few dozen rows, and this keeps `sort` out of the wasm.
fn slowest_first(rows: &mut [KernelTime]) {
    for i in 1..rows.len() {
        let mut j = i;
        while j > 0 && rows[j - 1].ms < rows[j].ms {
            rows.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Adds `rows` (e.g. a worker's) into `into`, by operation name, keeping it slowest first.
pub fn merge(into: &mut Vec<KernelTime>, rows: impl IntoIterator<Item = KernelTime>) {
    for r in rows {
        match into.iter_mut().find(|k| k.name == r.name) {
            Some(k) => {
                k.calls += r.calls;
                k.ms += r.ms;
            }
            None => into.push(r),
        }
    }
    slowest_first(into);
}

/// Times one operation from its creation to its drop, if a profile is being recorded.
pub struct Span {
    name: &'static str,
    start: Option<f64>,
}

impl Span {
    pub fn new(name: &'static str) -> Span {
        let on = RECORDING.with(|r| r.borrow().is_some());
        Span { name, start: on.then(now_ms) }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        let Some(start) = self.start else { return };
        let ms = now_ms() - start;
        RECORDING.with(|r| {
            if let Some(rows) = r.borrow_mut().as_mut() {
                match rows.iter_mut().find(|k| k.name == self.name) {
                    Some(k) => {
                        k.calls += 1;
                        k.ms += ms;
                    }
                    None => rows.push(KernelTime { name: self.name.into(), calls: 1, ms }),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(ms: f64) {
        let t = now_ms();
        while now_ms() - t < ms {}
    }

    #[test]
    fn spans_count_only_while_recording_and_rows_come_slowest_first() {
        drop(Span::new("before"));
        start();
        for _ in 0..3 {
            let _s = Span::new("fast");
            spin(0.2);
        }
        {
            let _s = Span::new("slow");
            spin(3.0);
        }
        let rows = finish();
        assert_eq!(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["slow", "fast"]);
        assert_eq!(rows[1].calls, 3);
        assert!(rows[0].ms >= 3.0 && rows[1].ms >= 0.6, "{rows:?}");
        // Nothing is recorded once finished.
        drop(Span::new("after"));
        assert!(finish().is_empty());
    }

    #[test]
    fn merge_adds_rows_by_name() {
        let row = |n: &str, c, ms| KernelTime { name: n.into(), calls: c, ms };
        let mut a = vec![row("linear", 2, 5.0)];
        merge(&mut a, [row("linear", 3, 1.5), row("silu", 1, 0.5), row("conv2d", 1, 9.0)]);
        assert_eq!(a, [row("conv2d", 1, 9.0), row("linear", 5, 6.5), row("silu", 1, 0.5)]);
    }
}
