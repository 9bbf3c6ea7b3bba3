// The wasm CPU backend on every core, without shared memory (so without COOP/COEP headers, on
// any static host): a small pool of module workers, each with its own wasm instance and its own
// copy of the weights. A request's rows are split into contiguous ranges, one per worker; noise
// and labels are indexed by sample, so the result is the single-worker result.
//
// wasm-bindgen copies this file to pkg/snippets/<crate>-<hash>/src/cpu_workers.js and imports it
// from pkg/pushforward.js; the same file is the workers' entry point (it knows when it runs in a
// worker), and a worker loads the bindings from three directories up.
//
// Concurrency: the pool runs one request at a time; more wait in a FIFO queue. Every message to
// and from a worker carries a request id, and each worker has one message handler that routes
// replies by id, so one request can never receive another's reply. Cancelling the running
// request terminates only the workers busy with it (a solve running in wasm cannot be
// interrupted otherwise); cancelling a queued one just removes it. Missing workers (cancelled,
// crashed) are started again on the next request; the pool never holds more than `count`.

const IN_WORKER = typeof WorkerGlobalScope !== 'undefined' && globalThis instanceof WorkerGlobalScope;

const cancelled = () => new Error('sampling was cancelled');
const disposed = () => new Error('the sampler was disposed');

/// Request ids, unique in this page.
let nextId = 1;

/// One worker and the requests it has in flight (id → { resolve, reject, onProgress }).
class PoolWorker {
  constructor(onDeath) {
    this.pending = new Map();
    this.dead = null;
    this.onDeath = onDeath;
    // This very file is the workers' entry point, written in the literal form bundlers (Vite,
    // webpack) recognise, so that an app's build emits it as a worker with what it imports.
    this.worker = new Worker(new URL('./cpu_workers.js', import.meta.url), { type: 'module', name: 'pushforward-cpu' });
    this.worker.onmessage = (e) => this.dispatch(e.data);
    // An uncaught error in the worker (e.g. a wasm trap `RuntimeError: unreachable`, which leaves
    // its instance unusable and its reply never sent) or an unreadable message: the worker is
    // done for; whatever it was running rejects with the cause.
    this.worker.onerror = (e) => {
      e.preventDefault?.();
      this.kill(new Error(`a CPU worker failed: ${e.message || 'error while loading or running'}`));
    };
    this.worker.onmessageerror = () => this.kill(new Error('a CPU worker failed: a message could not be read'));
  }

  get busy() { return this.pending.size > 0; }

  /// Sends `{ id, type, ...payload }`; resolves with the reply's `result`.
  request(type, payload, onProgress) {
    if (this.dead) return Promise.reject(this.dead);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      try {
        this.worker.postMessage({ id, type, ...payload });
      } catch (e) {
        // Not sent (a value that cannot be cloned): nothing is in flight.
        this.pending.delete(id);
        reject(e);
      }
    });
  }

  dispatch(m) {
    if (m?.type === 'fatal') { this.kill(new Error(`a CPU worker failed: ${m.message}`)); return; }
    const p = this.pending.get(m?.id);
    if (!p) return; // a reply to nothing in flight: ignored
    if (m.type === 'progress') {
      // A throwing callback must not break the routing (the page-thread path ignores it too).
      try { p.onProgress?.(m.progress); } catch { /* ignored */ }
      return;
    }
    this.pending.delete(m.id);
    if (m.type === 'done') p.resolve(m.result);
    else {
      p.reject(new Error(m.message));
      // A trap caught in the worker still leaves its wasm instance unusable.
      if (m.fatal) this.kill(new Error(`a CPU worker failed: ${m.message}`));
    }
  }

  /// Terminates the worker; everything it has in flight rejects with `reason`. Idempotent.
  kill(reason) {
    if (this.dead) return;
    this.dead = reason;
    this.worker.terminate();
    for (const p of this.pending.values()) p.reject(reason);
    this.pending.clear();
    this.onDeath(this);
  }
}

/// `n` rows in at most `k` contiguous ranges of at least `minRows` rows each.
function split(n, k, minRows) {
  const parts = Math.max(1, Math.min(k, Math.floor(n / Math.max(1, minRows))));
  const ranges = [];
  for (let i = 0; i < parts; i++) ranges.push([Math.floor((n * i) / parts), Math.floor((n * (i + 1)) / parts)]);
  return ranges;
}

