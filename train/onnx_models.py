"""Velocity networks that are NOT pushforward's reference classes (train/models.py), written the
way tutorials and papers write them, for the ONNX parity fixtures (train/make_onnx_fixtures.py).
They are seeded random initialisations, not trained; their inits keep activations O(1) and make
every block change the output (adaLN projections small but not zero).

  MLPSeluRawT     points2d, (x [n,2], t [n]): MLP on cat([x, t]) with SELU
  MLPFourierGELU  points2d, (x [n,2], t [n,1]) with t = τ·1000: Fourier features up to ~1005 rad,
                  exact GELU, predicts x1 (data) as x + τ·g(x, τ)
  UNetAttn        1×16×16 images, (x, t [n], y [n]): GroupNorm, SiLU, 3×3 convs, FiLM time/class
                  conditioning, nn.MultiheadAttention at 8×8 and 4×4, stride-2 conv down, nearest up
  DiTSmall        1×16×16 images, (x, t []) with t = 1000·t: patch 4 (16 tokens), width 64, 2 blocks,
                  4 heads, adaLN-Zero modulation, LayerNorm without affine, tanh-GELU MLP,
                  unpatchify; predicts x0 (noise) as x + (t/1000)·net
  MLPSeluLayerNorm  MLPSeluRawT with an affine nn.LayerNorm after the first layer (exported at opset 13,
                  where the exporter writes LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add)
  OpZoo           1×8×8 images, (x, t [n]): one feature map h(x, t) through eight branches, each an op
                  family the other fixtures lack (Concat on H and W + Slice crops, constant-value Pad,
                  Where with a constant mask, BatchNormalization, ReduceMean/ReduceSum on the channel
                  and last axes, Split, Softmax over channels, a hand-written layer norm), mixed by a
                  1×1 conv into the velocity
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLPSeluRawT(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, width), nn.SELU(), nn.Linear(width, width), nn.SELU(),
                                 nn.Linear(width, 2))
        for m in self.net:
            if isinstance(m, nn.Linear):  # LeCun normal, as SELU wants
                nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.in_features))
                nn.init.normal_(m.bias, std=0.1)

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], dim=1))


class MLPFourierGELU(nn.Module):
    """t_in = τ·1000 (τ = 1 − sampler time: this model runs data → noise); features
    sin/cos(2π f_k τ) with f_k = 10k, k = 1..16, i.e. arguments up to 2π·160 ≈ 1005 rad."""

    def __init__(self, width=64, n_freq=16, time_scale=1000.0):
        super().__init__()
        self.time_scale = time_scale
        f = 10.0 * torch.arange(1, n_freq + 1, dtype=torch.float32)
        self.register_buffer("w", 2 * math.pi * f / time_scale)  # radians per unit of t_in
        self.net = nn.Sequential(nn.Linear(2 + 2 * n_freq, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                                 nn.Linear(width, 2))
        for m in self.net:
            if isinstance(m, nn.Linear):  # He normal, so that g (the velocity) is O(1)
                nn.init.normal_(m.weight, std=math.sqrt(2.0 / m.in_features))
                nn.init.normal_(m.bias, std=0.1)

    def forward(self, x, t):  # t: [n, 1]
        a = t * self.w  # [n, 16]
        h = torch.cat([x, torch.sin(a), torch.cos(a)], dim=1)
        tau = t / self.time_scale
        return x + tau * self.net(h)


def sinusoidal(t, dim, max_period=10000.0):
    """[n] -> [n, dim]: [sin(t f), cos(t f)], f_i = max_period^(−i/half) (sin first)."""
    half = dim // 2
    f = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    a = t[:, None] * f[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class ResBlockFiLM(nn.Module):
    def __init__(self, cin, cout, tdim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(tdim, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb).chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    def __init__(self, ch, heads, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.attn = nn.MultiheadAttention(ch, heads, batch_first=True)

    def forward(self, x):
        n, c, h, w = x.shape
        s = self.norm(x).reshape(n, c, h * w).transpose(1, 2)  # [n, hw, c]
        a, _ = self.attn(s, s, s, need_weights=False)
        return x + a.transpose(1, 2).reshape(n, c, h, w)


class UNetAttn(nn.Module):
    """16×16 → 8×8 → 4×4; channels 16, 24, 32; attention at 8×8 and 4×4 (and in the middle)."""

    def __init__(self, in_ch=1, base=16, num_classes=3, groups=8, heads=2, time_mult=1000.0):
        super().__init__()
        c0, c1, c2 = base, 3 * base // 2, 2 * base
        T = 4 * base
        self.base = base
        self.time_mult = time_mult
        self.num_classes = num_classes
        self.time_mlp = nn.Sequential(nn.Linear(2 * base, T), nn.SiLU(), nn.Linear(T, T))
        self.class_emb = nn.Embedding(num_classes + 1, T)
        self.conv_in = nn.Conv2d(in_ch, c0, 3, padding=1)
        self.d0 = ResBlockFiLM(c0, c0, T, groups)
        self.down0 = nn.Conv2d(c0, c0, 3, stride=2, padding=1)
        self.d1 = ResBlockFiLM(c0, c1, T, groups)
        self.a1 = AttnBlock(c1, heads, groups)
        self.down1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.d2 = ResBlockFiLM(c1, c2, T, groups)
        self.a2 = AttnBlock(c2, heads, groups)
        self.mid1 = ResBlockFiLM(c2, c2, T, groups)
        self.mid_attn = AttnBlock(c2, heads, groups)
        self.u2 = ResBlockFiLM(c2 + c2, c2, T, groups)
        self.ua2 = AttnBlock(c2, heads, groups)
        self.up2 = nn.Conv2d(c2, c2, 3, padding=1)
        self.u1 = ResBlockFiLM(c2 + c1, c1, T, groups)
        self.ua1 = AttnBlock(c1, heads, groups)
        self.up1 = nn.Conv2d(c1, c1, 3, padding=1)
        self.u0 = ResBlockFiLM(c1 + c0, c0, T, groups)
        self.out_norm = nn.GroupNorm(groups, c0)
        self.out_conv = nn.Conv2d(c0, in_ch, 3, padding=1)

    def forward(self, x, t, y):
        emb = self.time_mlp(sinusoidal(t * self.time_mult, 2 * self.base)) + self.class_emb(y)
        emb = F.silu(emb)
        h0 = self.d0(self.conv_in(x), emb)                       # 16×16
        h1 = self.a1(self.d1(self.down0(h0), emb))               # 8×8
        h2 = self.a2(self.d2(self.down1(h1), emb))               # 4×4
        h = self.mid_attn(self.mid1(h2, emb))
        h = self.ua2(self.u2(torch.cat([h, h2], dim=1), emb))    # 4×4
        h = self.up2(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.ua1(self.u1(torch.cat([h, h1], dim=1), emb))    # 8×8
        h = self.up1(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.u0(torch.cat([h, h0], dim=1), emb)              # 16×16
        return self.out_conv(F.silu(self.out_norm(h)))


def _sincos_pos_embed(dim, grid):
    """Fixed 2-D sin-cos positional embedding [grid², dim] (as in MAE / DiT)."""
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                            indexing="ij")
    q = dim // 4
    om = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    parts = []
    for pos in (ys.reshape(-1), xs.reshape(-1)):
        a = pos[:, None] * om[None, :]
        parts += [torch.sin(a), torch.cos(a)]
    return torch.cat(parts, dim=1).float()


def modulate(x, shift, scale):
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class DiTBlock(nn.Module):
    def __init__(self, width, heads, mlp_ratio=4):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def attn(self, x):
        n, L, c = x.shape
        qkv = self.qkv(x).reshape(n, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [n, heads, L, d]
        a = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(n, L, c))

    def forward(self, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g1[:, None, :] * self.attn(modulate(self.norm1(x), sh1, sc1))
        return x + g2[:, None, :] * self.mlp(modulate(self.norm2(x), sh2, sc2))


class DiTSmall(nn.Module):
    """t: a 0-d tensor, t_in = 1000·t (one time for the whole batch)."""

    def __init__(self, in_ch=1, side=16, patch=4, width=64, depth=2, heads=4, freq_dim=256,
                 time_scale=1000.0, ada_std=0.2):
        super().__init__()
        self.patch, self.in_ch, self.freq_dim, self.time_scale = patch, in_ch, freq_dim, time_scale
        self.grid = side // patch
        self.x_embed = nn.Conv2d(in_ch, width, patch, stride=patch)
        self.register_buffer("pos_embed", _sincos_pos_embed(width, self.grid)[None])
        self.t_mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList([DiTBlock(width, heads) for _ in range(depth)])
        self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_final = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.linear_final = nn.Linear(width, patch * patch * in_ch)
        for m in [b.adaLN_modulation[1] for b in self.blocks] + [self.ada_final[1]]:
            nn.init.normal_(m.weight, std=ada_std)  # adaLN-Zero zeros these; small but non-zero here
            nn.init.normal_(m.bias, std=ada_std)
        nn.init.normal_(self.t_mlp[0].weight, std=0.02 * 5)
        nn.init.normal_(self.t_mlp[2].weight, std=0.02 * 5)

    def timestep_embedding(self, t):  # [1] -> [1, freq_dim], DiT's cos-then-sin
        half = self.freq_dim // 2
        f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        a = t[:, None] * f[None]
        return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)

    def unpatchify(self, h):
        n, p, g, c = h.shape[0], self.patch, self.grid, self.in_ch
        h = h.reshape(n, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)  # n c gh p gw q
        return h.reshape(n, c, g * p, g * p)

    def forward(self, x, t):
        h = self.x_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # [n, 16, width]
        c = self.t_mlp(self.timestep_embedding(t.reshape(1)))            # [1, width]: broadcast over n
        for blk in self.blocks:
            h = blk(h, c)
        shift, scale = self.ada_final(c).chunk(2, dim=1)
        net = self.unpatchify(self.linear_final(modulate(self.norm_final(h), shift, scale)))
        return x + (t / self.time_scale) * net


class MLPSeluLayerNorm(nn.Module):
    """MLPSeluRawT with nn.LayerNorm(width) (affine, perturbed from 1/0) after the first Linear."""

    def __init__(self, width=64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, width), nn.LayerNorm(width), nn.SELU(), nn.Linear(width, width),
                                 nn.SELU(), nn.Linear(width, 2))
        for m in self.net:
            if isinstance(m, nn.Linear):  # LeCun normal, as SELU wants
                nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.in_features))
                nn.init.normal_(m.bias, std=0.1)
        ln = self.net[1]
        nn.init.normal_(ln.weight, mean=1.0, std=0.3)
        nn.init.normal_(ln.bias, std=0.3)

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], dim=1))


class OpZoo(nn.Module):
    """Velocity for 1×8×8 images from one time-modulated feature map h [n, c, 8, 8] sent through
    eight branches (BRANCHES), concatenated on channels, mixed by a 1×1 conv, SiLU, 3×3 conv.
    `ablate` (a branch name, or None) replaces that branch by zeros, to measure its share of the
    output; it is None when exported."""

    BRANCHES = ("concat", "pad", "where", "batchnorm", "reduce", "split", "softmax", "layernorm")

    def __init__(self, c=8, side=8, tdim=16, split=3, eps=1e-5):
        super().__init__()
        self.c, self.split_at, self.eps = c, split, eps
        self.t_mlp = nn.Sequential(nn.Linear(1, tdim), nn.SiLU(), nn.Linear(tdim, 2 * c))
        self.conv_in = nn.Conv2d(1, c, 3, padding=1)
        self.conv_cat = nn.Conv2d(c, c, 3)   # 12×12 wrap-around map -> 10×10, cropped to 8×8
        self.conv_pad = nn.Conv2d(c, c, 4)   # 11×11 padded map -> 8×8
        self.bn = nn.BatchNorm2d(c)
        self.register_buffer("mask", torch.rand(1, 1, side, side) < 0.5)
        self.ln_gamma = nn.Parameter(1.0 + 0.3 * torch.randn(side))
        self.ln_beta = nn.Parameter(0.3 * torch.randn(side))
        self.mix = nn.Conv2d(len(self.BRANCHES) * c, c, 1)
        self.conv_out = nn.Conv2d(c, 1, 3, padding=1)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):  # He normal: O(1) activations through SiLU
                nn.init.normal_(m.weight, std=math.sqrt(2.0 / (m.weight[0].numel())))
                nn.init.normal_(m.bias, std=0.1)
        nn.init.normal_(self.t_mlp[0].weight, std=2.0)
        self.conv_out.weight.data.mul_(0.3)  # velocity O(1)
        with torch.no_grad():  # eval-mode BatchNorm with running statistics far from 0 / 1
            self.bn.running_mean.normal_(0.0, 0.5)
            self.bn.running_var.copy_(torch.exp(torch.randn(c) * 0.5))
            self.bn.weight.normal_(1.0, 0.3)
            self.bn.bias.normal_(0.0, 0.3)
        self.ablate = None

    def branches(self, h):
        c = self.c
        # Concat on H (axis 2) and W (axis 3): wrap-around padding by 2, valid 3×3 conv, crop by Slice
        a = torch.cat([h[:, :, -2:], h, h[:, :, :2]], dim=2)            # [n, c, 12, 8]
        a = torch.cat([a[..., -2:], a, a[..., :2]], dim=3)              # [n, c, 12, 12]
        a = self.conv_cat(a)[:, :, 1:-1, 1:-1]                          # [n, c, 8, 8]
        # Pad: constant 0.5, asymmetric (W 1 | 2, H 2 | 1), then a 4×4 conv without padding
        b = self.conv_pad(F.pad(F.silu(h), (1, 2, 2, 1), mode="constant", value=0.5))
        # Where with a constant boolean mask [1, 1, 8, 8] (broadcast over n and c)
        w = torch.where(self.mask, h * torch.sigmoid(h), -torch.tanh(h))
        # BatchNorm2d in eval mode (input is not a conv output, so the exporter cannot fold it)
        d = self.bn(F.silu(h))
        # ReduceMean / ReduceSum over channels (axis 1) and the last axis, keepdim True and False
        g = torch.tanh(h)
        r = (torch.mean(h, dim=1)[:, None] + g.sum(1, keepdim=True) / c
             + 0.5 * h.mean(1, keepdim=True) * torch.sum(g, dim=1).unsqueeze(1)    # [n, 1, 8, 8]
             + h.mean(-1, keepdim=True) - 0.25 * g.sum(-1)[..., None]             # [n, c, 8, 1]
             + 0.1 * h.sum(-1, keepdim=True) * torch.mean(g, dim=-1).unsqueeze(-1))
        # Split (uneven, on channels) and chunk (even): a channel permutation gated by a GLU
        s1, s2 = torch.split(h, [self.split_at, c - self.split_at], dim=1)
        u, v = h.chunk(2, dim=1)
        s = torch.cat([s2, -s1], dim=1) * torch.cat([torch.sigmoid(v), torch.sigmoid(u)], dim=1)
        # Softmax over the channel axis (axis 1 of 4, not the last)
        sm = torch.softmax(h, dim=1) * c - 1.0
        # hand-written layer norm over the last axis (W), affine γ, β of length W
        mu = h.mean(-1, keepdim=True)
        dev = h - mu
        var = dev.pow(2).mean(-1, keepdim=True)
        ln = dev / torch.sqrt(var + self.eps) * self.ln_gamma + self.ln_beta
        return dict(zip(self.BRANCHES, (a, b, w, d, r, s, sm, ln)))

    def forward(self, x, t):
        scale, shift = self.t_mlp(t[:, None]).chunk(2, dim=1)         # [n, c] each
        h = self.conv_in(x) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        br = self.branches(h)
        if self.ablate is not None:
            br[self.ablate] = torch.zeros_like(br[self.ablate])
        z = torch.cat(list(br.values()), dim=1)                        # [n, 8c, 8, 8]
        return self.conv_out(F.silu(self.mix(z)))
