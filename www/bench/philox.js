// pushforward's initial noise in JS, bit for bit: Philox4x32-10 + Box–Muller with the f32
// ln / sin / cos formulas of kernels/src/rng.rs (every f32 operation rounded with Math.fround, so the
// numbers are the ones the wasm CPU backend draws). The benchmark hands these to the peers so
// every library integrates from identical x0. Index i of the stream is element i of the
// row-major [n, ...] tensor x0 (the sampler's STREAM_INIT = 0).
const f = Math.fround;
const M0 = 0xd2511f53, M1 = 0xcd9e8d57, W0 = 0x9e3779b9, W1 = 0xbb67ae85;
const INV_2_24 = f(1 / 16777216);
const TAU = f(2 * Math.PI);
const scratch = new DataView(new ArrayBuffer(4));

/** [hi, lo] of the 64-bit product of two u32 (exact, in doubles). */
function mulhilo(a, b) {
  const ah = a >>> 16, al = a & 0xffff, bh = b >>> 16, bl = b & 0xffff;
  const mid = ah * bl + al * bh; // < 2^33
  const low = mid * 65536 + al * bl; // < 2^50: exact
  const hi = (ah * bh + Math.floor(low / 4294967296)) >>> 0;
  return [hi, Math.imul(a, b) >>> 0];
}

export function philox4x32_10(c0, c1, c2, c3, k0, k1) {
  for (let r = 0; r < 10; r++) {
    if (r > 0) { k0 = (k0 + W0) >>> 0; k1 = (k1 + W1) >>> 0; }
    const [hi0, lo0] = mulhilo(M0, c0);
    const [hi1, lo1] = mulhilo(M1, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

function lnF32(u) {
  scratch.setFloat32(0, u, true);
  const bits = scratch.getUint32(0, true);
  let e = ((bits >>> 23) & 0xff) - 127;
  scratch.setUint32(0, ((bits & 0x007fffff) | 0x3f800000) >>> 0, true);
  let m = scratch.getFloat32(0, true);
  if (m > f(1.4142135)) { m = f(m * 0.5); e += 1; }
  const s = f(f(m - 1) / f(m + 1));
  const s2 = f(s * s);
  let p = f(1 / 13);
  for (const c of [1 / 11, 1 / 9, 1 / 7, 1 / 5, 1 / 3]) p = f(f(c) + f(s2 * p));
  const poly = f(s2 * p);
  const fe = f(e);
  return f(f(fe * f(0.69314575)) + f(f(fe * f(1.4286068e-6)) + f(2 * f(s + f(s * poly)))));
}

function roundTiesEven(v) {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 ? 2 * Math.round(v / 2) : r;
}

function sincosF32(theta) {
  const k = roundTiesEven(f(theta * f(0.63661977)));
  const x = f(f(theta - f(k * f(1.5703125))) - f(k * f(4.8382679e-4)));
  const x2 = f(x * x);
  let ps = f(-1 / 39916800);
  for (const c of [1 / 362880, -1 / 5040, 1 / 120, -1 / 6]) ps = f(f(c) + f(x2 * ps));
  const s = f(x + f(f(x * x2) * ps));
  let pc = f(1 / 479001600);
  for (const c of [-1 / 3628800, 1 / 40320, -1 / 720, 1 / 24, -0.5]) pc = f(f(c) + f(x2 * pc));
  const c = f(1 + f(x2 * pc));
  switch (k & 3) {
    case 0: return [c, s];
    case 1: return [-s, c];
    case 2: return [-c, -s];
    default: return [s, -c];
  }
}

function boxMuller(ra, rb) {
  const u1 = f(((ra >>> 8) + 1) * INV_2_24);
  const u2 = f((rb >>> 8) * INV_2_24);
  const r = f(Math.sqrt(f(-2 * lnF32(u1))));
  const [c, s] = sincosF32(f(TAU * u2));
  return [f(r * c), f(r * s)];
}

/** normals(seed, len): elements 0..len of stream 0 (x0) under an integer seed < 2^32. */
export function normals(seed, len, stream = 0) {
  const out = new Float32Array(len);
  const k0 = seed >>> 0, k1 = Math.floor(seed / 4294967296) >>> 0;
  for (let block = 0; 4 * block < len; block++) {
    const r = philox4x32_10(block >>> 0, Math.floor(block / 4294967296) >>> 0, stream, 0, k0, k1);
    const [a, b] = boxMuller(r[0], r[1]);
    const [c, d] = boxMuller(r[2], r[3]);
    const vals = [a, b, c, d];
    for (let j = 0; j < 4 && 4 * block + j < len; j++) out[4 * block + j] = vals[j];
  }
  return out;
}
