"""Benchmarks of the deploy workflow against the seed pipeline's approach (README, "Performance").

Plain functions returning plain data; `python -m benchmarks` prints them.
- `benchmarks.prune`: API calls by operation and wall time of pruning thousands of AMIs, ours against the seed's loop.
- `benchmarks.imports`: cold import time of every handler module, and of boto3 alone.
- `benchmarks.cost`: what state transitions and Lambda invocations cost at AWS's published prices.
"""
