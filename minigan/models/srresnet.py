"""Super-resolution networks (Ledig et al., 2017), sized for a CPU.

SRResNet: a 9x9 conv, residual blocks (conv-BN-PReLU-conv-BN plus the input), a conv-BN with a
skip over all blocks, then one sub-pixel step per factor of 2 (conv to 4x the channels,
PixelShuffle(2), PReLU), and a 9x9 conv back to the image's channels. The output is not
squashed (no tanh): it is compared with the target image directly by the content loss.
With bilinear_skip=True the network adds its output to the bilinear upscaling of its input
(F.interpolate) and its last conv starts at zero, so it begins as bilinear upscaling and learns
only the detail that interpolation misses: a short training on a CPU then starts from
interpolation's quality instead of from noise.

SRDiscriminator: the adversarial variant's critic of SRGAN, strided 3x3 convs with BN and
LeakyReLU, global average pooling and two linear layers, one logit per image.
"""
import math

from .. import functional as F
from .. import nn


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels),
                                  nn.PReLU(), nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x):
        return x + self.body(x)


class SRResNet(nn.Module):
    """(B, nc, H, W) in [-1, 1] -> (B, nc, H·scale, W·scale); scale 2 or 4."""

    def __init__(self, scale=2, nc=3, channels=32, blocks=4, bilinear_skip=False):
        super().__init__()
        self.bilinear_skip = bilinear_skip
        if scale not in (2, 4):
            raise ValueError(f'SRResNet upscales by 2 or 4, not {scale!r}')
        self.scale, self.nc = scale, nc
        self.head = nn.Sequential(nn.Conv2d(nc, channels, 9, 1, 4), nn.PReLU())
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])
        self.fuse = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))
        up = []
        for _ in range(int(math.log2(scale))):
            up += [nn.Conv2d(channels, channels * 4, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU()]
        self.upsample = nn.Sequential(*up)
        self.tail = nn.Conv2d(channels, nc, 9, 1, 4)
        if bilinear_skip:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.nc:
            raise ValueError(f'SRResNet takes images of shape (B, {self.nc}, H, W), got {x.shape}')
        h = self.head(x)
        h = h + self.fuse(self.blocks(h))
        out = self.tail(self.upsample(h))
        if self.bilinear_skip:
            out = out + F.interpolate(x, scale_factor=self.scale, mode='bilinear', align_corners=False)
        return out


class SRDiscriminator(nn.Module):
    """(B, nc, S, S) -> logits (B, 1): is this a real high-resolution image?"""

    def __init__(self, nc=3, channels=32):
        super().__init__()
        c = channels
        layers = [nn.Conv2d(nc, c, 3, 1, 1), nn.LeakyReLU(0.2)]
        for c_in, c_out, stride in [(c, c, 2), (c, 2 * c, 1), (2 * c, 2 * c, 2), (2 * c, 4 * c, 1),
                                    (4 * c, 4 * c, 2)]:
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.classify = nn.Sequential(nn.Linear(4 * c, 8 * c), nn.LeakyReLU(0.2), nn.Linear(8 * c, 1))

    def forward(self, x):
        return self.classify(self.features(x).mean(axis=(2, 3)))
