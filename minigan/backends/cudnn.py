"""torch.backends.cudnn's flags. minigan does not use cuDNN, so they change nothing: its
convolutions pick their kernel by shape, and are deterministic whatever these say."""
enabled = True
benchmark = False
deterministic = False


def is_available():
    return False
