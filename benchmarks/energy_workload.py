"""A fixed, CPU-bound job for comparing energy tools: pure-Python arithmetic and 200 MB of memory.

``python benchmarks/energy_workload.py --seconds 20`` does a fixed number of
rounds of integer arithmetic (``--seconds`` times ``ROUNDS_PER_SECOND``, the
rate of one core of the machine the comparison was made on), after filling a
200 MB ``bytearray`` page by page. The work depends on the arguments only, not
on the clock, so a tool that slows the job down shows as more wall and CPU
time. It prints one JSON line: the rounds, the checksum (the same for the same
rounds), its own wall and CPU seconds, and the CPU seconds of the thread that
did the work (``thread_cpu_s``: without any other thread of the process).
Standard library only, so that any interpreter can run it:
``compare_codecarbon.py`` imports ``work()`` into codecarbon's virtual
environment to run it inside a tracker.
"""

from __future__ import annotations

import argparse
import json
import time

#: Rounds of ``_round`` one core of the 2-vCPU AMD EPYC VM did per second (Python 3.11).
ROUNDS_PER_SECOND = 6_700
MEMORY_BYTES = 200 * 10**6
PAGE = 4096


def _round(seed: int) -> int:
    """1,000 steps of integer arithmetic that the interpreter cannot skip."""
    total = seed
    for i in range(1, 1_001):
        total = (total * 1_103_515_245 + i) % 2_147_483_647
        total ^= i << 3
    return total


def work(rounds: int, memory_bytes: int = MEMORY_BYTES) -> int:
    """Touch every page of ``memory_bytes``, then do ``rounds`` rounds; the checksum."""
    block = bytearray(memory_bytes)
    for offset in range(0, memory_bytes, PAGE):  # resident, private and dirty
        block[offset] = 1
    checksum = sum(block[::PAGE])
    for n in range(rounds):
        checksum = (checksum + _round(n)) % 2_147_483_647
    del block
    return checksum


def rounds_for(seconds: float) -> int:
    """The rounds that take about ``seconds`` on the reference machine."""
    return max(1, round(seconds * ROUNDS_PER_SECOND))


def main(argv: list[str] | None = None) -> int:
    """Run the job and print what it did as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=20.0,
        help="about how long to run on the reference machine (default 20)",
    )
    parser.add_argument(
        "--rounds", type=int, help="the exact number of rounds (wins over --seconds)"
    )
    parser.add_argument("--memory-mb", type=int, default=MEMORY_BYTES // 10**6, help="MB to fill")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else rounds_for(args.seconds)
    wall, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
    checksum = work(rounds, args.memory_mb * 10**6)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    thread = time.thread_time() - thread  # the work alone: no other thread's CPU
    print(json.dumps({"rounds": rounds, "checksum": checksum, "wall_s": wall, "cpu_s": cpu,
                      "thread_cpu_s": thread}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
