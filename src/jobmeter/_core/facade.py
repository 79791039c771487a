"""What the public facades share: their objects carry the facade's module name."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any


def publish(namespace: Mapping[str, Any]) -> None:
    """Set ``__module__`` of each class and function in a facade's ``__all__`` to the facade.

    Reprs, the ``error.type`` of jobmeter's exceptions, doctest and the API
    docs then name the public path (``jobmeter.duckdb.DuckDBCollector``), not
    the private module that defines it. Called as ``publish(globals())``; a
    name the facade loads on first use (its ``__getattr__``) is left to it.
    """
    for name in namespace["__all__"]:
        obj = namespace.get(name)
        # Not inspect: importing it costs about 10 ms, which every command would pay.
        if isinstance(obj, type | types.FunctionType):
            obj.__module__ = namespace["__name__"]
