"""minigan.data: datasets as uint8 arrays, and a DataLoader that feeds float32 batches in [-1, 1].

    from minigan.data import load_dataset, DataLoader
    ds = load_dataset("svhn", root="data", split="test", download=False)
    for images, labels in DataLoader(ds, batch_size=64, shuffle=True, drop_last=True, flip=True,
                                     device="cpu", seed=0):
        ...

Names: "synth" (generated, the default), "svhn", "mnist", "fashion-mnist", "cifar10", or the path
of a folder of images (class sub-folders become labels).
"""
from .dataset import Dataset  # noqa: F401
from .download import default_root, md5sum  # noqa: F401
from .errors import DatasetError, DatasetWarning  # noqa: F401
from .grid import make_grid, save_grid, to_uint8  # noqa: F401
from .loader import DataLoader  # noqa: F401
from .registry import available_datasets, load_dataset  # noqa: F401

__all__ = ['load_dataset', 'DataLoader', 'Dataset', 'DatasetError', 'DatasetWarning', 'save_grid',
           'make_grid', 'to_uint8', 'default_root', 'md5sum', 'available_datasets']
