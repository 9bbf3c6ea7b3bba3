// Weights that load once (issue #15): a model fetched by URL is kept in the Cache API with its
// size, ETag and SHA-256, and the next visit loads it with no network request (counted at the
// browser's network layer); `cache: 'revalidate'` asks the server (304 → the kept copy),
// `cache: false` neither reads nor keeps; a damaged kept copy is fetched again; where storage is
// refused the bytes are kept in the page's memory and `info()` says why.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, root } from './harness.mjs';

let b;
const requests = [];
before(async () => {
  b = await launch({ webgpu: false });
  b.context.on('request', (r) => { if (r.url().includes('/models/')) requests.push({ url: r.url(), headers: r.headers() }); });
});
after(async () => { await b?.close(); });

const MODEL = 'models/checkerboard.safetensors';
const count = () => requests.filter((r) => r.url.endsWith(MODEL)).length;

async function visit(url = '/?backend=cpu') {
  await b.page.goto(`${b.url}${url}`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
}

/** Loads MODEL on the current page; its info and samples. */
const create = (opts = {}) => b.page.evaluate(async ({ model, opts }) => {
  const { Sampler } = window.pushforward;
  const events = [];
  const s = await Sampler.create({ model, backend: 'cpu', workers: 0, onProgress: (p) => events.push(p), ...opts });
  const r = await s.sample({ n: 256, steps: 4, seed: 2, returnSamples: true });
  const info = s.info();
  s.dispose();
  return { source: info.modelSource, kept: info.modelKept, note: info.modelKeptNote, samples: Array.from(r.samples), last: events.at(-1) };
}, { model: MODEL, opts });

test('a second visit loads the model from the cache with no request; revalidate, off and a damaged copy behave', async () => {
  await visit();
  await b.page.evaluate(() => caches.delete('pushforward-models-v1'));
  const before = count();
  const first = await create();
  assert.equal(count() - before, 1, 'the first load downloads');
  const bytes = fs.statSync(path.join(root, MODEL)).size;
  console.log(`first visit: 1 request, ${bytes} bytes transferred (the file)`);
  assert.deepEqual([first.source, first.kept], ['network', 'cache'], first.note);

  // A new visit (same browser profile): no request at all.
  await visit();
  const n0 = count();
  const second = await create();
  console.log(`second visit: ${count() - n0} requests, 0 bytes transferred; loaded from ${second.source}; progress ${JSON.stringify(second.last)}`);
  assert.equal(count() - n0, 0, 'the second visit makes no request');
  assert.equal(second.source, 'cache');
  assert.equal(second.last.cached, true);
  assert.deepEqual(second.samples, first.samples, 'the kept weights sample the same');

  // Revalidate: one conditional request carrying the kept ETag, answered 304.
  const n1 = count();
  const reval = await create({ cache: 'revalidate' });
  const sent = requests.at(-1);
  assert.equal(count() - n1, 1);
  assert.match(sent.headers['if-none-match'] ?? '', /^".+"$/, 'the kept ETag is sent');
  assert.equal(reval.source, 'cache', reval.note);
  assert.match(reval.note, /304/);

  // Off: always the network, nothing read or kept.
  const n2 = count();
  const off = await create({ cache: false });
  assert.equal(count() - n2, 1);
  assert.deepEqual([off.source, off.kept], ['network', 'off']);

  // A damaged copy (its bytes changed, its recorded size and hash not) is dropped and fetched again.
  await b.page.evaluate(async (model) => {
    const cache = await caches.open('pushforward-models-v1');
    const url = new URL(model, location.href).href;
    const r = await cache.match(url);
    const bytes = new Uint8Array(await r.arrayBuffer());
    bytes[bytes.length - 1] ^= 0xff;
    await cache.put(url, new Response(bytes, { headers: r.headers }));
  }, MODEL);
  const n3 = count();
  const healed = await create();
  assert.equal(count() - n3, 1, 'a damaged copy is fetched again');
  assert.equal(healed.source, 'network');
  assert.deepEqual(healed.samples, first.samples);

  // Forgotten on request: the next load downloads.
  await b.page.evaluate((model) => window.pushforward.Sampler.clearModelCache(model), MODEL);
  const n4 = count();
  assert.equal((await create()).source, 'network');
  assert.equal(count() - n4, 1);
});

test('where storage is refused, the model is kept in the page\'s memory and info() says why', async () => {
  const page = await b.context.newPage();
  await page.addInitScript(() => {
    CacheStorage.prototype.open = () => Promise.reject(new DOMException('the quota is exceeded', 'QuotaExceededError'));
  });
  await page.goto(`${b.url}/?backend=cpu`);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  const n0 = count();
  const r = await page.evaluate(async (model) => {
    const { Sampler } = window.pushforward;
    const out = [];
    for (let i = 0; i < 2; i++) {
      const s = await Sampler.create({ model, backend: 'cpu', workers: 0 });
      const info = s.info();
      out.push({ source: info.modelSource, kept: info.modelKept, note: info.modelKeptNote });
      s.dispose();
    }
    return out;
  }, MODEL);
  await page.close();
  console.log(r);
  assert.equal(count() - n0, 1, 'one download for two loads');
  assert.deepEqual([r[0].source, r[0].kept], ['network', 'memory']);
  assert.match(r[0].note, /memory only: the browser refused to store it \(QuotaExceededError/);
  assert.equal(r[1].source, 'memory');
});

test('a bad cache option is a clear error', async () => {
  await visit();
  const msg = await b.page.evaluate((model) => window.pushforward.Sampler.create({ model, cache: 'always' }).then(() => 'ok', (e) => e.message), MODEL);
  assert.match(msg, /cache.*revalidate/);
});
