// Unsigned LEB128, the wasm binary format's integer encoding: shared by the build's wasm
// rewriters (scripts/shorten-imports.mjs, scripts/order-functions.mjs).

/// The value at `pos` and the position after it.
export function leb(buf, pos) {
  let result = 0, shift = 0, byte;
  do {
    byte = buf[pos++];
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [result, pos];
}

export function encodeLeb(n) {
  const out = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return Buffer.from(out);
}
