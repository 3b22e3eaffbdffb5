"""minigan.utils: PyTorch's torch.utils.data (as minigan.utils.data) and torchvision's
make_grid / save_image, with their layouts, so training scripts need only their imports changed."""
from .image import make_grid, save_image  # noqa: F401
from . import data  # noqa: F401
