//! Model downloads: streamed with progress, capped in size, timed out, and cancelled by the
//! caller's `AbortSignal`. A link to a hostile page must not be able to fill the wasm memory or
//! hang `Sampler.create` forever.

use super::options::Callbacks;
use super::{get, object};
use crate::error::{Error, Result, shown};
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use wasm_bindgen_futures::JsFuture;

/// The default largest download: far above any velocity network that samples at interactive
/// speed in a browser, far below what would exhaust the 4 GiB wasm memory.
pub const DEFAULT_MAX_BYTES: f64 = 256.0 * 1024.0 * 1024.0;
/// The largest cap a caller may ask for (`maxDownloadBytes`).
pub const MAX_MAX_BYTES: f64 = 1024.0 * 1024.0 * 1024.0;
/// The default time a whole download may take (`downloadTimeoutMs`).
pub const DEFAULT_TIMEOUT_MS: f64 = 120_000.0;

/// How a download is bounded.
pub struct Limits {
    pub max_bytes: f64,
    pub timeout_ms: f64,
}

fn failed(url: &str, why: impl std::fmt::Display) -> Error {
    Error::Io(format!("could not fetch `{}`: {why}", shown(url, 120)))
}

/// The body of `url`, reporting `{ phase: 'download', loaded, total }` to `cb`.
pub async fn fetch_bytes(url: &str, cb: &Callbacks, limits: &Limits) -> Result<Vec<u8>> {
    if cb.aborted() {
        return Err(Error::Cancelled);
    }
    let global = js_sys::global();
    let func = |name: &str| get(&global, name).dyn_into::<js_sys::Function>().ok();
    let fetch = func("fetch").ok_or_else(|| failed(url, "fetch() is not available here"))?;
    // Our own controller: aborted by the caller's signal or by the timeout, whichever is first.
    let controller = func("AbortController")
        .and_then(|c| js_sys::Reflect::construct(&c, &js_sys::Array::new()).ok())
        .ok_or_else(|| failed(url, "AbortController is not available here"))?;
    let abort = get(&controller, "abort").dyn_into::<js_sys::Function>().map_err(|_| failed(url, "no abort()"))?;
    let timed_out = std::rc::Rc::new(std::cell::Cell::new(false));
    let on_timeout = {
        let (controller, abort, timed_out) = (controller.clone(), abort.clone(), timed_out.clone());
        Closure::<dyn FnMut()>::new(move || {
            timed_out.set(true);
            let _ = abort.call0(&controller);
        })
    };
    let timer = func("setTimeout")
        .and_then(|f| f.call2(&global, on_timeout.as_ref(), &JsValue::from(limits.timeout_ms)).ok())
        .unwrap_or(JsValue::UNDEFINED);
    let on_abort = {
        let (controller, abort) = (controller.clone(), abort.clone());
        Closure::<dyn FnMut()>::new(move || {
            let _ = abort.call0(&controller);
        })
    };
    if let Some(s) = &cb.signal {
        let _ = s.add_event_listener_with_callback("abort", on_abort.as_ref().unchecked_ref());
    }
    let result = download(url, cb, limits, &fetch, &get(&controller, "signal")).await;
    if let Some(clear) = func("clearTimeout") {
        let _ = clear.call1(&global, &timer);
    }
    if let Some(s) = &cb.signal {
        let _ = s.remove_event_listener_with_callback("abort", on_abort.as_ref().unchecked_ref());
    }
    match result {
        Err(_) if cb.aborted() => Err(Error::Cancelled),
        Err(_) if timed_out.get() => {
            Err(failed(url, format!("no complete answer within {} s (downloadTimeoutMs)", limits.timeout_ms / 1000.0)))
        }
        r => r,
    }
}

async fn download(
    url: &str,
    cb: &Callbacks,
    limits: &Limits,
    fetch: &js_sys::Function,
    signal: &JsValue,
) -> Result<Vec<u8>> {
    let init = object(&[("signal", signal.clone())]);
    let promise: js_sys::Promise = fetch
        .call2(&js_sys::global(), &url.into(), &init)
        .map_err(|e| failed(url, super::js_message(&e)))?
        .dyn_into()
        .map_err(|_| failed(url, "fetch() did not return a promise"))?;
    let resp: web_sys::Response = JsFuture::from(promise)
        .await
        .map_err(|e| failed(url, super::js_message(&e)))?
        .dyn_into()
        .map_err(|_| failed(url, "fetch() did not return a Response"))?;
    if !resp.ok() {
        return Err(failed(url, format!("HTTP {}", resp.status())));
    }
    let too_big =
        |n: f64| failed(url, format!("{n} bytes are over the {}-byte cap (maxDownloadBytes)", limits.max_bytes));
    let total = resp.headers().get("content-length").ok().flatten().and_then(|v| v.parse::<f64>().ok());
    if let Some(t) = total.filter(|&t| t > limits.max_bytes) {
        return Err(too_big(t));
    }
    let report = |loaded: f64| {
        let total = total.map_or(JsValue::NULL, JsValue::from);
        cb.report(&object(&[("phase", "download".into()), ("loaded", JsValue::from(loaded)), ("total", total)]));
    };
    let read_err = |e: JsValue| failed(url, format!("the download broke off ({})", super::js_message(&e)));
    // Stream the body so a progress bar can move and the cap holds without a content-length;
    // arrayBuffer() where streams are missing.
    let Some(body) = resp.body() else {
        let buf = JsFuture::from(resp.array_buffer().map_err(read_err)?).await.map_err(read_err)?;
        let arr = js_sys::Uint8Array::new(&buf);
        if arr.length() as f64 > limits.max_bytes {
            return Err(too_big(arr.length() as f64));
        }
        report(arr.length() as f64);
        return Ok(arr.to_vec());
    };
    let reader: web_sys::ReadableStreamDefaultReader =
        body.get_reader().dyn_into().map_err(|_| failed(url, "cannot read the body"))?;
    let mut bytes = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(read_err)?;
        if get(&chunk, "done").as_bool().unwrap_or(true) {
            break;
        }
        let value = js_sys::Uint8Array::new(&get(&chunk, "value"));
        let loaded = (bytes.len() + value.length() as usize) as f64;
        if loaded > limits.max_bytes {
            let _ = reader.cancel();
            return Err(too_big(loaded));
        }
        let at = bytes.len();
        bytes.try_reserve(value.length() as usize).map_err(|_| Error::OutOfMemory("downloading the model".into()))?;
        bytes.resize(at + value.length() as usize, 0);
        value.copy_to(&mut bytes[at..]);
        report(loaded);
    }
    Ok(bytes)
}
