// Shared set-up for the browser tests: the static server, headless Debian Chromium with the
// flags that give SwiftShader WebGPU here (see ../shared/design.md), fixtures, metrics.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../../scripts/serve.mjs';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const outDir = path.join(root, 'test-output');

const BASE_FLAGS = [
  '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic',
];
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-angle=swiftshader'];

/** Which browser `launch` starts: `PUSHFORWARD_BROWSER=firefox` runs Debian's Firefox ESR
 * through WebDriver BiDi (puppeteer-core) for the CPU-backend files that scripts/test.sh lists;
 * anything else, Chromium through Playwright. */
export const BROWSER = process.env.PUSHFORWARD_BROWSER === 'firefox' ? 'firefox' : 'chromium';

/** Starts the server and a fresh Chromium; `webgpu: false` launches without WebGPU;
 * `isolated: true` serves every response with COOP/COEP (cross-origin isolated pages);
 * `args`: more Chromium flags. Under `PUSHFORWARD_BROWSER=firefox`, Firefox ESR instead. */
export async function launch({ webgpu = true, isolated = false, args = [] } = {}) {
  if (BROWSER === 'firefox') return launchFirefox({ isolated });
  const server = await startServer(0, { isolated });
  const url = `http://127.0.0.1:${server.address().port}`;
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushforward-chromium-'));
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [...BASE_FLAGS, ...(webgpu ? WEBGPU_FLAGS : []), ...args],
    viewport: { width: 1100, height: 900 },
  });
  const page = context.pages()[0] || (await context.newPage());
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  return {
    url, page, consoleErrors, context,
    async close() {
      await context.close();
      server.close();
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}

/** Starts the server and one running Chromium whose `fresh()` opens a page in a new, empty
 * browser context (its own HTTP cache and storage, as a visitor with the browser already open
 * and the cache disabled; `launch` starts a whole browser instead). Chromium only. */
export async function launchBrowser({ webgpu = true } = {}) {
  const server = await startServer(0, {});
  const url = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [...BASE_FLAGS, ...(webgpu ? WEBGPU_FLAGS : [])],
  });
  return {
    url, browser,
    async fresh() {
      const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
      return { page: await context.newPage(), close: () => context.close() };
    },
    async close() {
      await browser.close();
      server.close();
    },
  };
}

/** Before the page loads: keep every GPUDevice it opens in `window.__gpuDevices` (so a test can
 * destroy one, as a driver reset would) and every unhandled rejection in `window.__unhandled`. */
export async function watchDevices(page) {
  await page.addInitScript(() => {
    window.__gpuDevices = [];
    window.__unhandled = [];
    window.addEventListener('unhandledrejection', (e) => window.__unhandled.push(String(e.reason?.message ?? e.reason)));
    if (globalThis.GPUAdapter) {
      const request = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function (...args) {
        const device = await request.apply(this, args);
        window.__gpuDevices.push(device);
        return device;
      };
    }
  });
}

/** Reads the F32 tensors of a safetensors file into { name: { shape, data: Float32Array } }. */
export function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const out = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (info.dtype !== 'F32') throw new Error(`${name}: ${info.dtype}`);
    const [s, e] = info.data_offsets;
    const bytes = buf.subarray(8 + n + s, 8 + n + e);
    out[name] = { shape: info.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)) };
  }
  return out;
}

// The sliced-W2 metric lives in its own module so that the Node tests can check it without a
// browser (tests/node/metrics.test.mjs).
export { slicedW2 } from './metrics.mjs';


export function screenshotPath(name) {
  fs.mkdirSync(outDir, { recursive: true });
  return path.join(outDir, name);
}

/** Firefox ESR (headless, WebDriver BiDi via puppeteer-core) behind the part of Playwright's page
 * and context API the CPU-backend tests use: goto, evaluate, waitForSelector,
 * waitForFunction(fn, arg, options), addInitScript, close; context.newPage and
 * context.on('request'). Logs the version once. */
async function launchFirefox({ isolated }) {
  const { default: puppeteer } = await import('puppeteer-core');
  const server = await startServer(0, { isolated });
  const url = `http://127.0.0.1:${server.address().port}`;
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushforward-firefox-'));
  const browser = await puppeteer.launch({
    browser: 'firefox', headless: true, userDataDir: userDir,
    executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
  });
  if (!launchFirefox.logged) {
    launchFirefox.logged = true;
    console.log(`browser: ${await browser.version()} (WebDriver BiDi)`);
  }
  const consoleErrors = [];
  const requestListeners = [];
  const wrap = (p) => {
    p.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    p.on('pageerror', (e) => consoleErrors.push(String(e)));
    p.on('request', (r) => { for (const f of requestListeners) f(r); });
    return {
      raw: p,
      goto: (u) => p.goto(u),
      evaluate: (fn, arg) => p.evaluate(fn, arg),
      waitForSelector: (sel, opts) => p.waitForSelector(sel, opts),
      waitForFunction: (fn, arg, opts) => p.waitForFunction(fn, opts ?? {}, arg),
      addInitScript: (fn) => p.evaluateOnNewDocument(fn),
      on: (event, f) => p.on(event, f),
      close: () => p.close(),
    };
  };
  const page = wrap((await browser.pages())[0] || (await browser.newPage()));
  const context = {
    newPage: async () => wrap(await browser.newPage()),
    on: (event, f) => { if (event === 'request') requestListeners.push(f); },
  };
  return {
    url, page, consoleErrors, context, browser: 'firefox',
    async close() {
      await browser.close();
      server.close();
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}
