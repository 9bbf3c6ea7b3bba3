// Types of the pushforward JS API (the wasm-bindgen bindings, whose generated types say `any`
// for every option object). Kept beside the bindings' source: src/web/ and src/options.rs
// define each option and field named here; tests/package.test.mjs type-checks an app against
// this file with `tsc --strict`.

/** Where a sampler runs: `auto` picks WebGPU on a real GPU and the wasm CPU kernels otherwise. */
export type Backend = 'auto' | 'webgpu' | 'cpu';
export type Solver = 'euler' | 'midpoint' | 'heun' | 'rk4' | 'ab2' | 'dopri5';

/** `{ phase: 'download', loaded, total }` while the model downloads (`total`: null when the server does not say). */
export interface DownloadProgress {
  phase: 'download';
  loaded: number;
  total: number | null;
  /** True when the bytes came from the kept copy (no download). */
  cached?: boolean;
}

/** One solver step done: `totalSteps` is null for the adaptive Dopri5. */
export interface SolveProgress {
  step: number;
  totalSteps: number | null;
  t: number;
  nfe: number;
}

export interface CreateOptions {
  /** A URL (relative to the page) or the file's bytes: `.safetensors` (with its JSON config) or `.onnx`. */
  model: string | URL | Uint8Array | ArrayBuffer;
  /** Where samples are drawn; without one, `sample` still returns samples (`returnSamples`). */
  canvas?: HTMLCanvasElement;
  backend?: Backend;
  /** CPU workers (0: the page thread); default: the cores, at most 8. */
  workers?: number;
  /** What an `.onnx` file is (JSON text or object) when its metadata does not say: see the ONNX guide. */
  declaration?: string | Record<string, unknown>;
  /** The largest GPU buffer binding to use (bytes); default: the device's limit. */
  maxBindingBytes?: number;
  /** Refuse a download larger than this (bytes). */
  maxDownloadBytes?: number;
  /** Give up a download with no complete answer after this long (ms). */
  downloadTimeoutMs?: number;
  /**
   * A model fetched by URL is kept (browser Cache API, else this page's memory) and loads from
   * there next time: `true` (default: no request when kept), `'revalidate'` (a conditional
   * request with its ETag; the kept copy on 304), `false` (neither read nor kept).
   */
  cache?: boolean | 'use' | 'revalidate';
  /** For tests of `auto`'s start: the adapter's answer comes this much later (ms). */
  testAdapterDelayMs?: number;
  /** For tests of `auto`'s start: a software adapter counts as hardware. */
  testFallbackAsHardware?: boolean;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
}

export interface SampleOptions {
  /** Number of samples (points, or images). */
  n?: number;
  solver?: Solver;
  /** Steps of the fixed-step solvers. */
  steps?: number;
  /** Dopri5 tolerances. */
  rtol?: number;
  atol?: number;
  /** Dopri5 step budget. */
  maxSteps?: number;
  seed?: number;
  /** Classifier-free guidance scale (class-conditional models). */
  guidance?: number;
  /** Guidance applies for t (0 noise, 1 data) in [guidanceFrom, guidanceTo]; elsewhere the plain conditional velocity (one network pass). Default 0 and 1. */
  guidanceFrom?: number;
  guidanceTo?: number;
  /** CFG-Zero*'s optimised scale: v = s·v_u + w·(v_c − s·v_u), s = ⟨v_c, v_u⟩/‖v_u‖² per sample. */
  cfgZeroStar?: boolean;
  /** CFG-Zero*'s zero-init: the first k steps keep the noise (fixed-step solvers; k < steps). */
  zeroInitSteps?: number;
  /** SDE noise level (Euler–Maruyama; with `solver: 'euler'`). */
  noise?: number;
  /** A class 0..K−1, `'all'` to cycle through the classes, K or null for the unconditional model. */
  label?: number | 'all' | null;
  /** Keep the paths for drawing: `true` (the drawn rows) or `'all'` (every row). */
  trajectories?: boolean | 'all';
  /** Resolve with `samples` and `labels`. */
  returnSamples?: boolean;
  /** CPU backend: time every kernel and each worker's share (`SampleResult.profile`). */
  profile?: boolean;
  onProgress?: (p: SolveProgress) => void;
  signal?: AbortSignal;
}

export interface SampleResult {
  backend: 'webgpu' | 'cpu';
  nfe: number;
  acceptedSteps: number;
  rejectedSteps: number;
  sampleMs: number;
  drawMs: number;
  n: number;
  /** Image models drawn on a canvas: where the grid is (sample k in column k % cols, row ⌊k / cols⌋; cells include a gutter). */
  grid?: { cols: number; rows: number; x: number; y: number; cellWidth: number; cellHeight: number };
  /** With `returnSamples`: n × (2 | C·H·W) values, row by row. */
  samples?: Float32Array;
  labels?: Uint32Array;
  /** With `profile` on the CPU backend: each kernel's calls and summed wall time over all
   *  workers (slowest first), and each worker's rows and time spent solving them. */
  profile?: {
    kernels: { name: string; calls: number; ms: number }[];
    workers: { start: number; end: number; busyMs: number }[];
  };
}

