"""Benchmarks of the deploy workflow against the shell-script baseline: the Packer + AWS CLI shell-script pipeline
users run today, which polls every 15 s and makes one CLI call per delete (README, "Performance").

Plain functions returning plain data; `python -m benchmarks` prints them.
- `benchmarks.baseline`: the shell-script baseline, played: its orchestration as a state machine, its prune loop.
- `benchmarks.prune`: API calls by operation and wall time of pruning thousands of AMIs, ours against the baseline's
  loop, in the emulated account of `benchmarks.prune_world`.
- `benchmarks.imports`: cold import time of every handler module, and of boto3 alone.
- `benchmarks.cost`: what state transitions and Lambda invocations cost at AWS's published prices.
"""
