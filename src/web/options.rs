//! JS values into the crate's one options contract (`crate::options`): a plain object becomes
//! [`Entries`]; callbacks and the abort signal are taken apart first, since they are not data.

use crate::options::{Entries, Value};
use wasm_bindgen::{JsCast, JsValue};

/// The parts of an options object that are not plain data.
#[derive(Default, Clone)]
pub struct Callbacks {
    pub on_progress: Option<js_sys::Function>,
    pub signal: Option<web_sys::AbortSignal>,
}

impl Callbacks {
    pub fn aborted(&self) -> bool {
        self.signal.as_ref().is_some_and(|s| s.aborted())
    }

    /// Calls `onProgress(event)`; an exception in the page's callback is not ours to handle.
    pub fn report(&self, event: &JsValue) {
        if let Some(f) = &self.on_progress {
            let _ = f.call1(&JsValue::NULL, event);
        }
    }
}

/// `opts` (undefined, null or a plain object) as entries, with `callbacks` (names that hold
/// functions or signals) taken out. Anything else is an error naming the call.
pub fn read(call: &str, opts: &JsValue, callbacks: &[&str]) -> Result<(Entries, Callbacks), crate::Error> {
    if opts.is_undefined() || opts.is_null() {
        return Ok((Entries::default(), Callbacks::default()));
    }
    let Some(obj) = opts.dyn_ref::<js_sys::Object>().filter(|_| opts.is_object() && !opts.is_function()) else {
        return Err(crate::Error::InvalidOption {
            option: "options",
            reason: format!("{call}() takes an options object"),
        });
    };
    let mut entries = Vec::new();
    let mut cb = Callbacks::default();
    for key in js_sys::Object::keys(obj).iter() {
        let Some(key) = key.as_string() else { continue };
        let v = js_sys::Reflect::get(obj, &JsValue::from_str(&key)).unwrap_or(JsValue::UNDEFINED);
        if v.is_undefined() {
            continue;
        }
        if callbacks.contains(&key.as_str()) {
            match key.as_str() {
                "onProgress" => match v.dyn_into::<js_sys::Function>() {
                    Ok(f) => cb.on_progress = Some(f),
                    Err(_) => return Err(bad("onProgress", "must be a function")),
                },
                "signal" => match v.dyn_into::<web_sys::AbortSignal>() {
                    Ok(s) => cb.signal = Some(s),
                    Err(_) => return Err(bad("signal", "must be an AbortSignal")),
                },
                _ => {}
            }
            continue;
        }
        entries.push((key, value(&v)));
    }
    Ok((Entries(entries), cb))
}

fn bad(option: &'static str, reason: &str) -> crate::Error {
    crate::Error::InvalidOption { option, reason: reason.into() }
}

/// One JS value as an option value.
pub fn value(v: &JsValue) -> Value {
    if v.is_null() {
        Value::Null
    } else if let Some(b) = v.as_bool() {
        Value::Bool(b)
    } else if let Some(x) = v.as_f64() {
        Value::Num(x)
    } else if let Some(s) = v.as_string() {
        Value::Str(s)
    } else if v.is_function() {
        Value::Other("function")
    } else {
        Value::Other("object")
    }
}

/// Entries back as a plain JS object (a request handed to the CPU workers).
pub fn to_object(e: &Entries) -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in &e.0 {
        let v = match v {
            Value::Null => JsValue::NULL,
            Value::Bool(b) => JsValue::from(*b),
            Value::Num(x) => JsValue::from(*x),
            Value::Str(s) => JsValue::from_str(s),
            Value::Other(_) => continue,
        };
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), &v);
    }
    o.into()
}
