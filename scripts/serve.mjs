// A tiny static server for the demo: `/` serves www/, `/models/` serves models/, and
// `/node_modules/` serves the benchmark's peer libraries (only the packages in PEERS; they are
// installed by scripts/bench-setup.sh, never fetched from a CDN). Binds 127.0.0.1 (a secure
// context for WebGPU). `isolated: true` (CLI: --isolated) sends COOP/COEP on every response so
// pages are cross-origin isolated (SharedArrayBuffer, i.e. ONNX Runtime Web's wasm threads).
// Usage: node scripts/serve.mjs [--isolated] [port]
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

const PEERS = ['onnxruntime-web', '@tensorflow/'];
export const ISOLATION_HEADERS = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

export function startServer(port = 0, { headers = {}, isolated = false } = {}) {
  if (isolated) headers = { ...ISOLATION_HEADERS, ...headers };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    let rel = decodeURIComponent(url.pathname);
    let base = path.join(root, 'www');
    if (rel.startsWith('/models/')) { base = path.join(root, 'models'); rel = rel.slice('/models'.length); }
    if (rel.startsWith('/node_modules/')) {
      rel = rel.slice('/node_modules'.length);
      base = path.join(root, 'node_modules');
      const inside = path.relative(base, path.normalize(path.join(base, rel)));
      if (!PEERS.some((p) => inside.startsWith(p))) { res.writeHead(403).end('forbidden'); return; }
    }
    if (rel.endsWith('/')) rel += 'index.html';
    const file = path.normalize(path.join(base, rel));
    if (!file.startsWith(base)) { res.writeHead(403).end('forbidden'); return; }
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404, { 'content-type': 'text/plain' }).end('not found'); return; }
      res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store', ...headers });
      res.end(data);
    });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const isolated = args.includes('--isolated');
  const port = Number(args.find((a) => a !== '--isolated') || process.env.PORT || 8080);
  const server = await startServer(port, { isolated });
  console.log(`pushforward demo: http://127.0.0.1:${server.address().port}/`);
}
