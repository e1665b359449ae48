import pytest
import torch

import scdepth.ops

HAS_CUDA = torch.cuda.is_available() and scdepth.ops.with_cuda()


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device and a CUDA build of scdepth._C")
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_cuda)


def devices():
    """CPU always; CUDA as a marked parameter (skipped without a GPU)."""
    return ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
