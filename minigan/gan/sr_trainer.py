"""One training step of super-resolution (SRResNet, and SRGAN with --adversarial).

The low-resolution input of each real image is the image averaged over scale x scale boxes
(avg_pool2d), the same downscaling that sr_quality.py applies to the held-out images. The
upscaler G minimises a content loss between G(low) and the original:

    l1:  mean |G(low) - x|                 mse:  mean (G(low) - x)²

The adversarial variant (Ledig et al., 2017, with minigan's own classifier in place of VGG)
first updates a discriminator D with the DCGAN loss on (x, G(low)), then G on

    content + feature_weight * mean (phi(G(low)) - phi(x))² + adversarial_weight * -log sigmoid D(G(low))

phi: the convolutional features of a frozen classifier-32 (its layers up to the last max-pool
before Flatten), so the feature loss compares what the classifier sees rather than pixels.
"""
from .. import functional as F
from ..autograd import no_grad
from ..nn import Flatten, MaxPool2d
from . import losses
from .trainer import _checked, set_grads


def downscale(x, scale):
    """(B, C, H, W) -> (B, C, H/scale, W/scale): the mean of each scale x scale box."""
    return F.avg_pool2d(x, scale)


def classifier_features(classifier):
    """phi(x): a frozen classifier-32's layers up to (not including) its last max-pool before Flatten,
    in eval mode; the weights get no gradient, the input does."""
    layers = list(classifier.children())
    end = next(i for i, m in enumerate(layers) if isinstance(m, Flatten))
    if isinstance(layers[end - 1], MaxPool2d):
        end -= 1
    body = layers[:end]
    classifier.eval()
    for p in classifier.parameters():
        p.requires_grad_(False)

    def phi(x):
        for m in body:
            x = m(x)
        return x
    return phi


class SRTrainer:
    """`step(source)` trains G (and D with `D` given) on one batch; returns the metrics of the step."""
    set_grads = staticmethod(set_grads)

    def __init__(self, G, opt_g, scale, content_loss='l1', D=None, opt_d=None, features=None,
                 feature_weight=0.006, adversarial_weight=1e-3):
        if content_loss not in ('l1', 'mse'):
            raise ValueError(f"content_loss is 'l1' or 'mse', got {content_loss!r}")
        self.G, self.opt_g, self.scale, self.content_loss = G, opt_g, scale, content_loss
        self.D, self.opt_d, self.features = D, opt_d, features
        self.feature_weight, self.adversarial_weight = feature_weight, adversarial_weight
        self.g_params = list(G.parameters())
        self.d_params = list(D.parameters()) if D is not None else []

    def content(self, sr, hr):
        diff = sr - hr
        return diff.abs().mean() if self.content_loss == 'l1' else (diff * diff).mean()

    def step(self, source, step_index=0):
        hr, _ = source.next()
        with no_grad():
            low = downscale(hr, self.scale)
        sr = self.G(low)
        out = {}
        if self.D is not None:
            loss_d = losses.dcgan_d_loss(self.D(hr).reshape(-1), self.D(sr.detach()).reshape(-1))
            out['loss_d'] = _checked('loss_d', loss_d)
            self.set_grads(loss_d, self.d_params)
            self.opt_d.step()
        content = self.content(sr, hr)
        loss = content
        out['content'] = _checked('content', content)
        if self.D is not None:
            adv = losses.dcgan_g_loss(self.D(sr).reshape(-1))
            out['adversarial'] = _checked('adversarial', adv)
            loss = loss + self.adversarial_weight * adv
            if self.features is not None:
                with no_grad():
                    target = self.features(hr)
                diff = self.features(sr) - target
                feat = (diff * diff).mean()
                out['feature'] = _checked('feature', feat)
                loss = loss + self.feature_weight * feat
        out['loss'] = _checked('loss', loss)
        self.set_grads(loss, self.g_params)
        self.opt_g.step()
        out['real_images'] = hr.shape[0]
        return out
