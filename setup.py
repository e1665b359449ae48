"""Builds the C++/CUDA extension scdepth._C; everything else lives in pyproject.toml.

CPU kernels are always built. CUDA kernels are added when a CUDA device is visible and a
toolkit is found, or when FORCE_CUDA=1 (FORCE_CUDA=0 builds CPU only).
"""

import glob
import os
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent.resolve()


def _is_toolkit(path):
    p = Path(path)
    return (p / "bin" / "nvcc").is_file() and (p / "include" / "cuda_runtime.h").is_file()


def find_cuda_home():
    """CUDA_HOME first, then the real toolkit (not the folder of an `nvcc` wrapper on PATH)."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var) and _is_toolkit(os.environ[var]):
            return os.environ[var]
    candidates = ["/usr/local/cuda"]
    candidates += sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    nvcc = next(
        (
            Path(d) / "nvcc"
            for d in os.environ.get("PATH", "").split(os.pathsep)
            if (Path(d) / "nvcc").is_file()
        ),
        None,
    )
    if nvcc is not None:
        candidates.append(str(nvcc.resolve().parent.parent))
    return next((c for c in candidates if _is_toolkit(c)), None)


# torch.utils.cpp_extension reads CUDA_HOME once, at import: settle it before importing.
_cuda_home = find_cuda_home()
if _cuda_home:
    os.environ["CUDA_HOME"] = _cuda_home

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def want_cuda():
    force = os.environ.get("FORCE_CUDA")
    if force == "0":
        return False
    if force == "1":
        if not _cuda_home:
            sys.exit("FORCE_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME")
        if torch.version.cuda is None:
            sys.exit("FORCE_CUDA=1 but this torch is a CPU-only build: install a CUDA build")
        return True
    return bool(_cuda_home) and torch.version.cuda is not None and torch.cuda.is_available()


def wheel_cuda_includes():
    """Headers ATen's CUDA headers need (e.g. cusparse.h) that only the nvidia-* wheels ship."""
    found = []
    for site in sys.path:
        found += glob.glob(os.path.join(site, "nvidia", "*", "include"))
    return sorted(set(found))


def extension():
    cpu_sources = sorted(glob.glob("csrc/**/*.cpp", recursive=True))
    cuda_sources = sorted(glob.glob("csrc/**/*.cu", recursive=True))
    # The C++ standard is the one torch asks for. -fno-trapping-math lets gcc vectorise
    # branch-free selects around divisions, -fno-math-errno loops that take a square root;
    # results are unchanged (no FP traps are used, errno is never read).
    cxx = ["-O3", "-fopenmp", "-fno-trapping-math", "-fno-math-errno"]
    common = dict(
        name="scdepth._C", include_dirs=[str(ROOT / "csrc")], extra_link_args=["-fopenmp"]
    )
    if not want_cuda():
        return CppExtension(sources=cpu_sources, extra_compile_args={"cxx": cxx}, **common)
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0+PTX"  # no device to query: A100, H100
    # -idirafter: the wheels' headers only fill gaps, the toolkit's own headers win.
    after = [f for inc in wheel_cuda_includes() for f in ("-idirafter", inc)]
    nvcc = ["-O3", "-lineinfo", "--expt-relaxed-constexpr", "-DWITH_CUDA"]
    nvcc += [f for inc in wheel_cuda_includes() for f in ("-Xcompiler", f"-idirafter{inc}")]
    return CUDAExtension(
        sources=cpu_sources + cuda_sources,
        extra_compile_args={"cxx": cxx + ["-DWITH_CUDA"] + after, "nvcc": nvcc},
        **common,
    )


setup(
    ext_modules=[extension()], cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)}
)
