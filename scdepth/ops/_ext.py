"""Loads the compiled extension scdepth._C, which registers the scdepth:: ops."""

import importlib

try:
    _C = importlib.import_module("scdepth._C")
    AVAILABLE = True
    _ERROR = None
except ImportError as e:  # not built, or built against another torch
    _C = None
    AVAILABLE = False
    _ERROR = e


def require():
    """Raises a clear error when the extension is not usable."""
    if not AVAILABLE:
        raise RuntimeError(
            f"scdepth's compiled extension (scdepth._C) could not be loaded: {_ERROR}. "
            "Build it against the installed torch with `pip install --no-build-isolation -e .`, "
            "or select the pure-PyTorch kernels with backend='reference'."
        )


def with_cuda():
    """True when the extension was built with its CUDA kernels."""
    return AVAILABLE and bool(_C.with_cuda)
