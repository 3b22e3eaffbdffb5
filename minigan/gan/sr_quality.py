"""How good is an upscaler? PSNR and SSIM on held-out images, against bicubic upscaling.

    q = sr_quality(G, images, scale)   # {'psnr', 'ssim', 'psnr_bicubic', 'ssim_bicubic'} (means)

Each held-out uint8 image is averaged over scale x scale boxes (as in training) and rounded
to uint8: that low-resolution picture is the input of both the network and Pillow's BICUBIC
resize, and both results are compared with the original (data range 255).
"""
import numpy as np

from ..autograd import no_grad
from ..metrics.image_quality import psnr, ssim
from ..tensor import tensor
from .sampling import model_device


def box_downscale(images, scale):
    """uint8 (N, C, H, W) -> uint8 (N, C, H/scale, W/scale): box means, rounded."""
    n, c, h, w = images.shape
    boxes = images.astype(np.float64).reshape(n, c, h // scale, scale, w // scale, scale)
    return np.clip(np.round(boxes.mean(axis=(3, 5))), 0, 255).astype(np.uint8)


def bicubic_upscale(images, scale):
    """uint8 (N, C, h, w) -> uint8 (N, C, h*scale, w*scale) with Pillow's BICUBIC, image by image."""
    from PIL import Image
    out = []
    for im in images:
        if im.shape[0] == 1:
            pics = [Image.fromarray(im[0], 'L')]
        else:
            pics = [Image.fromarray(ch, 'L') for ch in im]       # per channel: the same filter as RGB
        size = (im.shape[2] * scale, im.shape[1] * scale)
        out.append(np.stack([np.asarray(p.resize(size, Image.BICUBIC)) for p in pics]))
    return np.stack(out)


def to_uint8(x):
    """float images in [-1, 1] -> uint8 in [0, 255] (clipped, rounded)."""
    return np.clip(np.round((np.asarray(x, np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def upscale(G, images, batch_size=64):
    """G on uint8 low-resolution images (N, C, h, w), in eval mode, without a graph -> uint8 output."""
    device = model_device(G)
    was_training = G.training
    G.eval()
    out = []
    try:
        with no_grad():
            for start in range(0, len(images), batch_size):
                x = images[start:start + batch_size].astype(np.float32) / 127.5 - 1.0
                out.append(to_uint8(G(tensor(x, device=device)).numpy()))
    finally:
        G.train(was_training)
    return np.concatenate(out)


def sr_quality(G, images, scale, batch_size=64):
    """Mean PSNR (dB) and SSIM of G and of bicubic upscaling on held-out uint8 images (N, C, H, W)."""
    low = box_downscale(images, scale)
    ours, bicubic = upscale(G, low, batch_size), bicubic_upscale(low, scale)
    return {'psnr': float(np.mean(psnr(ours, images))), 'ssim': float(np.mean(ssim(ours, images))),
            'psnr_bicubic': float(np.mean(psnr(bicubic, images))),
            'ssim_bicubic': float(np.mean(ssim(bicubic, images)))}


def comparison_rows(G, images, scale):
    """uint8 images for a grid of 3 rows: bicubic | G | original, one held-out image per column."""
    low = box_downscale(images, scale)
    return np.concatenate([bicubic_upscale(low, scale), upscale(G, low), images])
