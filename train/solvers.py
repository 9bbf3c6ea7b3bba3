"""ODE solvers for dx/dt = v(x, t), t: 0 -> 1 (evaluation only).

Fixed uniform grids: euler (1 eval/step), midpoint and heun (2), rk4 (4), and the
multistep ab2 (Adams-Bashforth 2: 1 eval/step, the previous step's slope reused, Euler first;
src/ode/multistep.rs); the NFE budget must be a multiple of the evals per step. dopri5: adaptive
Dormand-Prince 5(4) with FSAL, error norm = RMS of err / (atol + rtol*max(|x|,|x_new|)).
Every function returns (x1, nfe).
"""

import torch

EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4, "ab2": 1}


def _step_euler(f, x, t, h):
    # A flow map's velocity function carries `average(x, t, h)`, its average velocity over the
    # step: Euler then takes the map's own step (as the Rust sampler does).
    average = getattr(f, "average", None)
    return x + h * (f(x, t) if average is None else average(x, t, h))


def _step_midpoint(f, x, t, h):
    k1 = f(x, t)
    k2 = f(x + 0.5 * h * k1, t + 0.5 * h)
    return x + h * k2


def _step_heun(f, x, t, h):
    k1 = f(x, t)
    k2 = f(x + h * k1, t + h)
    return x + 0.5 * h * (k1 + k2)


def _step_rk4(f, x, t, h):
    k1 = f(x, t)
    k2 = f(x + 0.5 * h * k1, t + 0.5 * h)
    k3 = f(x + 0.5 * h * k2, t + 0.5 * h)
    k4 = f(x + h * k3, t + h)
    return x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)


_STEPS = {"euler": _step_euler, "midpoint": _step_midpoint, "heun": _step_heun, "rk4": _step_rk4}


def solve_fixed(f, x0, method, nfe):
    """f(x, t_scalar_float) -> velocity. Uniform grid with nfe/evals_per_step steps."""
    e = EVALS_PER_STEP[method]
    if nfe % e != 0 or nfe < e:
        raise ValueError(f"{method} needs NFE a multiple of {e}, got {nfe}")
    n = nfe // e
    h = 1.0 / n
    x = x0
    if method == "ab2":  # uniform steps: x + h (3/2 k_n - 1/2 k_(n-1))
        prev = None
        for i in range(n):
            k = f(x, i * h)
            x = x + h * k if prev is None else x + h * (1.5 * k - 0.5 * prev)
            prev = k
        return x, nfe
    for i in range(n):
        x = _STEPS[method](f, x, i * h, h)
    return x, nfe


# Dormand-Prince 5(4) tableau
_C = [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]
_A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
_B5 = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0]
_B4 = [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]


def solve_dopri5(f, x0, rtol=1e-3, atol=1e-3, h0=None, max_steps=10000):
    """Adaptive Dormand-Prince 5(4) from t=0 to t=1 with one step size for the whole
    batch (error = RMS over all elements). Returns (x1, nfe)."""
    t = 0.0
    x = x0
    k1 = f(x, t)
    nfe = 1
    if h0 is None:
        # Hairer's initial step heuristic (simplified)
        sc = atol + rtol * x.abs()
        d0 = torch.sqrt(torch.mean((x / sc) ** 2)).item()
        d1 = torch.sqrt(torch.mean((k1 / sc) ** 2)).item()
        h = 0.01 * d0 / d1 if d0 > 1e-5 and d1 > 1e-5 else 1e-3
        h = min(h, 1.0)
    else:
        h = h0
    for _ in range(max_steps):
        if t >= 1.0 - 1e-12:
            break
        h = min(h, 1.0 - t)
        ks = [k1]
        for i in range(1, 7):
            xi = x + h * sum(a * k for a, k in zip(_A[i], ks) if a != 0.0)
            ks.append(f(xi, t + _C[i] * h))
        nfe += 6
        x5 = x + h * sum(b * k for b, k in zip(_B5, ks) if b != 0.0)
        err = h * sum((b5 - b4) * k for b5, b4, k in zip(_B5, _B4, ks) if b5 != b4)
        sc = atol + rtol * torch.maximum(x.abs(), x5.abs())
        en = torch.sqrt(torch.mean((err / sc) ** 2)).item()
        if en <= 1.0:
            t = t + h
            x = x5
            k1 = ks[6]  # FSAL
        fac = 0.9 * (1.0 / max(en, 1e-10)) ** 0.2
        h = h * min(5.0, max(0.2, fac))
    return x, nfe


def solve(f, x0, method, nfe=None, rtol=None, atol=None):
    if method == "dopri5":
        return solve_dopri5(f, x0, rtol=rtol, atol=atol)
    return solve_fixed(f, x0, method, nfe)
