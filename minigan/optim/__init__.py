"""minigan.optim: SGD, Adam, AdamW, RMSprop, Adadelta with PyTorch's update formulas and state-dict format."""
from .optimizer import Optimizer  # noqa: F401
from .sgd import SGD  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from .adadelta import Adadelta  # noqa: F401
from . import lr_scheduler  # noqa: F401,E402
