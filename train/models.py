"""Reference velocity networks, mirroring ARCHITECTURE.md exactly.

Tensor names produced by ``state_dict()`` are the names in the shipped
``.safetensors`` files; the Rust implementation (src/model/) reads them.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

GN_EPS = 1e-5


def timestep_embedding(t, dim, time_scale):
    """[n] -> [n, dim]: half = dim/2, f_i = exp(-ln(10000) i / half),
    a_i = (time_scale t) f_i, result [cos(a), sin(a)]."""
    half = dim // 2
    i = torch.arange(half, dtype=t.dtype, device=t.device)
    f = torch.exp(-math.log(10000.0) * i / half)
    a = (time_scale * t)[:, None] * f[None, :]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


class MLPVelocity(nn.Module):
    """arch: {"kind": "mlp", "data_dim", "width", "depth", "time_embed_dim", "time_scale"}"""

    def __init__(self, arch, num_classes=0):
        super().__init__()
        assert arch["kind"] == "mlp"
        d = int(arch["data_dim"])
        w = int(arch["width"])
        depth = int(arch["depth"])
        e = int(arch["time_embed_dim"])
        assert e % 2 == 0 and depth >= 1
        self.data_dim = d
        self.time_embed_dim = e
        self.time_scale = float(arch["time_scale"])
        self.num_classes = int(num_classes)
        # A flow map (MeanFlow) also takes the step length h: its embedding follows the time's.
        self.flow_map = bool(arch.get("flow_map", False))
        fan_in = d + e * (2 if self.flow_map else 1)
        self.layers = nn.ModuleList(
            [nn.Linear(fan_in, w)] + [nn.Linear(w, w) for _ in range(depth - 1)]
        )
        self.out = nn.Linear(w, d)
        if self.num_classes > 0:
            self.class_emb = nn.Embedding(self.num_classes + 1, e)

    def forward(self, x, t, y=None, h=None):
        """The velocity at (x, t); for a flow map the average velocity over [t, t + h]
        (h = None: 0, the instantaneous velocity)."""
        e = timestep_embedding(t, self.time_embed_dim, self.time_scale)
        if self.num_classes > 0:
            e = e + self.class_emb(y)
        parts = [x, e]
        if self.flow_map:
            parts.append(timestep_embedding(torch.zeros_like(t) if h is None else h,
                                             self.time_embed_dim, self.time_scale))
        h = torch.cat(parts, dim=1)
        for layer in self.layers:
            h = F.silu(layer(h))
        return self.out(h)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=GN_EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(tdim, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=GN_EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.skip = nn.Conv2d(cin, cout, 1)
        else:
            self.skip = None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        s = self.skip(x) if self.skip is not None else x
        return s + h


class _Level(nn.Module):
    """Holds ``blocks`` and an optional ``downsample`` / ``upsample`` conv."""

    def __init__(self, blocks, downsample=None, upsample=None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        if downsample is not None:
            self.downsample = downsample
        if upsample is not None:
            self.upsample = upsample


class UNetVelocity(nn.Module):
    """arch: {"kind": "unet", "in_channels", "base_channels", "channel_mult",
    "num_res_blocks", "groups", "time_scale"}"""

    def __init__(self, arch, num_classes=0):
        super().__init__()
        assert arch["kind"] == "unet"
        C = int(arch["in_channels"])
        base = int(arch["base_channels"])
        mult = [int(m) for m in arch["channel_mult"]]
        nrb = int(arch["num_res_blocks"])
        g = int(arch["groups"])
        assert base % 2 == 0 and nrb >= 1 and len(mult) >= 1
        self.base = base
        self.time_scale = float(arch["time_scale"])
        self.num_classes = int(num_classes)
        self.L = len(mult)
        T = 4 * base
        ch = [base * m for m in mult]

        self.time_mlp = nn.Sequential(nn.Linear(base, T), nn.SiLU(), nn.Linear(T, T))
        if self.num_classes > 0:
            self.class_emb = nn.Embedding(self.num_classes + 1, T)
        self.conv_in = nn.Conv2d(C, base, 3, padding=1)

        down = []
        prev = base
        for i in range(self.L):
            blocks = []
            for j in range(nrb):
                blocks.append(ResBlock(prev if j == 0 else ch[i], ch[i], T, g))
            prev = ch[i]
            ds = nn.Conv2d(ch[i], ch[i], 3, stride=2, padding=1) if i < self.L - 1 else None
            down.append(_Level(blocks, downsample=ds))
        self.down = nn.ModuleList(down)

        self.mid = ResBlock(ch[-1], ch[-1], T, g)

        up = [None] * self.L
        for i in reversed(range(self.L)):
            ch_h = ch[self.L - 1] if i == self.L - 1 else ch[i + 1]
            blocks = []
            for j in range(nrb):
                blocks.append(ResBlock(ch_h + ch[i] if j == 0 else ch[i], ch[i], T, g))
            us = nn.Conv2d(ch[i], ch[i], 3, padding=1) if i > 0 else None
            up[i] = _Level(blocks, upsample=us)
        self.up = nn.ModuleList(up)

        self.out_norm = nn.GroupNorm(g, ch[0], eps=GN_EPS)
        self.out_conv = nn.Conv2d(ch[0], C, 3, padding=1)

    def forward(self, x, t, y=None):
        temb = self.time_mlp(timestep_embedding(t, self.base, self.time_scale))
        if self.num_classes > 0:
            temb = temb + self.class_emb(y)
        emb = F.silu(temb)
        h = self.conv_in(x)
        skips = []
        for i in range(self.L):
            lvl = self.down[i]
            for blk in lvl.blocks:
                h = blk(h, emb)
            skips.append(h)
            if i < self.L - 1:
                h = lvl.downsample(h)
        h = self.mid(h, emb)
        for i in reversed(range(self.L)):
            lvl = self.up[i]
            h = torch.cat([h, skips.pop()], dim=1)
            for blk in lvl.blocks:
                h = blk(h, emb)
            if i > 0:
                h = lvl.upsample(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out_conv(F.silu(self.out_norm(h)))


def build_model(arch, num_classes=0):
    if arch["kind"] == "mlp":
        return MLPVelocity(arch, num_classes)
    if arch["kind"] == "unet":
        return UNetVelocity(arch, num_classes)
    raise ValueError(f"unknown arch kind {arch['kind']!r}")


def count_params(model):
    return sum(p.numel() for p in model.parameters())
