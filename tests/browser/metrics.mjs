// Sample-quality metric of the browser tests, a copy of src/metrics.rs (checked against closed
// forms by tests/node/metrics.test.mjs). No browser or package imports: Node loads it directly.

/** Sliced W2 exactly as src/metrics.rs and train/evaluate.py define it (128 angles πk/128). */
export function slicedW2(a, b) {
  if (a.length !== b.length || a.length === 0 || a.length % 2 !== 0) throw new Error('sets must be equal-sized, non-empty lists of 2-D points');
  const n = a.length / 2;
  const L = 128;
  const pa = new Float64Array(n), pb = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < L; k++) {
    const th = (Math.PI * k) / L, c = Math.cos(th), s = Math.sin(th);
    for (let i = 0; i < n; i++) { pa[i] = a[2 * i] * c + a[2 * i + 1] * s; pb[i] = b[2 * i] * c + b[2 * i + 1] * s; }
    pa.sort(); pb.sort(); // typed arrays sort numerically (not as strings, as plain arrays do)
    let acc = 0;
    for (let i = 0; i < n; i++) acc += (pa[i] - pb[i]) ** 2;
    total += acc / n;
  }
  return Math.sqrt(total / L);
}
