"""``jobmeter.torch``: forward and backward times of PyTorch modules, and training progress.

``instrument(model)`` puts hooks on a model and its children; each call is a
``measure()`` block of ``jobmeter.operation.duration`` with ``torch.module``
and ``torch.phase``. ``epochs()`` counts a training loop's batches as a
``Backfill``: progress, rate and ETA. See docs/torch.md.
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401 - the extra this package needs, named in the error
except ModuleNotFoundError as exc:  # pragma: no cover - the test install has torch
    raise ModuleNotFoundError(
        "jobmeter.torch needs PyTorch: pip install 'jobmeter[torch]'", name="torch"
    ) from exc

from jobmeter._core.facade import publish
from jobmeter.torch._instrument import Instrumented, instrument
from jobmeter.torch._progress import Epochs, epochs

__all__ = [
    "Epochs",
    "Instrumented",
    "epochs",
    "instrument",
]

publish(globals())
