//! The JSON the weights format needs, and nothing more: a strict pull parser over a `&str`
//! (RFC 8259 grammar, duplicate keys rejected by the callers, nesting at most [`MAX_DEPTH`]
//! levels, no trailing commas, comments, `NaN` or lone surrogates) and a few writing helpers.
//!
//! It replaces serde_json + the `safetensors` crate in the loader (they were ~50 KB of the
//! browser bundle). The parser allocates nothing but decoded strings (each no longer than its
//! source text) and the path it reports in errors; callers decide what to keep, so a hostile
//! header cannot make the loader build a tree many times its size. Every error names where it
//! happened: the path of keys and indices (`arch.channel_mult[2]`) and the byte offset.

use std::borrow::Cow;
use std::fmt::Write;

/// Deepest nesting of objects and arrays accepted.
pub const MAX_DEPTH: usize = 64;

/// A parse or type error: `path` is where in the document (`""` at the top level), `msg` what.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonError {
    pub path: String,
    pub msg: String,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() { f.write_str(&self.msg) } else { write!(f, "`{}`: {}", self.path, self.msg) }
    }
}

pub type JResult<T> = Result<T, JsonError>;

enum Seg<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

/// A cursor over one JSON document.
pub struct Parser<'a> {
    src: &'a str,
    pos: usize,
    path: Vec<Seg<'a>>,
}

/// Where each of an object's known keys sits (see [`Parser::fields`]).
pub struct Fields<'k, const N: usize> {
    keys: [&'k str; N],
    at: [Option<usize>; N],
}

impl<'k, const N: usize> Fields<'k, N> {
    pub fn has(&self, key: &str) -> bool {
        self.keys.iter().zip(&self.at).any(|(k, at)| *k == key && at.is_some())
    }

    /// The keys present, in the order of `keys`.
    pub fn present(&self) -> impl Iterator<Item = &'k str> + '_ {
        self.keys.iter().zip(&self.at).filter(|(_, at)| at.is_some()).map(|(k, _)| *k)
    }
}

impl<'a> Parser<'a> {
    pub fn new(src: &'a str) -> Self {
        Parser { src, pos: 0, path: Vec::new() }
    }

