"""Campaigns: long seeded runs that check a claim and exit non-zero when it fails (docs/reliability.md).

Soak, lossy chain, safety (simulated and real time), fuzzing of every receive path and the loop-gain sweep; each
runs with ``python -m armbus.tools.campaigns.<name>``.
"""
