"""Velocity networks built from the "classic" CNN ops, for the ONNX parity fixtures of
train/make_onnx_fixtures_classic.py. Seeded random initialisations, not trained; the inits keep
activations O(1) without any normalisation layer, and every classic op changes the output.

  UNetClassic       1×16×16 images, (x, t [n], y [n]), 3 classes + null 3; no normalisation layer.
                    16×16 --AvgPool2d(2)--> 8×8 --MaxPool2d(2)--> 4×4, back up with
                    ConvTranspose2d(k 4, s 2, p 1) (4→8) and ConvTranspose2d(k 3, s 2, p 1,
                    output_padding 1) (8→16); a depthwise 3×3 conv (groups = channels) in the 16×16
                    block and a dilated 3×3 conv (dilation 2, padding 2) in the 8×8 block; FiLM
                    scale/shift from sinusoidal(1000·t) + class embedding
  UpsampleBilinear  1×8×8 images, (x, t [n]), unconditional: 1×1 convs, a time bias, then the only
                    spatial ops: nn.Upsample(×2, bilinear, align_corners=False) to 16×16 and a
                    stride-2 3×3 conv back to 8×8
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from pushforward_train.onnx_models import sinusoidal


def _he(m, gain=1.0):
    """He-normal (fan_in) weights ×gain, small random biases; for conv, conv-transpose, linear."""
    w = m.weight
    if isinstance(m, nn.ConvTranspose2d):
        # weight [cin, cout/groups, k, k]; with stride s each output pixel sees ~ cin·k²/s² taps
        fan_in = w.shape[0] * w.shape[2] * w.shape[3] / (m.stride[0] * m.stride[1])
    else:
        fan_in = w[0].numel()
    nn.init.normal_(w, std=gain * math.sqrt(2.0 / fan_in))
    if m.bias is not None:
        nn.init.normal_(m.bias, std=0.1)


class FiLMBlock(nn.Module):
    """out = skip(x) + conv2(silu((conv1(silu(x))) · (1 + scale) + shift)); no normalisation.
    conv1 is given (plain, depthwise or dilated)."""

    def __init__(self, conv1, cout, tdim):
        super().__init__()
        cin = conv1.in_channels
        self.conv1 = conv1
        self.film = nn.Linear(tdim, 2 * conv1.out_channels)
        self.conv2 = nn.Conv2d(conv1.out_channels, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        _he(self.conv1, 1.2)
        _he(self.conv2, 0.8)
        nn.init.normal_(self.film.weight, std=0.3 / math.sqrt(tdim))
        nn.init.normal_(self.film.bias, std=0.1)
        if isinstance(self.skip, nn.Conv2d):
            _he(self.skip, 0.7)

    def forward(self, x, emb):
        h = self.conv1(F.silu(x))
        scale, shift = self.film(emb).chunk(2, dim=1)
        h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(h))


class UNetClassic(nn.Module):
    """16×16 (16 ch) → 8×8 (24 ch) → 4×4 (32 ch) and back; see the module docstring."""

    def __init__(self, in_ch=1, base=16, num_classes=3, time_mult=1000.0):
        super().__init__()
        c0, c1, c2 = base, 3 * base // 2, 2 * base
        T = 4 * base
        self.base, self.time_mult, self.num_classes = base, time_mult, num_classes
        self.time_mlp = nn.Sequential(nn.Linear(2 * base, T), nn.SiLU(), nn.Linear(T, T))
        self.class_emb = nn.Embedding(num_classes + 1, T)
        self.conv_in = nn.Conv2d(in_ch, c0, 3, padding=1)
        # 16×16: depthwise 3×3
        self.d0 = FiLMBlock(nn.Conv2d(c0, c0, 3, padding=1, groups=c0), c0, T)
        self.pool0 = nn.AvgPool2d(2)                                          # 16 → 8
        # 8×8: dilated 3×3
        self.d1 = FiLMBlock(nn.Conv2d(c0, c1, 3, padding=2, dilation=2), c1, T)
        self.pool1 = nn.MaxPool2d(2)                                          # 8 → 4
        self.mid = FiLMBlock(nn.Conv2d(c1, c2, 3, padding=1), c2, T)
        self.up1 = nn.ConvTranspose2d(c2, c2, kernel_size=4, stride=2, padding=1)        # 4 → 8
        self.u1 = FiLMBlock(nn.Conv2d(c2 + c1, c1, 3, padding=1), c1, T)
        self.up0 = nn.ConvTranspose2d(c1, c1, kernel_size=3, stride=2, padding=1, output_padding=1)  # 8 → 16
        self.u0 = FiLMBlock(nn.Conv2d(c1 + c0, c0, 3, padding=1), c0, T)
        self.out_conv = nn.Conv2d(c0, in_ch, 3, padding=1)
        _he(self.conv_in, 1.0)
        _he(self.up1, 0.7)
        _he(self.up0, 0.7)
        _he(self.out_conv, 0.7)
        for lin in (self.time_mlp[0], self.time_mlp[2]):
            _he(lin, 1.0)
        nn.init.normal_(self.class_emb.weight, std=1.0)

    def forward(self, x, t, y):
        emb = F.silu(self.time_mlp(sinusoidal(t * self.time_mult, 2 * self.base)) + self.class_emb(y))
        h0 = self.d0(self.conv_in(x), emb)                          # 16×16, c0
        h1 = self.d1(self.pool0(h0), emb)                           # 8×8, c1
        h = self.mid(self.pool1(h1), emb)                           # 4×4, c2
        h = self.u1(torch.cat([self.up1(h), h1], dim=1), emb)       # 8×8, c1
        h = self.u0(torch.cat([self.up0(h), h0], dim=1), emb)       # 16×16, c0
        return self.out_conv(F.silu(h))


class UpsampleBilinear(nn.Module):
    """8×8 → (1×1 conv, + time bias, SiLU) → bilinear ×2 → stride-2 3×3 conv → 8×8 → 1×1 conv."""

    def __init__(self, in_ch=1, ch=8, time_mult=1000.0, temb=16):
        super().__init__()
        self.time_mult, self.temb = time_mult, temb
        self.conv_in = nn.Conv2d(in_ch, ch, 1)
        self.time = nn.Linear(temb, ch)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.down = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
        self.out_conv = nn.Conv2d(ch, in_ch, 1)
        for m in (self.conv_in, self.time, self.down, self.out_conv):
            _he(m, 1.0)

    def forward(self, x, t):
        h = self.conv_in(x) + self.time(sinusoidal(t * self.time_mult, self.temb))[:, :, None, None]
        h = self.down(self.up(F.silu(h)))
        return self.out_conv(F.silu(h))
