"""Classifier-32 of spec/models.md, as an nn.Sequential (state_dict keys equal torch's).

[Conv(nc, 32, 3, 1, 1) BN ReLU] [Conv(32, 32) BN ReLU] MaxPool(2)
[Conv(32, 64) BN ReLU] [Conv(64, 64) BN ReLU] MaxPool(2)
[Conv(64, 128) BN ReLU] MaxPool(2) Flatten(2048)
Linear(2048, 256) ReLU Dropout(0.5) Linear(256, n_classes)
Convolutions are 3x3, stride 1, padding 1, without bias (BatchNorm follows). Output: logits.
"""
from .. import nn


def _block(cin, cout):
    return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]


class Classifier32(nn.Sequential):
    """(B, nc, 32, 32) images -> (B, n_classes) logits."""

    def __init__(self, nc=3, n_classes=10, dropout=0.5):
        for name, v in (('nc', nc), ('n_classes', n_classes)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f'{name} must be a positive int, got {v!r}')
        super().__init__(*_block(nc, 32), *_block(32, 32), nn.MaxPool2d(2),
                         *_block(32, 64), *_block(64, 64), nn.MaxPool2d(2),
                         *_block(64, 128), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(128 * 4 * 4, 256), nn.ReLU(True), nn.Dropout(dropout),
                         nn.Linear(256, n_classes))
        self.nc, self.n_classes = nc, n_classes

    def forward(self, x):
        if x.ndim != 4 or x.shape[1:] != (self.nc, 32, 32):
            raise ValueError(f'Classifier32 takes images of shape (B, {self.nc}, 32, 32), got {x.shape}')
        return super().forward(x)
