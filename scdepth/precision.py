"""Mixed precision: which autocast dtype the networks run in (cfg.amp)."""

from __future__ import annotations

import torch

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bf16 natively: a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 or AMX (elsewhere bf16 is emulated and slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: may move
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def amp_dtype(setting: str, device: torch.device):
    """The networks' autocast dtype of cfg.amp; auto = bf16 where it is native, else none."""
    if setting == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    return AMP_DTYPES[setting]