    /// An error at the current path (keys over 64 characters shortened, so that the message stays
    /// small whatever the document holds).
    pub fn error(&self, msg: impl Into<String>) -> JsonError {
        let mut path = String::new();
        for seg in &self.path {
            match seg {
                Seg::Key(k) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    match k.char_indices().nth(64) {
                        Some((cut, _)) => {
                            path.push_str(&k[..cut]);
                            path.push('…');
                        }
                        None => path.push_str(k),
                    }
                }
                Seg::Index(i) => {
                    let _ = write!(path, "[{i}]");
                }
            }
        }
        JsonError { path, msg: msg.into() }
    }

    fn error_here(&self, msg: &str) -> JsonError {
        self.error(format!("{msg} at byte {}", self.pos))
    }

    fn ws(&mut self) {
        let b = self.src.as_bytes();
        while self.pos < b.len() && matches!(b[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.src.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8, what: &str) -> JResult<()> {
        if self.eat(c) { Ok(()) } else { Err(self.error_here(&format!("expected {what}"))) }
    }

    /// What the next value is, for "expected X, found Y" messages.
    fn found(&mut self) -> &'static str {
        match self.peek() {
            None => "the end of the document",
            Some(b'{') => "an object",
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b'-' | b'0'..=b'9') => "a number",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            Some(_) => "an invalid character",
        }
    }

    fn mismatch(&mut self, expected: &str) -> JsonError {
        let found = self.found();
        self.error_here(&format!("expected {expected}, found {found}"))
    }

    /// Only whitespace may follow the document.
    pub fn finish(mut self) -> JResult<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error_here("unexpected text after the JSON document")),
        }
    }

    fn enter(&mut self, seg: Seg<'a>) -> JResult<()> {
        if self.path.len() >= MAX_DEPTH {
            return Err(self.error_here(&format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.path.push(seg);
        Ok(())
    }

    /// Iterates an object's members: `each(parser, key)` must consume the value.
    pub fn object(&mut self, mut each: impl FnMut(&mut Self, &str) -> JResult<()>) -> JResult<()> {
        self.object_dyn(&mut each)
    }

    // The loops behind `object` and `array` take their callback as a trait object, so that
    // they are compiled once rather than once per caller (the config reader has dozens).
    fn object_dyn(&mut self, each: &mut dyn FnMut(&mut Self, &str) -> JResult<()>) -> JResult<()> {
        if self.peek() != Some(b'{') {
            return Err(self.mismatch("an object"));
        }
        self.pos += 1;
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.error_here("expected a string key"));
            }
            let key = self.string_raw()?;
            self.expect(b':', "':' after an object key")?;
            self.enter(Seg::Key(key))?;
            let Some(Seg::Key(key)) = self.path.last() else { unreachable!("just pushed") };
            let key = key.clone();
            each(self, &key)?;
            self.path.pop();
            if self.eat(b',') {
                continue;
            }
            return self.expect(b'}', "',' or '}' after an object member");
        }
    }

    /// Iterates an array's elements: `each(parser, index)` must consume the element.
    pub fn array(&mut self, mut each: impl FnMut(&mut Self, usize) -> JResult<()>) -> JResult<()> {
        self.array_dyn(&mut each)
    }

    fn array_dyn(&mut self, each: &mut dyn FnMut(&mut Self, usize) -> JResult<()>) -> JResult<()> {
        if self.peek() != Some(b'[') {
            return Err(self.mismatch("an array"));
        }
        self.pos += 1;
        if self.eat(b']') {
            return Ok(());
        }
        let mut i = 0;
        loop {
            self.enter(Seg::Index(i))?;
            each(self, i)?;
            self.path.pop();
            i += 1;
            if self.eat(b',') {
                continue;
            }
            return self.expect(b']', "',' or ']' after an array element");
        }
    }

    /// Reads an object whose keys must all be among `keys`, each at most once; the values are
    /// checked for syntax and skipped, to be read (in any order) with [`Parser::field`].
    pub fn fields<'k, const N: usize>(&mut self, keys: [&'k str; N]) -> JResult<Fields<'k, N>> {
        let mut f = Fields { keys, at: [None; N] };
        self.object(|p, key| {
            let Some(i) = keys.iter().position(|k| *k == key) else {
                return Err(p.error(format!("unknown field (expected one of {})", keys.join(", "))));
            };
            if f.at[i].is_some() {
                return Err(p.error("duplicate field"));
            }
            p.ws();
            f.at[i] = Some(p.pos);
            p.skip().map(drop)
        })?;
        Ok(f)
    }

    /// Reads field `key` of `f` with `read`, or `None` when the object lacks it.
    pub fn opt<T, const N: usize>(
        &mut self,
        f: &Fields<'_, N>,
        key: &'static str,
        read: impl FnOnce(&mut Self) -> JResult<T>,
    ) -> JResult<Option<T>> {
        let Some(saved) = self.seek(&f.keys, &f.at, key)? else { return Ok(None) };
        let v = read(self)?;
        self.path.pop();
        self.pos = saved;
        Ok(Some(v))
    }

    /// Moves to field `key` (entering it in the path) and returns the position to come back
    /// to, or `None` when the object lacks it. Not generic: `opt` has one copy per field type.
    fn seek(&mut self, keys: &[&str], at: &[Option<usize>], key: &'static str) -> JResult<Option<usize>> {
        let Some(at) = keys.iter().position(|k| *k == key).and_then(|i| at[i]) else { return Ok(None) };
        let saved = self.pos;
        self.pos = at;
        self.enter(Seg::Key(Cow::Borrowed(key)))?;
        Ok(Some(saved))
    }

    fn missing(&self, key: &str) -> JsonError {
        self.error(format!("missing field `{key}`"))
    }

    /// Reads field `key` of `f` with `read`; a missing field is an error.
    pub fn req<T, const N: usize>(
        &mut self,
        f: &Fields<'_, N>,
        key: &'static str,
        read: impl FnOnce(&mut Self) -> JResult<T>,
    ) -> JResult<T> {
        match self.opt(f, key, read)? {
            Some(v) => Ok(v),
            None => Err(self.missing(key)),
        }
    }

    /// A string value, unescaped.
    pub fn string(&mut self) -> JResult<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return Err(self.mismatch("a string"));
        }
        self.string_raw()
    }

    /// The string starting at `self.pos` (which is `"`), unescaped; borrowed when it has no escapes.
    fn string_raw(&mut self) -> JResult<Cow<'a, str>> {
        let b = self.src.as_bytes();
        let start = self.pos + 1;
        let mut i = start;
        let mut owned: Option<String> = None;
        let mut run = start; // start of the unescaped run not yet copied into `owned`
        loop {
            let Some(&c) = b.get(i) else {
                self.pos = i;
                return Err(self.error_here("unterminated string"));
            };
            match c {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(&self.src[start..i]),
                        Some(mut s) => {
                            s.push_str(&self.src[run..i]);
                            Cow::Owned(s)
                        }
                    });
                }
                b'\\' => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(&self.src[run..i]);
                    let esc = b.get(i + 1).copied();
                    i += 2;
                    let ch = match esc {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.hex4(i)?;
                            i += 4;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                // A high surrogate must be followed by an escaped low one.
                                let lo = if b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u') {
                                    self.hex4(i + 2)?
                                } else {
                                    0
                                };
                                if !(0xDC00..0xE000).contains(&lo) {
                                    self.pos = i;
                                    return Err(self.error_here("unpaired surrogate in a \\u escape"));
                                }
                                i += 6;
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            match char::from_u32(code) {
                                Some(ch) => ch,
                                None => {
                                    self.pos = i;
                                    return Err(self.error_here("unpaired surrogate in a \\u escape"));
                                }
                            }
                        }
                        _ => {
                            self.pos = i - 1;
                            return Err(self.error_here("invalid escape in a string"));
                        }
                    };
                    s.push(ch);
                    run = i;
                }
                0..=0x1f => {
                    self.pos = i;
                    return Err(self.error_here("unescaped control character in a string"));
                }
                _ => i += 1,
            }
        }
    }

    fn hex4(&mut self, i: usize) -> JResult<u32> {
        let digits = self.src.as_bytes().get(i..i + 4).filter(|d| d.iter().all(u8::is_ascii_hexdigit));
        match digits {
            // Four ASCII hex digits: valid UTF-8 and a valid radix-16 number.
            Some(d) => Ok(d.iter().fold(0, |acc, &c| acc * 16 + (c as char).to_digit(16).unwrap_or(0))),
            None => {
                self.pos = i;
                Err(self.error_here("expected four hex digits after \\u"))
            }
        }
    }

    /// The text of a number value, checked against the JSON number grammar.
    pub fn number(&mut self) -> JResult<&'a str> {
        let b = self.src.as_bytes();
        if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            return Err(self.mismatch("a number"));
        }
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - from
        };
        if b[i] == b'-' {
            i += 1;
        }
        let int_start = i;
        let n = digits(&mut i);
        let mut ok = n > 0 && !(n > 1 && b[int_start] == b'0');
        if ok && b.get(i) == Some(&b'.') {
            i += 1;
            ok = digits(&mut i) > 0;
        }
        if ok && matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            ok = digits(&mut i) > 0;
        }
        if !ok {
            self.pos = i;
            return Err(self.error_here("malformed number"));
        }
        self.pos = i;
        Ok(&self.src[start..i])
    }

    /// Reads a number and converts its text with `convert`; a conversion error is reported at
    /// the number's first byte.
    fn number_as<T>(&mut self, convert: impl FnOnce(&str) -> Result<T, String>) -> JResult<T> {
        self.ws();
        let start = self.pos;
        let text = self.number()?;
        convert(text).map_err(|msg| {
            self.pos = start;
            self.error_here(&msg)
        })
    }

    /// A non-negative integer (no fraction or exponent) that fits a u64.
    pub fn u64(&mut self) -> JResult<u64> {
        if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            return Err(self.mismatch("a non-negative integer"));
        }
        self.number_as(|text| {
            if !text.bytes().all(|c| c.is_ascii_digit()) {
                return Err(format!("expected a non-negative integer, found {text}"));
            }
            text.bytes()
                .try_fold(0u64, |acc, c| acc.checked_mul(10)?.checked_add(u64::from(c - b'0')))
                .ok_or_else(|| format!("{text} does not fit 64 bits"))
        })
    }

    /// A non-negative integer that fits this platform's `usize`.
    pub fn usize(&mut self) -> JResult<usize> {
        self.ws();
        let start = self.pos;
        let v = self.u64()?;
        usize::try_from(v).map_err(|_| {
            self.pos = start;
            self.error_here(&format!("{v} is too large"))
        })
    }

    /// A finite number as f64 (correctly rounded).
    pub fn f64(&mut self) -> JResult<f64> {
        self.number_as(|text| match parse_f64(text) {
            Some(v) if v.is_finite() => Ok(v),
            _ => Err(format!("{text} is out of the f64 range")),
        })
    }

    /// A number as f32: parsed as f64, then rounded (as serde_json does); may be infinite when
    /// the value is beyond f32's range — bounds checks come after parsing.
    pub fn f32(&mut self) -> JResult<f32> {
        self.f64().map(|v| v as f32)
    }

    pub fn bool(&mut self) -> JResult<bool> {
        if self.literal("true") {
            Ok(true)
        } else if self.literal("false") {
            Ok(false)
        } else {
            Err(self.mismatch("a boolean"))
        }
    }

    /// Consumes `null` if it is next.
    pub fn null(&mut self) -> bool {
        self.literal("null")
    }

    fn literal(&mut self, word: &str) -> bool {
        self.ws();
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// An array of exactly `N` elements, each read with `read`.
    pub fn array_of<const N: usize, T: Copy + Default>(
        &mut self,
        mut read: impl FnMut(&mut Self) -> JResult<T>,
    ) -> JResult<[T; N]> {
        let mut out = [T::default(); N];
        let mut n = 0;
        self.array(|p, i| {
            if i >= N {
                return Err(p.error(format!("expected {N} elements")));
            }
            out[i] = read(p)?;
            n = i + 1;
            Ok(())
        })?;
        if n != N {
            return Err(self.error(format!("expected {N} elements, found {n}")));
        }
        Ok(out)
    }

    /// An array of at most `max` non-negative integers; `what` names them in the error.
    pub fn usize_array(&mut self, max: usize, what: &str) -> JResult<Vec<usize>> {
        let mut v = Vec::new();
        self.array(|p, i| {
            if i >= max {
                return Err(p.error(format!("more than {max} {what}")));
            }
            v.push(p.usize()?);
            Ok(())
        })?;
        Ok(v)
    }

    /// Checks and keeps one value of any kind as text.
    pub fn raw(&mut self) -> JResult<Raw> {
        self.skip().map(|text| Raw(text.to_string()))
    }

    /// Checks and skips one value of any kind; returns its text.
    pub fn skip(&mut self) -> JResult<&'a str> {
        let start = match self.peek() {
            Some(_) => self.pos,
            None => return Err(self.mismatch("a value")),
        };
        match self.src.as_bytes()[start] {
            b'{' => self.object(|p, _| p.skip().map(drop))?,
            b'[' => self.array(|p, _| p.skip().map(drop))?,
            b'"' => {
                self.string_raw()?;
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
            }
            _ => {
                if !(self.literal("true") || self.literal("false") || self.null()) {
                    return Err(self.mismatch("a value"));
                }
            }
        }
        Ok(&self.src[start..self.pos])
    }
}

