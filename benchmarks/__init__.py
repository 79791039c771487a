"""Benchmarks of jobmeter against references measured in the same run.

Run ``make bench`` (``python -m benchmarks``); see benchmarks/README.md. What
the benchmark modules share is in ``benchmarks._common``.
"""
