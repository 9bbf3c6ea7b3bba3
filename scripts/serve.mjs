// A tiny static server for the demo: `/` serves www/, `/models/` serves models/, and
// `/node_modules/` serves the benchmark's peer libraries (only the packages in PEERS; they are
// installed by scripts/bench-setup.sh, never fetched from a CDN). Binds 127.0.0.1 (a secure
// context for WebGPU). `isolated: true` (CLI: --isolated) sends COOP/COEP on every response so
// pages are cross-origin isolated (SharedArrayBuffer, i.e. ONNX Runtime Web's wasm threads).
//
// Only files inside the served folders are sent: a path is checked after `..` is resolved and
// again after symlinks are (its realpath must stay inside the folder's realpath). Requests whose
// Host is not this machine's loopback name and port are refused, so a page on another origin
// cannot reach the server by DNS rebinding. No request can stop the server: a malformed URL is
// a 400 and any other failure a 500.
// Usage: node scripts/serve.mjs [--isolated] [port]
import crypto from 'node:crypto';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const types = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json',
  '.safetensors': 'application/octet-stream', '.png': 'image/png', '.svg': 'image/svg+xml',
  '.ts': 'text/plain', '.onnx': 'application/octet-stream',
};

// Packages ('name') and scopes ('@scope/') under node_modules/ that may be served.
const PEERS = ['onnxruntime-web', '@tensorflow/'];
export const ISOLATION_HEADERS = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

/** Whether `file` is `dir` or inside it (both absolute and normalised). `path.relative` rather
 * than a string prefix: `/repo/www-secret.txt` starts with `/repo/www` but is not inside it. */
function inside(dir, file) {
  const rel = path.relative(dir, file);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/** The loopback names this server answers to; anything else (a rebound DNS name) is refused. */
function hostAllowed(host, port) {
  const h = String(host ?? '').toLowerCase();
  return h === `127.0.0.1:${port}` || h === `localhost:${port}` || h === `[::1]:${port}`;
}

function send(res, status, text) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(text);
}

/** The folder and the path inside it that a URL path names, or null if it is not served. */
function route(rel) {
  if (rel.startsWith('/models/')) return { base: path.join(root, 'models'), rel: rel.slice('/models'.length) };
  if (rel.startsWith('/node_modules/')) {
    rel = rel.slice('/node_modules'.length);
    // The first segments of the resolved path must name a peer package or scope.
    const within = path.relative('/', path.posix.normalize(rel));
    const peer = PEERS.some((p) => (p.endsWith('/') ? within.startsWith(p) : within === p || within.startsWith(`${p}/`)));
    return peer ? { base: path.join(root, 'node_modules'), rel } : null;
  }
  return { base: path.join(root, 'www'), rel };
}

async function handle(req, res, port, headers) {
  if (!hostAllowed(req.headers.host, port)) { send(res, 421, 'misdirected request: unknown Host'); return; }
  // Only origin-form targets ("/path?query"); the query is ignored. Parsed by hand rather than
  // with `new URL`, which would read `//host/x` as another host's `/x`.
  const target = req.url ?? '';
  if (!target.startsWith('/')) { send(res, 400, 'bad request'); return; }
  let rel;
  try {
    rel = decodeURIComponent(target.split(/[?#]/, 1)[0]);
  } catch {
    send(res, 400, 'bad request: malformed URL'); return;
  }
  // A NUL byte makes the fs calls throw; no served name contains one.
  if (rel.includes('\0')) { send(res, 400, 'bad request'); return; }

  const r = route(rel);
  if (!r) { send(res, 403, 'forbidden'); return; }
  if (r.rel.endsWith('/')) r.rel += 'index.html';
  const file = path.join(r.base, r.rel);   // join normalises `..`
  if (!inside(r.base, file)) { send(res, 403, 'forbidden'); return; }

  // Symlinks: the file as the OS resolves it must still be inside the folder as resolved.
  let real;
  try {
    real = await fs.promises.realpath(file);
  } catch {
    send(res, 404, 'not found'); return;
  }
  if (!inside(await fs.promises.realpath(r.base), real)) { send(res, 403, 'forbidden'); return; }
  let data;
  try {
    data = await fs.promises.readFile(real);   // a directory fails here (EISDIR): 404
  } catch {
    send(res, 404, 'not found'); return;
  }
  // A content ETag, so that a conditional request (the sampler's `cache: 'revalidate'`) gets 304.
  const etag = `"${crypto.createHash('sha1').update(data).digest('hex').slice(0, 20)}"`;
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, { etag, 'cache-control': 'no-store', ...headers });
    res.end();
    return;
  }
  res.writeHead(200, {
    'content-type': types[path.extname(file)] || 'application/octet-stream',
    'content-length': data.length, 'cache-control': 'no-store', etag, ...headers,
  });
  res.end(data);
}

export function startServer(port = 0, { headers = {}, isolated = false } = {}) {
  if (isolated) headers = { ...ISOLATION_HEADERS, ...headers };
  const server = http.createServer((req, res) => {
    handle(req, res, server.address().port, headers).catch((e) => {
      // Nothing a request does may take the server down.
      console.error(`serve.mjs: ${req.method} ${JSON.stringify(req.url)}: ${e?.stack ?? e}`);
      if (!res.headersSent) send(res, 500, 'internal error');
      else res.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve(server); });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const isolated = args.includes('--isolated');
  const arg = args.find((a) => a !== '--isolated') ?? process.env.PORT;
  const port = arg === undefined || arg === '' ? 8080 : Number(arg);
  const server = await startServer(port, { isolated });
  console.log(`pushforward demo: http://127.0.0.1:${server.address().port}/`);
}