/// A checked JSON value kept as its text (free-form provenance fields), written back verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct Raw(String);

impl Raw {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Appends `v` as a JSON string.
pub fn write_str(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `v` as the shortest decimal that reads back as the same f64 (`null` when not finite,
/// as serde_json writes it).
pub fn write_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        #[cfg(not(target_arch = "wasm32"))]
        let _ = write!(out, "{v:?}");
        // JavaScript's shortest round-trip digits: no float formatting compiled in (`Num`).
        #[cfg(target_arch = "wasm32")]
        let _ = write!(out, "{}", crate::error::Num::f64(v));
    } else {
        out.push_str("null");
    }
}

/// The f64 nearest to a decimal number (`1.5`, `-2e-3`; the caller has checked the syntax):
/// natively `str::parse`, in the browser build JavaScript's `parseFloat` — also correctly
/// rounded — so that core's decimal-to-float code (~2.5 KB of the gzipped wasm) is not compiled
/// in.
pub fn parse_f64(text: &str) -> Option<f64> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        text.parse().ok()
    }
    #[cfg(target_arch = "wasm32")]
    {
        let v = js_sys::Number::parse_float(text);
        (!v.is_nan()).then_some(v)
    }
}

/// Appends `v` as the shortest decimal that reads back (through f64) as the same f32.
pub fn write_f32(out: &mut String, v: f32) {
    if v.is_finite() {
        #[cfg(not(target_arch = "wasm32"))]
        let _ = write!(out, "{v:?}");
        #[cfg(target_arch = "wasm32")]
        let _ = write!(out, "{}", crate::error::Num::f32(v));
    } else {
        out.push_str("null");
    }
}

/// Re-indents a valid JSON document (two spaces per level, `"key": value`), for people to read.
pub fn pretty(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().unwrap_or(c));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}
