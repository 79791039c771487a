"""What the public facades share: their objects carry the facade's module name."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any


def publish(namespace: Mapping[str, Any]) -> None:
    """Set ``__module__`` of each class and function in a facade's ``__all__`` to the facade.

    Reprs, the ``error.type`` of jobmeter's exceptions, doctest and the API
    docs then name the public path (``jobmeter.duckdb.DuckDBCollector``), not
    the private module that defines it. Called as ``publish(globals())``.
    """
    for name in namespace["__all__"]:
        obj = namespace[name]
        if inspect.isclass(obj) or inspect.isfunction(obj):
            obj.__module__ = namespace["__name__"]
