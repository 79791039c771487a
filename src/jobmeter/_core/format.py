"""Byte counts as text, in binary units: one formatter for the CLI and the plot.

The lowest layer of the package: nothing from jobmeter is imported here.
"""

from __future__ import annotations

#: Binary units, smallest first; TiB is the largest.
BYTE_UNITS: tuple[tuple[str, int], ...] = (
    ("B", 1),
    ("KiB", 2**10),
    ("MiB", 2**20),
    ("GiB", 2**30),
    ("TiB", 2**40),
)


def byte_unit(largest: float) -> tuple[str, int]:
    """The unit to show ``largest`` bytes in, and its size in bytes.

    Args:
        largest: Bytes; the sign does not count (a change of -2 MiB is in MiB).

    Returns:
        The largest unit that ``abs(largest)`` is at least one of (B under
        1 KiB, TiB from 1 TiB up), and that unit's size in bytes.
    """
    for name, size in BYTE_UNITS[:-1]:
        if abs(largest) < size * 1024:
            return name, size
    return BYTE_UNITS[-1]  # also NaN, which no comparison holds for


def format_bytes(value: float | None, *, significant: int | None = None) -> str:
    """Bytes in the unit :func:`byte_unit` chooses: ``512 B``, ``1.5 KiB``, ``300.0 MiB``.

    Args:
        value: Bytes; ``None`` is shown as ``-``.
        significant: ``None`` (the CLI's tables): one decimal, ``300.0 MiB``.
            A number (the plot uses 3): that many significant figures, and
            whole numbers from ``10 ** (significant - 1)`` of a unit up, never
            an exponent: ``1.5 KiB``, ``12.3 MiB``, ``300 MiB``.

    Returns:
        The value and its unit; whole bytes below 1 KiB either way.
    """
    if value is None:
        return "-"
    name, size = byte_unit(value)
    scaled = value / size
    if size == 1:
        return f"{scaled:.0f} {name}"
    if significant is None:
        return f"{scaled:.1f} {name}"
    if abs(scaled) >= 10 ** (significant - 1):
        return f"{scaled:.0f} {name}"
    return f"{scaled:.{significant}g} {name}"


def format_joules(value: float | None) -> str:
    """Energy as text: ``850 J``, ``12.3 kJ``, ``4.56 MJ``; ``-`` for None."""
    if value is None:
        return "-"
    for unit, size in (("MJ", 1e6), ("kJ", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g} J"
