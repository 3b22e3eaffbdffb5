"""mg.device: PyTorch's device object. It is the string "cpu" or "cuda" itself (a str subclass),
so it compares equal to the strings minigan uses everywhere, and has PyTorch's .type and .index."""


class device(str):
    def __new__(cls, type, index=None):
        text = str(type)
        kind, _, number = text.partition(':')
        if kind not in ('cpu', 'cuda'):
            raise RuntimeError(f'Expected one of cpu, cuda device type at start of device string: {text}')
        self = super().__new__(cls, kind)
        self.type = kind
        self.index = int(number) if number else index
        return self

    def __repr__(self):
        index = '' if self.index is None else f', index={self.index}'
        return f"device(type='{self.type}'{index})"

    __hash__ = str.__hash__