export interface DensityOptions {
  resolution?: number;
  steps?: number;
}

export interface DensityResult {
  /** log p(x) on the grid, top row first. */
  logDensity: Float32Array;
  width: number;
  height: number;
  /** Σ p · cell area over the plot box (≈ 1 when the box holds the distribution). */
  integral: number;
  ms: number;
}

export interface PathsResult {
  times: Float32Array;
  /** [times.length][n][2], flattened. */
  paths: Float32Array;
}

export interface ModelInfo {
  /** The model's config as stored in its file (arch, data, provenance, …). */
  config: Record<string, unknown> & {
    arch: { kind: string };
    num_classes: number;
    /** One display name per class, in label order, when the file names them (e.g. the emoji categories). */
    class_names?: string[];
  };
  parameters: number;
  backend: 'webgpu' | 'cpu';
  /** The GPU adapter's name, or the CPU's description. */
  adapter: string;
  /** Why this backend was chosen. */
  backendReason: string;
  /** Which wasm build runs: `relaxed` (relaxed-SIMD multiply-adds) or `simd128`. */
  wasmBuild: 'relaxed' | 'simd128';
  /** Where the model's bytes came from. */
  modelSource: 'network' | 'cache' | 'memory' | 'bytes';
  /** Where they are kept for the next load (`off`: `cache: false`). */
  modelKept: 'cache' | 'memory' | 'none' | 'off';
  /** Why, in words (e.g. why storage was refused). */
  modelKeptNote: string;
}

/** Every `sample()` option's default and bounds for this model. */
export interface SampleDefaults {
  n: number;
  solver: Solver;
  steps: number;
  solvers: Solver[];
  limits: Record<string, [number, number]>;
  [option: string]: unknown;
}

export interface SamplerStats {
  gpuBuffersLive: number;
  gpuBuffersCreated: number;
  gpuBuffersReused: number;
  wasmMemoryBytes: number;
  disposed: boolean;
}

/**
 * A model loaded into a backend. `create`, `sample` and `animate` take a `signal`; a call
 * cancelled by it rejects with "sampling was cancelled", and after `dispose()` every call
 * rejects with "the sampler was disposed". Errors are `Error`s whose message names the cause
 * (a bad option names the option and its allowed range).
 */
export class Sampler {
  private constructor();
  static create(opts: CreateOptions): Promise<Sampler>;
  /** How many WebGPU devices this page has opened (all samplers share one). */
  static webgpuDevicesOpened(): number;
  /** Forgets the kept copy of the model at `url` (or of every model): the next load downloads. */
  static clearModelCache(url?: string): Promise<void>;
  sample(opts?: SampleOptions): Promise<SampleResult>;
  /** Re-solves the last request keeping every step, then plays noise → data over `duration` ms. */
  animate(opts?: { duration?: number; signal?: AbortSignal }): Promise<void>;
  /** Draws the last solve at time t ∈ [0, 1]. */
  drawAt(t: number): void;
  /** The log-density on a grid (2-D models), drawn under the samples from then on. */
  density(opts?: DensityOptions): Promise<DensityResult>;
  clearDensity(): void;
  /** Paths from chosen noise points [x0, y0, x1, y1, …] (2-D models). */
  pathsFrom(points: Float32Array | number[], opts?: { solver?: Solver; steps?: number }): Promise<PathsResult>;
  /** v(x, t) at the cell centres of a resolution² grid, [resolution²][2] flattened. */
  velocityField(opts?: { t?: number; resolution?: number }): Promise<Float32Array>;
  info(): ModelInfo;
  defaults(): SampleDefaults;
  stats(): SamplerStats;
  /** Frees everything and cancels the call in flight. Idempotent. */
  dispose(): void;
  free(): void;
  /**
   * The canvas drawn on. A fresh one takes the given canvas's place in the page when the
   * backend changes: a CPU fallback after a lost device needs a 2-D context, and with `auto` a
   * 2-D model starts on the CPU and moves to a hardware WebGPU adapter that answers later (at
   * the next `sample()`). Read it again after `sample()`.
   */
  readonly canvas: HTMLCanvasElement | undefined;
}

export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

/** Loads and instantiates the wasm (once; later calls return at once). Call before `Sampler.create`. */
export default function init(opts?: { module_or_path?: InitInput | Promise<InitInput> }): Promise<unknown>;
