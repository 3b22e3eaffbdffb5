"""Dataset: images held as uint8 NCHW in memory, with their labels and class names."""
import numpy as np

from .errors import DatasetError


class Dataset:
    """A set of images and labels, as NumPy arrays.

    images:  uint8 (N, C, H, W), RGB order for colour data (C = 3) or grey (C = 1)
    labels:  int64 (N,) class indices, or float32 (N, K) multi-hot rows for multi-label data
    classes: list of K class names (labels index into it)
    name, split: where it came from ("svhn", "train"), for messages and reports
    """

    def __init__(self, images, labels, classes, name='', split='', source=None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DatasetError(f'{name or "dataset"}: images must be uint8 (N, C, H, W), '
                               f'got {images.dtype} {images.shape}')
        if labels.ndim == 1:
            labels = labels.astype(np.int64, copy=False)
        elif labels.ndim == 2:
            labels = labels.astype(np.float32, copy=False)
        else:
            raise DatasetError(f'{name or "dataset"}: labels must be (N,) class indices or (N, K) '
                               f'multi-hot rows, got shape {labels.shape}')
        if len(labels) != len(images):
            raise DatasetError(f'{name or "dataset"}: {len(labels)} labels for {len(images)} images')
        if labels.ndim == 1 and len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            bad = np.flatnonzero((labels < 0) | (labels >= len(classes)))
            raise DatasetError(f'{source or name or "dataset"}: label {labels[bad[0]]} of image {bad[0]} '
                               f'(and {len(bad) - 1} more) is outside the {len(classes)} classes 0..'
                               f'{len(classes) - 1}: the labels file is corrupt or of another dataset; '
                               'replace it')
        self.images = images
        self.labels = labels
        self.classes = [str(c) for c in classes]
        self.name = name
        self.split = split
        self.source = source

    @property
    def multilabel(self):
        """True when labels are multi-hot rows (N, K) rather than class indices."""
        return self.labels.ndim == 2

    @property
    def image_shape(self):
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self):
        return len(self.classes)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        """An (image, label) pair for an integer; a Dataset for a slice or an index array."""
        if isinstance(index, (int, np.integer)):
            return self.images[index], self.labels[index]
        return self.subset(index)

    def subset(self, index):
        """A Dataset of the selected images (a slice, an index array or a boolean mask)."""
        return Dataset(self.images[index], self.labels[index], self.classes, self.name, self.split,
                       self.source)

    def counts(self):
        """Number of images per class (summed multi-hot rows for multi-label data)."""
        if self.multilabel:
            return self.labels.sum(axis=0).astype(np.int64)
        return np.bincount(self.labels, minlength=len(self.classes))

    def __repr__(self):
        what = f'{self.name!r}, split={self.split!r}' if self.name else 'images'
        return (f'Dataset({what}, {len(self)} images of shape {self.image_shape}, '
                f'{len(self.classes)} classes{", multi-label" if self.multilabel else ""})')
