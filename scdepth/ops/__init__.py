"""The fused ops of scdepth, and how to pick their backend.

`scdepth.ops.<op>` runs the compiled kernels (scdepth._C; CPU or CUDA by the tensors' device);
`scdepth.ops.reference.<op>` is the pure-PyTorch version with the same signature, used as the
oracle of the tests, the baseline of the benchmarks, and by `backend: reference`.
"""

from types import SimpleNamespace

from . import reference
from ._ext import AVAILABLE as EXTENSION_AVAILABLE
from ._ext import with_cuda
from .normal_rank import normal_rank_error
from .normals import depth_normals
from .pairs import sample_dynamic_pairs
from .photometric import photometric_error
from .warp import inverse_warp

__all__ = [
    "depth_normals",
    "inverse_warp",
    "normal_rank_error",
    "photometric_error",
    "sample_dynamic_pairs",
    "reference",
    "get_backend",
    "EXTENSION_AVAILABLE",
    "with_cuda",
]

_OPS = (
    "inverse_warp",
    "photometric_error",
    "sample_dynamic_pairs",
    "normal_rank_error",
    "depth_normals",
)


def get_backend(name):
    """The ops of backend `name` ('ext' or 'reference') as a namespace."""
    if name == "ext":
        return SimpleNamespace(name=name, **{op: globals()[op] for op in _OPS})
    if name == "reference":
        return SimpleNamespace(name=name, **{op: getattr(reference, op) for op in _OPS})
    raise ValueError(f"backend must be 'ext' or 'reference', got {name!r}")
