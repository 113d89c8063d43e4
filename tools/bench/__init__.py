"""Benchmarks: each module prints figures (medians, ratios against a baseline run in the same process).

:mod:`~armbus.tools.bench.suite` runs them all as ``armbus bench``; each also runs alone with ``python -m``.
"""
