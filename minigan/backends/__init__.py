"""torch.backends under its name, for scripts that set `cudnn.benchmark = True`.
(minigan's own CPU/GPU switch is minigan.backend, singular.)"""
from . import cudnn  # noqa: F401
