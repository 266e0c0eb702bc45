"""Runs across processes and machines on Ray (the optional extra ``genreg[ray]``).

- ``cluster``: connect to a Ray cluster, or start a local one bound to 127.0.0.1;
- ``pool``: worker processes (Ray actors) that each host one service object, replaced when they die,
  and an in-process pool with the same interface (tests, and runs without Ray);
- ``es``: an evolution strategy's members scored on workers that hold the task once and a replica of
  the strategy's state, so that a generation's messages carry scalars, never weights.

Nothing here imports Ray until a cluster is asked for.
"""
