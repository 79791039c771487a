"""Which AMD GPUs a ROCm program may use: ``ROCR_VISIBLE_DEVICES``, then ``HIP_VISIBLE_DEVICES``.

Pure functions over the GPUs that AMD SMI listed; ``amdsmi`` (the only module
that talks to the amdsmi package) supplies the GPUs and the names each may go
by. The rules, from the ROCm documentation ("GPU isolation techniques") and
what the ROCr runtime does with them:

- unset: every GPU; set but empty: none.
- A comma-separated list, each entry stripped of blanks. An entry is an
  index (decimal, in AMD SMI's order, which is the order of ``amd-smi list``
  and ``rocm-smi``) or a UUID starting ``GPU-``; the two kinds may be mixed
  (``0,GPU-4b2c1a9f...``). UUIDs compare without regard to case.
- An entry that names no GPU ends the list: the GPUs before it stay visible,
  the ones after it do not. A GPU named twice counts once.
- ``HIP_VISIBLE_DEVICES`` (indices, or UUIDs) applies on top, to the GPUs
  that ``ROCR_VISIBLE_DEVICES`` left: its index 0 is the first of those.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from jobmeter._core.gpu import GpuDevice

ROCR_VISIBLE_DEVICES: Final = "ROCR_VISIBLE_DEVICES"
HIP_VISIBLE_DEVICES: Final = "HIP_VISIBLE_DEVICES"

_INDEX: Final = re.compile(r"\d+")


def resolve(
    rocr: str | None,
    hip: str | None,
    gpus: Sequence[GpuDevice],
    names: Callable[[GpuDevice], frozenset[str]],
) -> frozenset[str]:
    """The UUIDs of the GPUs of ``gpus`` that the two variables let a ROCm program use.

    ``gpus`` are in AMD SMI's index order; ``names(gpu)`` are the lower-case
    UUIDs (``gpu-…``) that may name it.
    """
    visible = list(gpus) if rocr is None else _select(rocr, gpus, names)
    if hip is not None:
        visible = _select(hip, visible, names)
    return frozenset(gpu.uuid for gpu in visible)


def _select(
    value: str, gpus: Sequence[GpuDevice], names: Callable[[GpuDevice], frozenset[str]]
) -> list[GpuDevice]:
    chosen: list[GpuDevice] = []
    for entry in (item.strip() for item in value.split(",")):
        gpu = (
            _by_uuid(entry, gpus, names) if entry[:4].upper() == "GPU-" else _by_index(entry, gpus)
        )
        if gpu is None:
            break
        if gpu not in chosen:
            chosen.append(gpu)
    return chosen


def _by_index(entry: str, gpus: Sequence[GpuDevice]) -> GpuDevice | None:
    if _INDEX.fullmatch(entry) is None or int(entry) >= len(gpus):
        return None
    return gpus[int(entry)]


def _by_uuid(
    entry: str, gpus: Sequence[GpuDevice], names: Callable[[GpuDevice], frozenset[str]]
) -> GpuDevice | None:
    wanted = entry.lower()
    found = [gpu for gpu in gpus if wanted in names(gpu)]
    return found[0] if len(found) == 1 else None
