// The wasm CPU backend on every core, without shared memory (so without COOP/COEP headers, on
// any static host): a small pool of module workers, each with its own wasm instance and its own
// copy of the weights. A request's rows are split into contiguous ranges, one per worker; noise
// and labels are indexed by sample, so the result is the single-worker result.
//
// wasm-bindgen copies this file to pkg/snippets/<crate>-<hash>/src/cpu_workers.js and imports it
// from pkg/pushforward.js; the same file is the workers' entry point (it knows when it runs in a
// worker), and a worker loads the bindings from three directories up.
//
// Cancelling terminates the workers (a solve running in wasm cannot be interrupted otherwise);
// the pool starts new ones on its next call.

const IN_WORKER = typeof WorkerGlobalScope !== 'undefined' && globalThis instanceof WorkerGlobalScope;

function startWorker(model) {
  return new Promise((resolve, reject) => {
    let worker;
    try {
      worker = new Worker(new URL(import.meta.url), { type: 'module', name: 'pushforward-cpu' });
    } catch (e) {
      reject(new Error(`cannot start a worker: ${e.message || e}`));
      return;
    }
    worker.onmessage = (e) => {
      if (e.data.type === 'ready') resolve(worker);
      else { worker.terminate(); reject(new Error(e.data.message)); }
    };
    worker.onerror = (e) => { worker.terminate(); reject(new Error(`worker failed to start: ${e.message || 'load error'}`)); };
    worker.postMessage({ type: 'init', model });
  });
}

/// One request to one worker; `onProgress` gets its progress events.
function call(worker, request, onProgress) {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e) => {
      const m = e.data;
      if (m.type === 'progress') onProgress(m.progress);
      else if (m.type === 'done') resolve(m.result);
      else reject(new Error(m.message));
    };
    worker.onerror = (e) => reject(new Error(`worker error: ${e.message || e}`));
    worker.postMessage({ type: 'solve', ...request });
  });
}

/// `n` rows in at most `k` contiguous ranges of at least `minRows` rows each.
function split(n, k, minRows) {
  const parts = Math.max(1, Math.min(k, Math.floor(n / Math.max(1, minRows))));
  const ranges = [];
  for (let i = 0; i < parts; i++) ranges.push([Math.floor((n * i) / parts), Math.floor((n * (i + 1)) / parts)]);
  return ranges;
}

export class CpuPool {
  constructor(model, count) {
    this.model = model;
    this.count = count;
    this.workers = [];
  }

  static async create(model, count) {
    const pool = new CpuPool(model.slice(), count);
    await pool.spawn();
    return pool;
  }

  async spawn() {
    const started = await Promise.allSettled(Array.from({ length: this.count }, () => startWorker(this.model)));
    const failed = started.find((s) => s.status === 'rejected');
    this.workers = started.filter((s) => s.status === 'fulfilled').map((s) => s.value);
    if (failed) {
      this.terminate();
      throw failed.reason;
    }
  }

  size() { return this.count; }

  /// Solves `opts` (plain data, as `sample()` takes) for `n` rows over the workers. Resolves
  /// with { samples, labels, frames: [{ t, data }], nfe, acceptedSteps, rejectedSteps }.
  async solve(opts, n, minRows, onProgress, signal) {
    if (signal?.aborted) throw new Error('sampling was cancelled');
    if (this.workers.length === 0) await this.spawn();
    // Adaptive steps differ between row ranges, so their trajectory frames would not line up.
    const k = opts.solver === 'dopri5' && opts.trajectories ? 1 : this.workers.length;
    const ranges = split(n, k, minRows);
    const progress = ranges.map(() => null);
    const report = () => {
      if (typeof onProgress !== 'function' || progress.some((p) => p === null)) return;
      // The slowest worker's position is the request's.
      const slowest = progress.reduce((a, b) => (b.step < a.step ? b : a));
      onProgress({ ...slowest });
    };
    let onAbort;
    const aborted = new Promise((_, reject) => {
      onAbort = () => reject(new Error('sampling was cancelled'));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const parts = await Promise.race([
        Promise.all(ranges.map(([start, end], i) =>
          call(this.workers[i], { opts, start, end }, (p) => { progress[i] = p; report(); }))),
        aborted,
      ]);
      return merge(parts);
    } catch (e) {
      // A cancelled or failed solve may still be running in a worker: replace them all.
      this.terminate();
      throw e;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  terminate() {
    for (const w of this.workers) w.terminate();
    this.workers = [];
  }
}

/// Concatenates the workers' row ranges (in order) into one result.
function merge(parts) {
  const cat = (arrays, Type) => {
    const out = new Type(arrays.reduce((s, a) => s + a.length, 0));
    let at = 0;
    for (const a of arrays) { out.set(a, at); at += a.length; }
    return out;
  };
  const frames = parts[0].frames.map((f, i) => ({ t: f.t, data: cat(parts.map((p) => p.frames[i].data), Float32Array) }));
  return {
    samples: cat(parts.map((p) => p.samples), Float32Array),
    labels: cat(parts.map((p) => p.labels), Uint32Array),
    frames,
    // Every worker integrates the same time grid: NFE is per sample path, not summed.
    nfe: Math.max(...parts.map((p) => p.nfe)),
    acceptedSteps: Math.max(...parts.map((p) => p.acceptedSteps)),
    rejectedSteps: Math.max(...parts.map((p) => p.rejectedSteps)),
  };
}

if (IN_WORKER) {
  let sampler = null;
  // Not a top-level await: the bindings import this module, and a cycle through a module that
  // is still awaiting would never finish loading.
  globalThis.onmessage = async (e) => {
    const m = e.data;
    try {
      if (m.type === 'init') {
        const glue = await import(new URL('../../../pushforward.js', import.meta.url).href);
        await glue.default();
        sampler = await glue.Sampler.create({ model: m.model, backend: 'cpu', workers: 0 });
        globalThis.postMessage({ type: 'ready' });
      } else if (m.type === 'solve') {
        const onProgress = (progress) => globalThis.postMessage({ type: 'progress', progress });
        const result = await sampler.solveRows({ ...m.opts, onProgress }, m.start, m.end);
        const transfer = [result.samples.buffer, ...result.frames.map((f) => f.data.buffer)];
        globalThis.postMessage({ type: 'done', result }, transfer);
      }
    } catch (err) {
      globalThis.postMessage({ type: 'error', message: String(err?.message ?? err) });
    }
  };
}
