// Users' own networks from ONNX in Chromium (issue #14): the U-Net with self-attention and the
// small DiT of tests/fixtures/onnx/ load from .onnx bytes and by URL, sample on the wasm CPU
// backend (page thread and workers) and on WebGPU (SwiftShader), agree with each other and with
// the float64 PyTorch solve of the fixture, and draw; an ONNX flow map takes its own jumps; the
// op the browser build leaves out (Einsum, native only) is refused naming it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, root, readSafetensors } from './harness.mjs';

const fixtures = path.join(root, 'tests/fixtures/onnx');
const SELU_DECLARATION = { format_version: 1, inputs: { x: 'x', t: 't' }, data: { kind: 'points2d', range: [[-3, 3], [-3, 3]] } };
/// The ModelProto without its metadata_props (field 14): the top-level fields copied but those.
function withoutMetadata(bytes) {
  const keep = [];
  let i = 0;
  const varint = () => { let v = 0, m = 1; for (;;) { const c = bytes[i++]; v += (c & 127) * m; m *= 128; if (c < 128) return v; } };
  while (i < bytes.length) {
    const start = i, key = varint(), wire = key & 7;
    if (wire === 0) varint(); else if (wire === 2) { const n = varint(); i += n; } else if (wire === 1) i += 8; else if (wire === 5) i += 4;
    else throw new Error(`wire type ${wire}`);
    if (key >>> 3 !== 14) keep.push(bytes.subarray(start, i));
  }
  return Buffer.concat(keep);
}

let b;
before(async () => {
  b = await launch({ webgpu: true });
  // Serve the fixtures at a URL of their own, as a user's host would.
  // `bare_NAME.onnx`: the fixture without its metadata (a plain torch.onnx.export).
  await b.page.route('**/user-models/*.onnx', (route) => {
    const name = new URL(route.request().url()).pathname.split('/').pop();
    const bytes = fs.readFileSync(path.join(fixtures, name.replace(/^bare_/, '')));
    route.fulfill({ status: 200, contentType: 'application/octet-stream', body: name.startsWith('bare_') ? withoutMetadata(bytes) : bytes });
  });
  // The declaration of the fixture that carries none in its metadata, as a user would host it.
  await b.page.route('**/user-models/*.json', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(SELU_DECLARATION) }));
  await b.page.goto(`${b.url}/?backend=cpu`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
});
after(async () => { await b?.close(); });

for (const name of ['unet_attn', 'dit_small']) {
  test(`${name}: loads from .onnx bytes and by URL, samples on CPU and WebGPU alike, matches PyTorch, draws`, async () => {
    const bytes = [...fs.readFileSync(path.join(fixtures, `${name}.onnx`))];
    const r = await b.page.evaluate(async ({ name, bytes }) => {
      const { Sampler } = window.pushforward;
      const out = {};
      const conditional = name === 'unet_attn';
      const opts = { n: 5, solver: 'heun', steps: 4, seed: 11, returnSamples: true, ...(conditional ? { label: 'all', guidance: 2 } : {}) };
      for (const [key, backend, workers, model] of [
        ['cpuBytes', 'cpu', 0, new Uint8Array(bytes)],
        ['cpuUrl', 'cpu', 2, `user-models/${name}.onnx`],
        ['webgpu', 'webgpu', 0, `user-models/${name}.onnx`],
      ]) {
        const canvas = document.createElement('canvas');
        canvas.width = 160; canvas.height = 160;
        const s = await Sampler.create({ model, backend, workers, canvas });
        const res = await s.sample(opts);
        let lit = 0;
        if (backend === 'cpu') {
          const px = canvas.getContext('2d').getImageData(0, 0, 160, 160).data;
          for (let i = 0; i < px.length; i += 4) if (px[i] + px[i + 1] + px[i + 2] > 30) lit++;
        } else {
          // The WebGPU canvas, read back through a 2-D copy.
          const c2 = document.createElement('canvas');
          c2.width = 160; c2.height = 160;
          const ctx = c2.getContext('2d');
          ctx.drawImage(canvas, 0, 0);
          const px = ctx.getImageData(0, 0, 160, 160).data;
          for (let i = 0; i < px.length; i += 4) if (px[i] + px[i + 1] + px[i + 2] > 30) lit++;
        }
        out[key] = { samples: Array.from(res.samples), info: s.info(), lit };
        s.dispose();
      }
      return out;
    }, { name, bytes });
    const ref = readSafetensors(path.join(fixtures, `${name}_expected.safetensors`)).samples_heun4.data;
    const diff = (a, b2) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b2[i])), 0);
    const dCpu = diff(r.cpuBytes.samples, ref);
    const dUrl = diff(r.cpuUrl.samples, r.cpuBytes.samples);
    const dGpu = diff(r.webgpu.samples, r.cpuBytes.samples);
    console.log(`${name}: ${r.cpuBytes.info.parameters} parameters, arch ${r.cpuBytes.info.config.arch.kind}; wasm CPU vs PyTorch ${dCpu.toExponential(2)}, workers vs page thread ${dUrl}, WebGPU vs CPU ${dGpu.toExponential(2)}; lit pixels ${r.cpuBytes.lit}/${r.webgpu.lit}`);
    assert.equal(r.cpuBytes.info.config.arch.kind, 'onnx');
    assert.ok(dCpu <= 1e-3, `wasm CPU vs PyTorch: ${dCpu}`);
    assert.equal(dUrl, 0, 'the worker split gives the page thread\'s samples');
    assert.ok(dGpu <= 1e-3, `WebGPU vs CPU: ${dGpu}`);
    assert.ok(r.cpuBytes.lit > 1000 && r.webgpu.lit > 1000, 'the image grid is drawn on both backends');
  });
}

