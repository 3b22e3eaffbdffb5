"""Layers that change an image's resolution: PixelShuffle (sub-pixel convolution's last step),
PixelUnshuffle and Upsample (nearest or bilinear). No weights; thin Modules over minigan.functional."""
from .module import Module


class PixelShuffle(Module):
    """(N, C·r², H, W) -> (N, C, H·r, W·r)."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = int(upscale_factor)

    def forward(self, x):
        from .. import functional as F
        return F.pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self):
        return f'upscale_factor={self.upscale_factor}'


class PixelUnshuffle(Module):
    """(N, C, H·r, W·r) -> (N, C·r², H, W)."""

    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = int(downscale_factor)

    def forward(self, x):
        from .. import functional as F
        return F.pixel_unshuffle(x, self.downscale_factor)

    def extra_repr(self):
        return f'downscale_factor={self.downscale_factor}'


class Upsample(Module):
    """Resize to `size` or by `scale_factor` with F.interpolate's modes ('nearest', 'bilinear')."""

    def __init__(self, size=None, scale_factor=None, mode='nearest', align_corners=None):
        super().__init__()
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, align_corners

    def forward(self, x):
        from .. import functional as F
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self):
        what = f'size={self.size}' if self.size is not None else f'scale_factor={self.scale_factor}'
        return f'{what}, mode={self.mode!r}'