export class CpuPool {
  constructor(model, count, declaration, build, module) {
    this.model = model;
    // The page's wasm build ('relaxed' or 'simd128') and its compiled module: the workers
    // instantiate the same one (where a module cannot be posted, they load the same build).
    this.build = build;
    this.module = module;
    // An ONNX model's declaration when it was passed beside the file (undefined otherwise).
    this.declaration = declaration;
    this.count = count;
    this.workers = [];          // ready workers (at most `count`)
    this.starting = new Set();  // workers still loading
    this.spawning = null;       // the one spawn in flight, shared by its callers
    this.spawned = 0;           // workers ever started
    this.queue = [];            // requests waiting for the running one
    this.running = null;
    this.disposed = false;
    this.up = false;            // the first workers are up
    this.failure = null;        // why they could not start (the pool has stopped)
    this.holds = 0;             // page-thread solves that a deferred boot waits for
    this.bootTimer = undefined;
    this.started = undefined;   // settles when the workers are up (after `boot`)
  }

  /// Starts `count` workers and returns at once: requests wait for them (`solve`), and
  /// `state()` says how far they are, so that the sampler can solve a small first request on
  /// the page's thread meanwhile. If they cannot all start, the pool stops and its requests
  /// reject with the cause. `started` settles when they are up.
  ///
  /// With `deferMs` > 0 the boot waits: for a request that needs the workers, for the end of
  /// the page-thread solves that `hold()` it (a worker's boot takes a core, and on a 2-core
  /// machine it tripled the first frame's solve), or `deferMs` with none running.
  static start(model, count, declaration, build, module, deferMs = 0) {
    const pool = new CpuPool(model.slice(), count, declaration ?? undefined, build, module);
    if (deferMs > 0) pool.bootTimer = setTimeout(() => { if (pool.holds === 0) pool.boot(); }, deferMs);
    else pool.boot();
    return pool;
  }

  /// Boots the workers (once).
  boot() {
    clearTimeout(this.bootTimer);
    this.started ??= this.spawn().then(() => {
      this.up = true;
      // When the workers are up, not when the sampler gets to them (the first-frame breakdown).
      globalThis.performance?.mark?.('pushforward:workers-ready');
    }, (e) => {
      this.failure = e instanceof Error ? e : new Error(String(e));
      this.terminate();
    });
    return this.started;
  }

  /// A page-thread solve runs: a deferred boot waits for its `release()`.
  hold() { this.holds++; }

  release() {
    this.holds = Math.max(0, this.holds - 1);
    if (this.holds === 0 && !this.disposed) this.boot();
  }

  /// 'starting' until the first workers are up, then 'ready'; or why they could not start.
  state() {
    return this.failure?.message ?? (this.up ? 'ready' : 'starting');
  }

  /// Why requests are refused once the pool has stopped.
  gone() {
    return this.failure ?? disposed();
  }

