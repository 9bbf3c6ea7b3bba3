//! Model downloads: streamed with progress, capped in size, timed out, cancelled by the
//! caller's `AbortSignal`, and kept for the next load (`src/model_cache.js`). A link to a
//! hostile page must not be able to fill the wasm memory or hang `Sampler.create` forever.

use super::options::Callbacks;
use super::{get, object};
use crate::error::{Error, Result, num, shown};
use wasm_bindgen::prelude::wasm_bindgen;
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

#[wasm_bindgen(module = "/src/model_cache.js")]
extern "C" {
    /// The kept copy of a model: `{ bytes, etag, source: 'cache' | 'memory' }` or null.
    #[wasm_bindgen(js_name = cachedModel)]
    async fn cached_model(url: &str) -> JsValue;
    /// Keeps a model's bytes: resolves with `{ stored: 'cache' | 'memory' | 'none', note }`
    /// (never rejects). A plain call, not an `async fn`: the write starts at once.
    #[wasm_bindgen(js_name = storeModel)]
    fn store_model(url: &str, bytes: js_sys::Uint8Array, etag: &str) -> js_sys::Promise;
    /// Drops the kept copies of a model (or of every model).
    #[wasm_bindgen(js_name = forgetModels)]
    pub async fn forget_models(url: Option<String>);
}

/// How `Sampler.create`'s `cache` option treats a model fetched by URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// A kept copy is used without a request (the default); a download is kept.
    Use,
    /// A kept copy is used if the server answers a conditional request (its ETag) with 304.
    Revalidate,
    /// Neither read nor written.
    Off,
}

/// Where a model's bytes came from and where they are kept, for `info()`.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// `network`, `cache` (the Cache API), `memory` (this page) or `bytes` (given by the caller).
    pub source: &'static str,
    /// `cache`, `memory`, `none` or `off`.
    pub kept: &'static str,
    pub note: String,
}

/// Where a model's bytes are kept: known at once, or once the write of a download into the
/// Cache API settles. That write (20–110 ms in a fresh profile) runs while `Sampler.create`
/// parses the model and opens its engine, instead of before.
pub enum Kept {
    Known(Provenance),
    Storing(js_sys::Promise),
}

impl Kept {
    pub async fn provenance(self) -> Provenance {
        match self {
            Kept::Known(p) => p,
            Kept::Storing(write) => {
                let r = JsFuture::from(write).await.unwrap_or(JsValue::NULL);
                let kept = match get(&r, "stored").as_string().as_deref() {
                    Some("cache") => "cache",
                    Some("memory") => "memory",
                    _ => "none",
                };
                Provenance { source: "network", kept, note: get(&r, "note").as_string().unwrap_or_default() }
            }
        }
    }
}

/// The bytes of the model at `url`, from the kept copy or the network (`fetch_bytes`), kept
/// for the next load as `mode` says.
pub async fn fetch_model(url: &str, cb: &Callbacks, limits: &Limits, mode: CacheMode) -> Result<(Vec<u8>, Kept)> {
    if mode == CacheMode::Off {
        let (bytes, _) = fetch_bytes(url, cb, limits, None).await?.unwrap_or_default();
        let note = "not kept (cache: false)".into();
        return Ok((bytes, Kept::Known(Provenance { source: "network", kept: "off", note })));
    }
    let kept = cached_model(url).await;
    let kept = (!kept.is_null() && !kept.is_undefined()).then(|| {
        let bytes = js_sys::Uint8Array::new(&get(&kept, "bytes"));
        let source = if get(&kept, "source").as_string().as_deref() == Some("memory") { "memory" } else { "cache" };
        (bytes, get(&kept, "etag").as_string().unwrap_or_default(), source)
    });
    let from_kept = |(bytes, _, source): &(js_sys::Uint8Array, String, &'static str), how: &str| {
        let n = bytes.length() as f64;
        cb.report(&object(&[
            ("phase", "download".into()),
            ("loaded", n.into()),
            ("total", n.into()),
            ("cached", true.into()),
        ]));
        let kept = if *source == "memory" { "memory" } else { "cache" };
        (bytes.to_vec(), Kept::Known(Provenance { source, kept, note: format!("loaded from {how}") }))
    };
    if let Some(k) = &kept
        && (k.0.length() as f64) <= limits.max_bytes
    {
        match mode {
            CacheMode::Use => {
                let how = if k.2 == "memory" { "this page's memory" } else { "the browser's Cache API" };
                return Ok(from_kept(k, how));
            }
            CacheMode::Revalidate if !k.1.is_empty() => match fetch_bytes(url, cb, limits, Some(&k.1)).await? {
                None => return Ok(from_kept(k, "the kept copy (the server answered 304 Not Modified)")),
                Some((bytes, etag)) => {
                    let kept = keep(url, &bytes, &etag);
                    return Ok((bytes, kept));
                }
            },
            _ => {}
        }
    }
    let (bytes, etag) = fetch_bytes(url, cb, limits, None).await?.unwrap_or_default();
    let kept = keep(url, &bytes, &etag);
    Ok((bytes, kept))
}

/// Starts keeping a download for the next load.
fn keep(url: &str, bytes: &[u8], etag: &str) -> Kept {
    Kept::Storing(store_model(url, js_sys::Uint8Array::from(bytes), etag))
}

/// The body of `url` and its ETag, reporting `{ phase: 'download', loaded, total }` to `cb`;
/// `None` when `if_none_match` (an ETag) was sent and the server answered 304.
pub async fn fetch_bytes(
    url: &str,
    cb: &Callbacks,
    limits: &Limits,
    if_none_match: Option<&str>,
) -> Result<Option<(Vec<u8>, String)>> {
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
    let result = download(url, cb, limits, &fetch, &get(&controller, "signal"), if_none_match).await;
    if let Some(clear) = func("clearTimeout") {
        let _ = clear.call1(&global, &timer);
    }
    if let Some(s) = &cb.signal {
        let _ = s.remove_event_listener_with_callback("abort", on_abort.as_ref().unchecked_ref());
    }
    match result {
        Err(_) if cb.aborted() => Err(Error::Cancelled),
        Err(_) if timed_out.get() => Err(failed(
            url,
            format!("no complete answer within {} s (downloadTimeoutMs)", num(limits.timeout_ms / 1000.0)),
        )),
        r => r,
    }
}

async fn download(
    url: &str,
    cb: &Callbacks,
    limits: &Limits,
    fetch: &js_sys::Function,
    signal: &JsValue,
    if_none_match: Option<&str>,
) -> Result<Option<(Vec<u8>, String)>> {
    let init = match if_none_match {
        Some(etag) => object(&[("signal", signal.clone()), ("headers", object(&[("if-none-match", etag.into())]))]),
        None => object(&[("signal", signal.clone())]),
    };
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
    if if_none_match.is_some() && resp.status() == 304 {
        return Ok(None);
    }
    if !resp.ok() {
        return Err(failed(url, format!("HTTP {}", resp.status())));
    }
    let etag = resp.headers().get("etag").ok().flatten().unwrap_or_default();
    let too_big = |n: f64| {
        failed(url, format!("{} bytes are over the {}-byte cap (maxDownloadBytes)", num(n), num(limits.max_bytes)))
    };
    let total = resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .filter(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|v| crate::model::json::parse_f64(&v));
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
        return Ok(Some((arr.to_vec(), etag)));
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
    Ok(Some((bytes, etag)))
}
