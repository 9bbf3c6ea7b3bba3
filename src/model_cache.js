// Models that load once (issue #15): the bytes of a model fetched by URL are kept in the
// browser's Cache API under the URL, with their size, ETag and SHA-256; the next visit reads
// them from there without a request (`cache: 'use'`, the default), or after a conditional
// request the server answers 304 (`cache: 'revalidate'`). A copy whose size or hash does not
// match is dropped and fetched again. Where storage is refused (no Cache API outside secure
// contexts, a blocked or full quota) the bytes are kept in this page's memory instead — a later
// `Sampler.create` of the same URL on this page still needs no request — and the sampler's
// `info()` says which and why. Called from src/web/mod.rs (a wasm-bindgen snippet).

const CACHE_NAME = 'pushforward-models-v1';
/** This page's copies when the Cache API cannot hold them: URL → { bytes, etag }, oldest first. */
const memory = new Map();
const MEMORY_MAX_BYTES = 256 * 1024 * 1024;

async function sha256(bytes) {
  if (!globalThis.crypto?.subtle) return null;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

const describe = (e) => `${e?.name || 'Error'}: ${e?.message || e}`;

/** The Cache API, or null. Reading `caches` itself throws in an opaque origin (a sandboxed frame). */
function cacheStorage() {
  try {
    return globalThis.caches ?? null;
  } catch {
    return null;
  }
}

/**
 * Whether this origin keeps any model, asked once when the bindings are imported on a page: the
 * Cache API's first answer in a fresh profile takes 30–90 ms (its storage opens), which then
 * overlaps the wasm's download and compile instead of delaying the model's request. The first
 * `cachedModel` uses it (and nothing is created for a visitor who has nothing kept); later
 * ones ask again. Not in workers: they never load by URL.
 */
let anyKept = globalThis.document ? askAnyKept() : null;
function askAnyKept() {
  try {
    return cacheStorage()?.has(CACHE_NAME).catch(() => true) ?? null;
  } catch {
    return null;
  }
}

/** The kept copy of `url`: `{ bytes, etag, source: 'cache' | 'memory' }`, or null. */
export async function cachedModel(url) {
  const m = memory.get(url);   // (every path below resolves: a rejection would reach wasm as a trap)
  if (m) return { bytes: m.bytes, etag: m.etag, source: 'memory' };
  const storage = cacheStorage();
  if (!storage) return null;
  const early = anyKept;
  anyKept = null;
  if (early && !(await early)) return null;
  try {
    const cache = await storage.open(CACHE_NAME);
    const r = await cache.match(url);
    if (!r) return null;
    const bytes = new Uint8Array(await r.arrayBuffer());
    const size = Number(r.headers.get('x-pushforward-size'));
    const hash = r.headers.get('x-pushforward-sha256');
    if (bytes.length !== size || (hash && hash !== (await sha256(bytes)))) {
      await cache.delete(url);
      return null;
    }
    return { bytes, etag: r.headers.get('x-pushforward-etag') || '', source: 'cache' };
  } catch {
    return null;   // storage refused: as if nothing were kept
  }
}

/** Keeps `bytes` of `url`; resolves with `{ stored: 'cache' | 'memory', note }`. */
export async function storeModel(url, bytes, etag) {
  anyKept = null;
  let why;
  const storage = cacheStorage();
  if (!storage) {
    why = 'the Cache API is not available (it needs a secure context — https or localhost — and an origin of its own)';
  } else {
    try {
      const cache = await storage.open(CACHE_NAME);
      const headers = {
        'content-type': 'application/octet-stream',
        'x-pushforward-size': String(bytes.length),
        'x-pushforward-etag': etag || '',
        'x-pushforward-sha256': (await sha256(bytes)) || '',
      };
      await cache.put(url, new Response(bytes, { headers }));
      return { stored: 'cache', note: `kept in the browser's Cache API ("${CACHE_NAME}")` };
    } catch (e) {
      why = `the browser refused to store it (${describe(e)})`;
    }
  }
  if (bytes.length > MEMORY_MAX_BYTES) return { stored: 'none', note: `not kept: ${why}, and it is too large to keep in memory` };
  memory.delete(url);
  memory.set(url, { bytes, etag });
  let total = 0;
  for (const v of memory.values()) total += v.bytes.length;
  for (const [k, v] of memory) {
    if (total <= MEMORY_MAX_BYTES) break;
    memory.delete(k);
    total -= v.bytes.length;
  }
  return { stored: 'memory', note: `kept in this page's memory only: ${why}` };
}

/** Forgets the kept copies of `url` (or of every model). */
export async function forgetModels(url) {
  if (url === undefined) memory.clear(); else memory.delete(url);
  const storage = cacheStorage();
  if (!storage) return;
  try {
    if (url === undefined) await storage.delete(CACHE_NAME);
    else await (await storage.open(CACHE_NAME)).delete(url);
  } catch { /* nothing kept */ }
}
