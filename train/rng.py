"""pushforward's seeded noise (kernels/src/rng.rs) in NumPy, bit for bit.

Philox4x32-10 (Random123) on counter (block lo, block hi, stream, 0) with key (seed lo, seed hi),
then Box–Muller in float32 with the crate's own f32 `ln` and `sin`/`cos` formulas
(`ln_f32`, `sincos_f32` in kernels/src/rng.rs, written operation for operation in the same order; every
operation is a float32 NumPy operation, so each one rounds as Rust's f32 does). Element `e` of a
stream is lane `e % 4` of block `e // 4`; lanes (0, 1) use output words (0, 1), lanes (2, 3) use
words (2, 3); the even lane is r·cos θ, the odd lane r·sin θ.

The sampler's initial noise x0 [n, ...shape] is `initial_noise(seed, n, shape)`: sample i, value j
is element i·len + j of stream STREAM_INIT (`Sampler::initial_noise` in src/sampler.rs).

    pushforward-rng-check    # self-check: Philox known answers, float64 Box–Muller, and
                             # (if node is installed) bit equality with www/bench/philox.js
"""

import numpy as np

STREAM_INIT = 0
STREAM_SDE = 1

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = np.uint32(0x9E3779B9)
W1 = np.uint32(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_F = np.float32


def _mulhilo(m, c):
    p = m * c.astype(np.uint64)
    return (p >> np.uint64(32)).astype(np.uint32), (p & _MASK32).astype(np.uint32)


def philox4x32_10(counter, key):
    """counter: 4 uint32 arrays (broadcastable), key: 2 uint32 scalars -> 4 uint32 arrays."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint32) for c in counter)
    k0, k1 = np.uint32(key[0]), np.uint32(key[1])
    with np.errstate(over="ignore"):
        for r in range(10):
            if r > 0:
                k0 = np.uint32((int(k0) + int(W0)) & 0xFFFFFFFF)
                k1 = np.uint32((int(k1) + int(W1)) & 0xFFFFFFFF)
            hi0, lo0 = _mulhilo(M0, c0)
            hi1, lo1 = _mulhilo(M1, c2)
            c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def _div(a, b):
    return _F(a) / _F(b)  # Rust's `a / b` on f32 literals: one correctly rounded f32 division


# f32 constants exactly as kernels/src/rng.rs spells them
_LN2_HI = _F(0.693_145_75)
_LN2_LO = _F(1.428_606_8e-6)
_SQRT2 = _F(1.414_213_5)
_LN_C = [_div(1, 3), _div(1, 5), _div(1, 7), _div(1, 9), _div(1, 11), _div(1, 13)]
_TWO_OVER_PI = _F(0.636_619_77)
_PIO2_HI = _F(1.570_312_5)
_PIO2_LO = _F(4.838_267_9e-4)
_SIN_C = [_div(-1, 6), _div(1, 120), _div(-1, 5040), _div(1, 362_880), _div(-1, 39_916_800)]
_COS_C = [_F(-0.5), _div(1, 24), _div(-1, 720), _div(1, 40320), _div(-1, 3_628_800), _div(1, 479_001_600)]
_TAU = _F(6.2831855)  # std::f32::consts::TAU
_INV_2_24 = _div(1, 16_777_216)


def _horner(z, coeffs):
    """c0 + z·(c1 + z·(c2 + …)) evaluated innermost first, as the nested Rust expression."""
    acc = np.full_like(z, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = c + z * acc
    return acc


def ln_f32(u):
    """kernels/src/rng.rs `ln_f32` for normal u > 0 (float32 array)."""
    u = np.asarray(u, dtype=np.float32)
    bits = u.view(np.uint32)
    e = ((bits >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int32) - 127
    m = ((bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000)).view(np.float32)
    big = m > _SQRT2
    m = np.where(big, m * _F(0.5), m)
    e = e + big.astype(np.int32)
    s = (m - _F(1)) / (m + _F(1))
    s2 = s * s
    poly = s2 * _horner(s2, _LN_C)
    fe = e.astype(np.float32)
    return fe * _LN2_HI + (fe * _LN2_LO + _F(2) * (s + s * poly))


def sincos_f32(theta):
    """kernels/src/rng.rs `sincos_f32` for θ ∈ [0, 2π] (float32 array) -> (cos θ, sin θ)."""
    theta = np.asarray(theta, dtype=np.float32)
    k = np.rint(theta * _TWO_OVER_PI)  # round half to even, like round_ties_even
    x = (theta - k * _PIO2_HI) - k * _PIO2_LO
    x2 = x * x
    s = x + x * x2 * _horner(x2, _SIN_C)
    c = _F(1) + x2 * _horner(x2, _COS_C)
    q = k.astype(np.int32) & 3
    cos = np.select([q == 0, q == 1, q == 2], [c, -s, -c], s)
    sin = np.select([q == 0, q == 1, q == 2], [s, c, -s], -c)
    return cos.astype(np.float32), sin.astype(np.float32)


def _box_muller(ra, rb):
    u1 = ((ra >> np.uint32(8)) + np.uint32(1)).astype(np.float32) * _INV_2_24
    u2 = (rb >> np.uint32(8)).astype(np.float32) * _INV_2_24
    r = np.sqrt(_F(-2) * ln_f32(u1))
    c, s = sincos_f32(_TAU * u2)
    return r * c, r * s


def normals(seed, stream, start, count):
    """Elements start .. start+count of `stream` under `seed` (float32), as rng::fill_normal."""
    seed = int(seed)
    key = (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)
    first, last = start // 4, (start + count + 3) // 4
    block = np.arange(first, last, dtype=np.uint64)
    lo = (block & _MASK32).astype(np.uint32)
    hi = (block >> np.uint64(32)).astype(np.uint32)
    zero = np.zeros_like(lo)
    r = philox4x32_10((lo, hi, zero + np.uint32(stream), zero), key)
    a, b = _box_muller(r[0], r[1])
    c, d = _box_muller(r[2], r[3])
    flat = np.stack([a, b, c, d], axis=1).reshape(-1)
    off = start - 4 * first
    return flat[off : off + count].astype(np.float32)


def initial_noise(seed, n, shape):
    """x0 [n, *shape]: Sampler::initial_noise(n, seed) of the Rust crate."""
    shape = tuple(int(s) for s in shape)
    per = int(np.prod(shape))
    return normals(seed, STREAM_INIT, 0, n * per).reshape((n,) + shape)


# Random123 known answers (tests/rng.rs KAT)
_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def self_check(verbose=True):
    import math
    import os
    import shutil
    import subprocess

    for ctr, key, want in _KAT:
        got = tuple(int(v[0]) for v in philox4x32_10([np.array([c], dtype=np.uint32) for c in ctr], key))
        assert got == want, (ctr, key, got, want)
    # float64 Box–Muller on the same words (tests/rng.rs `reference`)
    seeds, streams = [0, 1, 0xDEADBEEF, 0x123456789ABCDEF0, 2**64 - 1], [0, 1, 7, 2**32 - 1]
    worst = 0.0
    for seed in seeds:
        for stream in streams:
            for e in [0, 1, 2, 3, 5, 1023, (1 << 34) + 6, 2**64 - 1]:
                got = float(normals(seed, stream, e, 1)[0])
                blk = e // 4
                w = philox4x32_10([np.array([v], dtype=np.uint32) for v in
                                   (blk & 0xFFFFFFFF, blk >> 32, stream, 0)],
                                  (seed & 0xFFFFFFFF, seed >> 32))
                lane = e % 4
                ra, rb = int(w[lane & ~1][0]), int(w[(lane & ~1) + 1][0])
                u1 = ((ra >> 8) + 1) / 16_777_216.0
                u2 = (rb >> 8) / 16_777_216.0
                rr, th = math.sqrt(-2 * math.log(u1)), 2 * math.pi * u2
                want = rr * (math.cos(th) if lane % 2 == 0 else math.sin(th))
                worst = max(worst, abs(got - want) / (1 + abs(want)))
    assert worst < 4e-6, worst
    # the formulas over a dense range vs float64 libm
    u = (np.arange(1, 1 << 24, 97, dtype=np.float64) / (1 << 24)).astype(np.float32)
    ln_err = np.abs(ln_f32(u).astype(np.float64) - np.log(u.astype(np.float64))).max()
    th = (np.arange(0, 1 << 24, 97, dtype=np.float64) / (1 << 24)).astype(np.float32) * _TAU
    c, s = sincos_f32(th)
    sc_err = max(np.abs(c - np.cos(th.astype(np.float64))).max(), np.abs(s - np.sin(th.astype(np.float64))).max())
    assert ln_err < 2e-6 and sc_err < 2e-6, (ln_err, sc_err)
    msg = f"rng.py: Philox KATs ok; vs float64 Box–Muller rel err {worst:.1e}; ln {ln_err:.1e}, sincos {sc_err:.1e}"
    # bit equality with the JS port (www/bench/philox.js), if node is here
    js = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "www", "bench", "philox.js")
    if shutil.which("node") and os.path.exists(js):
        n = 4 * 7840 + 3
        src = (f"import {{ normals }} from {js!r}; const v = normals(3, {n});"
               "process.stdout.write(Buffer.from(v.buffer).toString('hex'));")
        out = subprocess.run(["node", "--input-type=module", "-e", src], capture_output=True, text=True, check=True)
        theirs = np.frombuffer(bytes.fromhex(out.stdout), dtype="<f4")
        ours = normals(3, STREAM_INIT, 0, n)
        diff = int(np.count_nonzero(theirs.view(np.uint32) != ours.view(np.uint32)))
        assert diff == 0, f"{diff} of {n} values differ from www/bench/philox.js"
        msg += f"; bit-identical to www/bench/philox.js on {n} values (seed 3)"
    if verbose:
        print(msg)


def main():
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    self_check()


if __name__ == "__main__":
    main()
