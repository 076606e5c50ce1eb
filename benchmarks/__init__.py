"""cadre-ledger's benchmark suite: SPEC §11's targets B1–B7, each beside a baseline measured in the same run.

`make bench` (or `python -m benchmarks`) runs them all and prints one table; `python -m benchmarks b3`
runs one. See docs/performance.md for the figures, the machine and how to read them.
"""