  /// Starts the missing workers. Idempotent: a call while a spawn is in flight waits for that
  /// one instead of starting more.
  spawn() {
    if (this.disposed) return Promise.reject(this.gone());
    if (this.workers.length >= this.count) return Promise.resolve();
    this.spawning ??= (async () => {
      const missing = this.count - this.workers.length;
      const started = await Promise.allSettled(Array.from({ length: missing }, () => this.startWorker()));
      // Workers that started are kept even if another failed: the next call starts the rest.
      for (const s of started) if (s.status === 'fulfilled' && !s.value.dead) this.workers.push(s.value);
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) throw failed.reason;
    })().finally(() => { this.spawning = null; });
    return this.spawning;
  }

  async startWorker() {
    let w;
    try {
      w = new PoolWorker((dead) => {
        this.starting.delete(dead);
        this.workers = this.workers.filter((x) => x !== dead);
      });
    } catch (e) {
      throw new Error(`cannot start a worker: ${e.message || e}`);
    }
    this.spawned++;
    this.starting.add(w);
    try {
      const init = { model: this.model, declaration: this.declaration, build: this.build, module: this.module };
      await w.request('init', init).catch((e) => {
        // A browser that cannot post a compiled module (DataCloneError): the worker loads it.
        // (Tested against what this init posted: workers starting together all get here.)
        if (e?.name !== 'DataCloneError' || !init.module) throw e;
        this.module = undefined;
        return w.request('init', { ...init, module: undefined });
      });
    } catch (e) {
      w.kill(e);
      throw e;
    }
    this.starting.delete(w);
    if (this.disposed) w.kill(disposed());
    return w;
  }

  size() { return this.count; }

  /// For tests: ready workers, workers ever started, requests waiting.
  stats() {
    return { workers: this.workers.length, spawned: this.spawned, queued: this.queue.length };
  }

  /// Solves `opts` (plain data, as `sample()` takes) for `n` rows over the workers. Resolves
  /// with { samples, labels, frames: [{ t, data }], nfe, acceptedSteps, rejectedSteps }.
  /// Requests run one at a time, in call order.
  solve(opts, n, minRows, onProgress, signal) {
    if (this.disposed) return Promise.reject(this.gone());
    if (signal?.aborted) return Promise.reject(cancelled());
    return new Promise((resolve, reject) => {
      const req = { opts, n, minRows, onProgress, signal, resolve, reject, workers: [], settled: false };
      req.onAbort = () => this.abort(req);
      signal?.addEventListener('abort', req.onAbort, { once: true });
      this.queue.push(req);
      this.pump();
    });
  }

  /// Settles a request once (later outcomes, e.g. a reply after a cancel, are dropped).
  finish(req, error, result) {
    if (req.settled) return;
    req.settled = true;
    req.signal?.removeEventListener('abort', req.onAbort);
    if (error) req.reject(error);
    else req.resolve(result);
  }

  abort(req) {
    const queued = this.queue.indexOf(req);
    if (queued >= 0) this.queue.splice(queued, 1);
    this.finish(req, cancelled());
    // Only the workers still solving this request; their replacements start on the next call.
    for (const w of req.workers) if (w.busy) w.kill(cancelled());
  }

  pump() {
    if (this.running || this.queue.length === 0) return;
    const req = this.queue.shift();
    this.running = req;
    this.run(req).finally(() => {
      this.running = null;
      this.pump();
    });
  }

  /// Runs one request; never rejects (the outcome goes to the request's promise).
  async run(req) {
    try {
      this.boot();
      await this.spawn();
      if (req.settled) return; // cancelled or disposed while the workers started
      if (this.workers.length === 0) throw new Error('no CPU worker is running');
      // Adaptive steps differ between row ranges, so their trajectory frames would not line up.
      // Solver names are case-insensitive, as in Rust.
      const adaptive = String(req.opts.solver ?? '').toLowerCase() === 'dopri5';
      const k = adaptive && req.opts.trajectories ? 1 : this.workers.length;
      const ranges = split(req.n, k, req.minRows);
      req.workers = this.workers.slice(0, ranges.length);
      const progress = ranges.map(() => null);
      const report = () => {
        if (typeof req.onProgress !== 'function' || progress.some((p) => p === null)) return;
        // The slowest worker's position is the request's.
        const slowest = progress.reduce((a, b) => (b.step < a.step ? b : a));
        req.onProgress({ ...slowest });
      };
      const parts = ranges.map(([start, end], i) =>
        req.workers[i].request('solve', { opts: req.opts, start, end }, (p) => { progress[i] = p; report(); }));
      let results;
      try {
        results = await Promise.all(parts);
      } catch (e) {
        // One part failed: the others' results are of no use, and a worker still solving would
        // hold up the next request. Stop them (they are started again on the next call).
        for (const w of req.workers) if (w.busy) w.kill(e);
        throw e;
      }
      this.finish(req, null, merge(results, ranges));
    } catch (e) {
      this.finish(req, e instanceof Error ? e : new Error(String(e)));
    }
  }

  /// Disposes the pool: every request running or queued rejects with 'the sampler was
  /// disposed', the workers stop, and later calls reject the same way. Idempotent.
  terminate() {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.bootTimer);
    for (const req of this.queue.splice(0)) this.finish(req, this.gone());
    if (this.running) this.finish(this.running, this.gone());
    for (const w of [...this.workers, ...this.starting]) w.kill(this.gone());
    this.workers = [];
  }
}