test('an ONNX flow map (MeanFlow\'s u(z, r, t)) samples in one jump by default, on CPU and WebGPU alike, as PyTorch', async () => {
  const r = await b.page.evaluate(async () => {
    const { Sampler } = window.pushforward;
    const out = {};
    for (const [key, backend, workers] of [['cpu', 'cpu', 0], ['workers', 'cpu', 2], ['webgpu', 'webgpu', 0]]) {
      const s = await Sampler.create({ model: 'user-models/meanflow_rt.onnx', backend, workers });
      const d = s.defaults();
      const one = await s.sample({ n: 5, seed: 11, solver: d.solver, steps: d.steps, returnSamples: true });
      const two = await s.sample({ n: 5, seed: 11, solver: 'euler', steps: 2, returnSamples: true });
      out[key] = { defaults: [d.solver, d.steps], arch: s.info().config.arch, one: Array.from(one.samples), two: Array.from(two.samples), nfe: one.nfe };
      s.dispose();
    }
    return out;
  });
  const fx = readSafetensors(path.join(fixtures, 'meanflow_rt_expected.safetensors'));
  const diff = (a, b2) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b2[i])), 0);
  for (const [key, v] of Object.entries(r)) {
    const d1 = diff(v.one, fx.samples_map1.data), d2 = diff(v.two, fx.samples_map2.data);
    console.log(`meanflow_rt on ${key}: defaults ${v.defaults.join(' ')}, ${v.nfe} NFE; 1 jump vs PyTorch ${d1.toExponential(2)}, 2 jumps ${d2.toExponential(2)}`);
    assert.equal(v.arch.flow_map, true);
    assert.equal(v.arch.inputs.end, 'r');
    assert.deepEqual(v.defaults, ['euler', 1]);
    assert.equal(v.nfe, 1);
    assert.ok(d1 <= 1e-4 && d2 <= 1e-4, `${key}: ${d1} / ${d2}`);
  }
});

test('Einsum (native only: the bundle budget) is refused at load in the browser, naming the node and the op', async () => {
  const msg = await b.page.evaluate(async () => {
    try {
      await window.pushforward.Sampler.create({ model: 'user-models/ddp_unet.onnx', backend: 'cpu', workers: 0 });
      return 'loaded';
    } catch (e) { return String(e.message || e); }
  });
  console.log(msg);
  assert.match(msg, /\(Einsum\): op `Einsum` is not supported/);
});

test('an ONNX file without its declaration says how to give one, and loads with one passed beside it', async () => {
  const r = await b.page.evaluate(async () => {
    const { Sampler } = window.pushforward;
    const msg = async (p) => { try { await p; return 'ok'; } catch (e) { return String(e.message || e); } };
    const decl = { format_version: 1, inputs: { x: 'x', t: 't' }, data: { kind: 'points2d', range: [[-3, 3], [-3, 3]] } };
    const model = 'user-models/bare_mlp_selu_raw_t.onnx';
    return {
      none: await msg(Sampler.create({ model, backend: 'cpu', workers: 0 })),
      typo: await msg(Sampler.create({ model, backend: 'cpu', workers: 0, declaration: { ...decl, outptu: 'velocity' } })),
      given: await msg(Sampler.create({ model, backend: 'cpu', workers: 0, declaration: decl }).then((s) => s.sample({ n: 64, steps: 2 }))),
      // Numbers in messages are formatted by JavaScript in the wasm build (error::Num): an f32
      // shows its shortest digits (0.7, not 0.699999988079071), an f64 its own.
      eps: await msg(Sampler.create({ model, backend: 'cpu', workers: 0, declaration: { ...decl, output: 'data', output_eps: 0.7 } })),
      noise: await msg(Sampler.create({ model, backend: 'cpu', workers: 0, declaration: decl }).then((s) => s.sample({ n: 8, noise: 100.25 }))),
      info: await Sampler.create({ model, backend: 'cpu', workers: 0, declaration: { ...decl, time: { scale: 0.1 } } }).then((s) => s.info().config),
    };
  });
  console.log(r);
  assert.match(r.none, /no `pushforward` entry in its metadata_props.*declaration/);
  assert.match(r.typo, /outptu/);
  assert.equal(r.given, 'ok');
  assert.match(r.eps, /output_eps 0\.7 must be in \(0, 0\.5\]/);
  assert.match(r.noise, /100\.25 must be a number in \[0, 100\]/);
  // The config's JSON (written with JavaScript's digits) reads back as written.
  assert.equal(r.info.arch.time.scale, 0.1);
  assert.equal(r.info.arch.output_eps, 0.05);
});

test('the embed takes an .onnx model with its declaration beside it (declaration attribute), and says when it is missing', async () => {
  const r = await b.page.evaluate(async () => {
    await import('/pushforward-sampler.js');
    const run = (attrs) => new Promise((resolve) => {
      const el = document.createElement('pushforward-sampler');
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      el.addEventListener('sampled', (e) => { resolve({ sampled: e.detail.n }); el.remove(); });
      el.addEventListener('error', (e) => { resolve({ error: e.detail }); el.remove(); });
      document.body.prepend(el);
    });
    const base = { model: 'user-models/bare_mlp_selu_raw_t.onnx', backend: 'cpu', points: '500', steps: '4' };
    return { given: await run({ ...base, declaration: 'user-models/mlp_selu_raw_t.json' }), missing: await run(base) };
  });
  console.log(r);
  assert.equal(r.given.sampled, 500, JSON.stringify(r.given));
  assert.match(r.missing.error, /declaration/);
});
