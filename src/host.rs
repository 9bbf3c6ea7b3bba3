//! The host's event loop, where there is one: the browser's page thread (and workers) run
//! every callback, abort signal and frame on the thread that also runs a CPU solve; and the
//! one clock the crate times things with.

/// Lets the event loop run (abort signals, progress painting, input), at most every
/// [`YIELD_EVERY_MS`]: a posted message rather than `setTimeout`, which browsers clamp to 4 ms
/// once nested. A no-op natively.
pub async fn yield_to_event_loop() {
    #[cfg(target_arch = "wasm32")]
    wasm::yield_now().await;
}

/// Milliseconds on a monotonic clock (`performance.now()` in wasm).
#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> f64 {
    use wasm_bindgen::JsCast;
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).unwrap_or_default();
    match js_sys::Reflect::get(&perf, &"now".into()).map(|f| f.dyn_into::<js_sys::Function>()) {
        Ok(Ok(now)) => now.call0(&perf).ok().and_then(|v| v.as_f64()).unwrap_or(0.0),
        _ => js_sys::Date::now(),
    }
}

/// Milliseconds on a monotonic clock (since this function's first call).
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

/// How long a solve may hold the thread between two yields.
pub const YIELD_EVERY_MS: f64 = 8.0;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::YIELD_EVERY_MS;
    use std::cell::Cell;
    use wasm_bindgen::{JsCast, JsValue};

    thread_local! {
        static LAST_YIELD: Cell<f64> = const { Cell::new(0.0) };
    }

    pub async fn yield_now() {
        let now = super::now_ms();
        if now - LAST_YIELD.with(Cell::get) < YIELD_EVERY_MS {
            return;
        }
        let global = js_sys::global();
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            // A MessageChannel round trip is one macrotask with no clamp; without one (very old
            // hosts) resolve at once, which still lets microtasks run.
            let posted = js_sys::Reflect::get(&global, &"MessageChannel".into())
                .ok()
                .and_then(|c| c.dyn_into::<js_sys::Function>().ok())
                .and_then(|c| js_sys::Reflect::construct(&c, &js_sys::Array::new()).ok())
                .and_then(|ch| {
                    let get = |o: &JsValue, k: &str| js_sys::Reflect::get(o, &k.into()).ok();
                    let (p1, p2) = (get(&ch, "port1")?, get(&ch, "port2")?);
                    js_sys::Reflect::set(&p1, &"onmessage".into(), &resolve).ok()?;
                    let post = get(&p2, "postMessage")?.dyn_into::<js_sys::Function>().ok()?;
                    post.call1(&p2, &JsValue::NULL).ok()
                });
            if posted.is_none() {
                let _ = resolve.call0(&JsValue::NULL);
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
        LAST_YIELD.with(|c| c.set(super::now_ms()));
    }
}