/// Concatenates the workers' row ranges (in order) into one result.
function merge(parts, ranges) {
  const cat = (arrays, Type) => {
    const out = new Type(arrays.reduce((s, a) => s + a.length, 0));
    let at = 0;
    for (const a of arrays) { out.set(a, at); at += a.length; }
    return out;
  };
  // Frames are kept for the leading rows only (the drawn paths, unless every path was asked
  // for): the workers past them return none.
  const kept = parts.filter((p) => p.frames.length > 0);
  const frames = (kept[0]?.frames ?? []).map((f, i) => ({ t: f.t, data: cat(kept.map((p) => p.frames[i].data), Float32Array) }));
  // NFE is per sample path, not summed: on a fixed grid every worker reports the same numbers.
  // An adaptive solve's steps differ between workers; the counts are those of the worker with
  // the most evaluations, all three from that one worker so that they stay consistent
  // (Dopri5: nfe = 2 + 6·(accepted + rejected)) — per-field maxima could mix two workers.
  const slowest = parts.reduce((a, b) => (b.nfe > a.nfe ? b : a));
  return {
    samples: cat(parts.map((p) => p.samples), Float32Array),
    labels: cat(parts.map((p) => p.labels), Uint32Array),
    frames,
    nfe: slowest.nfe,
    acceptedSteps: slowest.acceptedSteps,
    rejectedSteps: slowest.rejectedSteps,
    // Each worker's rows, time spent solving them, and (with `profile`) its kernel times.
    workers: parts.map((p, i) => ({ start: ranges[i][0], end: ranges[i][1], busyMs: p.busyMs, kernels: p.kernels })),
  };
}

if (IN_WORKER) {
  let sampler = null;
  let warmUp = null;
  const post = (m, transfer) => globalThis.postMessage(m, transfer ?? []);
  // A rejection nobody awaits (e.g. inside the bindings) would otherwise leave a request
  // unanswered: report it, and the pool replaces this worker.
  globalThis.addEventListener('unhandledrejection', (e) => {
    post({ type: 'fatal', message: String(e.reason?.message ?? e.reason) });
  });
  // Not a top-level await: the bindings import this module, and a cycle through a module that
  // is still awaiting would never finish loading. One handler for every message; each reply
  // carries the id of the request it answers.
  globalThis.onmessage = async (e) => {
    const m = e.data;
    try {
      if (m.type === 'init') {
        // A literal specifier (this file lives in pkg/snippets/<crate>/src/): bundlers follow it.
        const glue = await import('../../../pushforward.js');
        // The bindings' default path picks the build by this (scripts/choose-wasm-build.mjs).
        if (m.build) globalThis.PUSHFORWARD_WASM_BUILD = m.build;
        await glue.default(m.module ? { module_or_path: m.module } : undefined);
        sampler = await glue.Sampler.create({ model: m.model, declaration: m.declaration, backend: 'cpu', workers: 0 });
        post({ id: m.id, type: 'done', result: null });
        // Warm-up, after the reply so that it delays nothing: one network evaluation on a few
        // rows runs every kernel a solve uses, so V8 compiles them with its optimising tier
        // (in the background) before the first request, instead of running that one on its
        // baseline code (measured: the demo's first solve 150-240 ms, later ones 90-100 ms).
        // A request waits for it (a few ms), so that it never shares this instance's profile.
        // Not with the page's compiled module: its optimised code is shared with the page's
        // thread, which solves the first small request meanwhile, and the warm-up would only
        // take a core from that solve (demo, 2 cores, 2 × 10 interleaved cold loads: first
        // frame median 734/777 → 588/689 ms).
        warmUp = m.module ? null : (async () => {
          const rows = sampler.info().config.data.kind === 'image' ? 1 : 256;
          await sampler.solveRows({ n: rows, steps: 1, solver: 'euler' }, 0, rows);
        })().catch(() => {});
      } else if (m.type === 'solve') {
        await warmUp;
        const onProgress = (progress) => post({ id: m.id, type: 'progress', progress });
        const result = await sampler.solveRows({ ...m.opts, onProgress }, m.start, m.end);
        const transfer = [result.samples.buffer, result.labels.buffer, ...result.frames.map((f) => f.data.buffer)];
        post({ id: m.id, type: 'done', result }, transfer);
      } else {
        throw new Error(`unknown request ${String(m.type)}`);
      }
    } catch (err) {
      // A wasm trap leaves this instance unusable: `fatal` makes the pool replace the worker.
      post({ id: m.id, type: 'error', message: String(err?.message ?? err), fatal: err instanceof WebAssembly.RuntimeError });
    }
  };
}
