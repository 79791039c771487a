"""Which GPUs a CUDA program may use: ``CUDA_VISIBLE_DEVICES`` read the way CUDA reads it.

Pure functions over the GPUs that NVML listed; ``nvml`` (the only module that
talks to pynvml) supplies the GPUs and, when a value names MIG devices, the
MIG devices of the GPUs in MIG mode. The rules, from the CUDA Programming
Guide ("CUDA Environment Variables") and what PyTorch and nvitop found the
driver to do:

- unset: every GPU; set but empty: none.
- A comma-separated list, each entry stripped of blanks. The first entry
  decides its kind: UUIDs (``GPU-…``, ``MIG-…``) or indices. An entry of the
  other kind, or one that names no GPU, ends the list: the GPUs before it
  stay visible, the ones after it do not.
- An index is read like ``strtoul`` (``"1gpu"`` is 1); negative or past the
  last GPU is invalid. It is an NVML index, the order of ``nvidia-smi``: what
  CUDA uses under ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
- ``GPU-<uuid>`` may be shortened to any prefix naming one GPU only.
- ``MIG-<uuid>`` (same prefix rule) and, before driver R470,
  ``MIG-GPU-<gpu uuid>/<GPU instance>/<compute instance>`` name a MIG device;
  its physical GPU is the one visible. CUDA enumerates a single MIG device, so
  MIG entries after the first add nothing.
- A device named twice makes CUDA see no device at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from jobmeter._core.gpu import GpuDevice

VISIBLE_DEVICES: Final = "CUDA_VISIBLE_DEVICES"
DEVICE_ORDER: Final = "CUDA_DEVICE_ORDER"
PCI_BUS_ID: Final = "PCI_BUS_ID"

_INDEX: Final = re.compile(r"[+-]?\d+")  # what strtoul reads, sign included
_LEGACY_MIG: Final = re.compile(r"MIG-(GPU-[^/]+)/(\d+)/(\d+)")


@dataclass(frozen=True)
class MigDevice:
    """One MIG device (a compute instance of a GPU instance) of a GPU in MIG mode."""

    uuid: str  # MIG-…
    parent: str  # the physical GPU's UUID, GPU-…
    gpu_instance: int | None = None  # None: NVML did not tell
    compute_instance: int | None = None


@dataclass(frozen=True)
class Visible:
    """The physical GPUs (by UUID) that a CUDA program would use."""

    uuids: frozenset[str]
    by_index: bool = False  # named by index, whose meaning CUDA_DEVICE_ORDER may change


def resolve(
    value: str | None, gpus: Sequence[GpuDevice], migs: Callable[[], Sequence[MigDevice]]
) -> Visible:
    """The GPUs of ``gpus`` that ``CUDA_VISIBLE_DEVICES=value`` lets CUDA use.

    ``gpus`` are in NVML index order; ``migs`` is called only when the value
    names a MIG device.
    """
    if value is None:
        return Visible(frozenset(gpu.uuid for gpu in gpus))
    entries = [entry.strip() for entry in value.split(",")]
    by_uuid = entries[0].startswith(("GPU-", "MIG-"))
    named: list[str] = []  # each GPU or MIG device named so far
    visible: set[str] = set()
    mig_named = False
    for entry in entries:
        found = _by_uuid(entry, gpus, migs) if by_uuid else _by_index(entry, gpus)
        if found is None:
            break
        device, gpu = found
        if device in named:
            return Visible(frozenset(), by_index=not by_uuid)
        named.append(device)
        if device != gpu:  # a MIG device
            if mig_named:
                continue
            mig_named = True
        visible.add(gpu)
    return Visible(frozenset(visible), by_index=not by_uuid)


def order_is_ambiguous(visible: Visible, order: str | None, gpus: Sequence[GpuDevice]) -> bool:
    """Whether CUDA's own numbering could pick other GPUs than the NVML indices did.

    CUDA's default order (FASTEST_FIRST) sorts GPUs by speed and, in practice,
    keeps the bus order among equal ones: it can differ only between different
    models, and only matters when some GPUs are in and some out.
    """
    return (
        visible.by_index
        and order != PCI_BUS_ID
        and 0 < len(visible.uuids) < len(gpus)
        and len({gpu.name for gpu in gpus}) > 1
    )


def _by_index(entry: str, gpus: Sequence[GpuDevice]) -> tuple[str, str] | None:
    match = _INDEX.match(entry)
    if match is None:
        return None
    index = int(match.group())
    if not 0 <= index < len(gpus):
        return None
    return gpus[index].uuid, gpus[index].uuid


def _by_uuid(
    entry: str, gpus: Sequence[GpuDevice], migs: Callable[[], Sequence[MigDevice]]
) -> tuple[str, str] | None:
    """(the device named, its physical GPU's UUID), or None if it names none."""
    legacy = _LEGACY_MIG.fullmatch(entry)
    if legacy is not None:
        gpu = _one([g.uuid for g in gpus if g.mig], legacy.group(1))
        if gpu is None:
            return None
        instances = (int(legacy.group(2)), int(legacy.group(3)))
        for mig in migs():
            if mig.parent == gpu and _same_instances(mig, instances):
                return mig.uuid, gpu
        return None
    if entry.startswith("MIG-"):
        by_uuid = {mig.uuid: mig.parent for mig in migs()}
        mig_uuid = _one(list(by_uuid), entry)
        return None if mig_uuid is None else (mig_uuid, by_uuid[mig_uuid])
    if entry.startswith("GPU-"):
        gpu = _one([g.uuid for g in gpus], entry)
        return None if gpu is None else (gpu, gpu)
    return None


def _one(uuids: list[str], prefix: str) -> str | None:
    """The one UUID that starts with ``prefix``; None if none or several do."""
    found = [uuid for uuid in uuids if uuid.startswith(prefix)]
    return found[0] if len(found) == 1 else None


def _same_instances(mig: MigDevice, instances: tuple[int, int]) -> bool:
    # Instance ids NVML would not tell match any: the GPU is the job's either way.
    if mig.gpu_instance is None or mig.compute_instance is None:
        return True
    return (mig.gpu_instance, mig.compute_instance) == instances
