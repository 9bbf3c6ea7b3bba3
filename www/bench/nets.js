// What every runner shares about the networks: the weights file, the FLOP count, the time
// embedding. Definitions as in ARCHITECTURE.md (MLP and U-Net sections).

/** A pushforward .safetensors file → { cfg, tensors: { name: { shape, data: Float32Array } } }. */
export function parseSafetensors(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const cfg = JSON.parse(header.__metadata__.pushforward);
  const tensors = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (info.dtype !== 'F32') throw new Error(`${name}: ${info.dtype} (the bench reads F32 files)`);
    const [s, e] = info.data_offsets;
    tensors[name] = { shape: info.shape, data: new Float32Array(bytes.slice(8 + n + s, 8 + n + e).buffer) };
  }
  return { cfg, tensors };
}

/** The U-Net's levels: channels per level, and what each block / resampler sees (ARCHITECTURE.md). */
export function unetPlan(arch) {
  const base = arch.base_channels;
  const ch = arch.channel_mult.map((m) => base * m);
  const L = ch.length;
  const down = [], up = [];
  let prev = base;
  for (let i = 0; i < L; i++) {
    const blocks = [];
    for (let j = 0; j < arch.num_res_blocks; j++) blocks.push({ cin: j === 0 ? prev : ch[i], cout: ch[i], name: `down.${i}.blocks.${j}` });
    prev = ch[i];
    down.push({ blocks, downsample: i < L - 1 ? `down.${i}.downsample` : null, ch: ch[i] });
  }
  for (let i = L - 1; i >= 0; i--) {
    const chH = i === L - 1 ? ch[L - 1] : ch[i + 1];
    const blocks = [];
    for (let j = 0; j < arch.num_res_blocks; j++) blocks.push({ cin: j === 0 ? chH + ch[i] : ch[i], cout: ch[i], name: `up.${i}.blocks.${j}` });
    up.push({ level: i, blocks, upsample: i > 0 ? `up.${i}.upsample` : null, ch: ch[i] });
  }
  return { base, ch, L, T: 4 * base, down, mid: { cin: ch[L - 1], cout: ch[L - 1], name: 'mid' }, up };
}

/** FLOPs (2·multiply-adds of the linear layers and convolutions) of one network row. */
export function flopsPerRow(cfg) {
  const a = cfg.arch;
  if (a.kind === 'mlp') {
    const dims = [a.data_dim + a.time_embed_dim, ...Array(a.depth).fill(a.width), a.data_dim];
    let macs = 0;
    for (let i = 1; i < dims.length; i++) macs += dims[i - 1] * dims[i];
    return 2 * macs;
  }
  const p = unetPlan(a);
  const C = a.in_channels;
  let hw = cfg.data.height * cfg.data.width;
  let macs = p.base * p.T + p.T * p.T; // time MLP (per row: it runs once per image here)
  const conv = (cin, cout, k, px) => cin * cout * k * k * px;
  const block = (b, px) => conv(b.cin, b.cout, 3, px) + conv(b.cout, b.cout, 3, px) + p.T * b.cout + (b.cin !== b.cout ? conv(b.cin, b.cout, 1, px) : 0);
  macs += conv(C, p.base, 3, hw);
  for (const lvl of p.down) {
    for (const b of lvl.blocks) macs += block(b, hw);
    if (lvl.downsample) { hw /= 4; macs += conv(lvl.ch, lvl.ch, 3, hw); }
  }
  macs += block(p.mid, hw);
  for (const lvl of p.up) {
    for (const b of lvl.blocks) macs += block(b, hw);
    if (lvl.upsample) { hw *= 4; macs += conv(lvl.ch, lvl.ch, 3, hw); }
  }
  macs += conv(p.ch[0], C, 3, hw);
  return 2 * macs;
}

/** timestep_embedding(t, dim, time_scale) for one t: [cos(a_0..), sin(a_0..)], a_i = (s·t)·f_i. */
export function timeEmbedding(t, dim, scale) {
  const half = dim / 2;
  const e = new Float32Array(dim);
  for (let i = 0; i < half; i++) {
    const a = Math.fround(Math.fround(scale * t) * Math.fround(Math.exp((-Math.log(10000) * i) / half)));
    e[i] = Math.cos(a);
    e[half + i] = Math.sin(a);
  }
  return e;
}
