// scripts/serve.mjs, the dev server the demo and the browser tests use: malformed URLs, paths
// that leave the served folders (by `..`, by a sibling folder's shared prefix, by a symlink),
// foreign Host headers (DNS rebinding) are all refused, and none of them stops the server.
//
// The server runs in a child process, so a request that crashes it fails the tests here instead
// of killing the test runner. Requests are written by hand over a socket: an HTTP client would
// normalise the path (`/..%2f`, `/%`) or set the Host header itself.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const serveUrl = pathToFileURL(path.join(root, 'scripts/serve.mjs')).href;

/** Starts `startServer(0, options)` in a child process; resolves with { port, child }. */
function startChild(options = {}) {
  const code = `import { startServer } from ${JSON.stringify(serveUrl)};
    const s = await startServer(0, ${JSON.stringify(options)});
    console.log('PORT ' + s.address().port);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve({ port: Number(m[1]), child });
    });
    child.stderr.on('data', (d) => process.stderr.write(d));
    child.on('exit', (code) => reject(new Error(`server exited with ${code} before listening`)));
  });
}

/** One raw HTTP/1.1 request; resolves with { status, headers, body } (body as a string). */
function request(port, target, { host = `127.0.0.1:${port}`, method = 'GET' } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('end', () => {
      const raw = Buffer.concat(chunks).toString('latin1');
      const at = raw.indexOf('\r\n\r\n');
      const head = raw.slice(0, at).split('\r\n');
      const status = Number(head[0].split(' ')[1]);
      const headers = Object.fromEntries(head.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      resolve({ status, headers, body: raw.slice(at + 4) });
    });
    const hostLine = host === null ? '' : `Host: ${host}\r\n`;
    // write, not end: node's server drops a connection whose client half-closes before the reply.
    socket.write(`${method} ${target} HTTP/1.1\r\n${hostLine}Connection: close\r\n\r\n`);
  });
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushforward-serve-'));
// Files the tests place next to (not inside) www/ and models/, and symlinks inside www/.
const tag = `${process.pid}-${Date.now()}`;
const siblingWww = path.join(root, `www-secret-${tag}.txt`);
const siblingModels = path.join(root, `models-secret-${tag}.txt`);
const linkFile = path.join(root, 'www', `link-file-${tag}.txt`);
const linkDir = path.join(root, 'www', `link-dir-${tag}`);
const SECRET = 'TOP-SECRET-CONTENT';

before(async () => {
  fs.writeFileSync(siblingWww, SECRET);
  fs.writeFileSync(siblingModels, SECRET);
  fs.writeFileSync(path.join(tmp, 'secret.txt'), SECRET);
  fs.symlinkSync(path.join(tmp, 'secret.txt'), linkFile);
  fs.symlinkSync(tmp, linkDir);
});

// A fresh server per test, so that one that crashes the server fails only its own test.
let server;
beforeEach(async () => { server = await startChild(); });
afterEach(() => { server?.child.kill(); server = null; });

after(() => {
  for (const f of [siblingWww, siblingModels, linkFile, linkDir]) fs.rmSync(f, { force: true });
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The server is still up and serving the demo. */
async function assertAlive() {
  const r = await request(server.port, '/');
  assert.equal(r.status, 200);
  assert.match(r.body, /<html/i);
}

test('/ and /models/moons.safetensors are served, with content types', async () => {
  const index = await request(server.port, '/');
  assert.equal(index.status, 200);
  assert.match(index.headers['content-type'], /text\/html/);
  const model = await request(server.port, '/models/moons.safetensors');
  assert.equal(model.status, 200);
  assert.equal(model.headers['content-type'], 'application/octet-stream');
  assert.equal((await request(server.port, '/no-such-file.js')).status, 404);
  assert.equal((await request(server.port, '/models/no-such.safetensors')).status, 404);
});

test('a malformed URL is a 400 and the server keeps running', async () => {
  for (const target of ['/%', '/%E0%A4%A', '/%00', '/x%00.html', 'http://evil.example/', '*']) {
    const r = await request(server.port, target);
    assert.equal(r.status, 400, `${target} → ${r.status}`);
    await assertAlive();
  }
});

test('`..` that lands in a sibling folder sharing the prefix (www-secret, models-secret) is refused', async () => {
  const targets = [
    `/..%2f${path.basename(siblingWww)}`,
    `/models/..%2f${path.basename(siblingModels)}`,
    `/%2e%2e%2f${path.basename(siblingWww)}`,
    `/../${path.basename(siblingWww)}`,
    `/models/../../${path.basename(siblingModels)}`,
  ];
  for (const target of targets) {
    const r = await request(server.port, target);
    assert.ok(r.status === 403 || r.status === 404, `${target} → ${r.status}`);
    assert.ok(!r.body.includes(SECRET), `${target} served the sibling file`);
  }
  await assertAlive();
});

test('symlinks inside www/ that point outside it are refused', async () => {
  for (const target of [`/${path.basename(linkFile)}`, `/${path.basename(linkDir)}/secret.txt`]) {
    const r = await request(server.port, target);
    assert.equal(r.status, 403, `${target} → ${r.status}`);
    assert.ok(!r.body.includes(SECRET), `${target} followed the symlink`);
  }
  await assertAlive();
});

test('a foreign or missing Host header is refused (DNS rebinding); local names are served', async () => {
  const p = server.port;
  for (const host of ['evil.example', `evil.example:${p}`, `127.0.0.1:${p + 1}`, `127.0.0.1.evil.example:${p}`, '', null]) {
    const r = await request(p, '/', { host });
    assert.ok(r.status === 403 || r.status === 421 || r.status === 400, `Host ${host} → ${r.status}`);
    assert.doesNotMatch(r.body, /<html/i, `Host ${host} got the page`);
  }
  for (const host of [`127.0.0.1:${p}`, `localhost:${p}`, `LocalHost:${p}`, `[::1]:${p}`]) {
    assert.equal((await request(p, '/', { host })).status, 200, `Host ${host}`);
  }
});

test('node_modules/ serves only the benchmark peers', async () => {
  for (const target of ['/node_modules/playwright-core/package.json', '/node_modules/onnxruntime-web-evil/x.js',
    '/node_modules/onnxruntime-web/../playwright-core/package.json', '/node_modules/onnxruntime-web/..%2f..%2fpackage.json']) {
    const r = await request(server.port, target);
    assert.ok(r.status === 403 || r.status === 404, `${target} → ${r.status}`);
    assert.ok(!r.body.includes('"name"'), `${target} served a package file`);
  }
  await assertAlive();
});

test('isolated: every response carries COOP/COEP', async () => {
  const iso = await startChild({ isolated: true });
  try {
    const r = await request(iso.port, '/');
    assert.equal(r.status, 200);
    assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin');
    assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp');
  } finally { iso.child.kill(); }
});
