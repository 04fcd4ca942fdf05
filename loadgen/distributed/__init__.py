"""Distributed runs on Dask (``loadgen run SCENARIO --cluster tcp://SCHED:8786``).

Optional: ``pip install 'loadgen[distributed]'``. Nothing outside this package imports
Dask, and this package imports it only when a distributed run starts.

* ``coordinator``: where the CLI's run goes: checks the cluster, splits the load over the
  hosts, names the shared start instant, gathers ticks and merges the results;
* ``bridge``: the Dask task on each worker: starts the host process tree and relays;
* ``host``: the host process (``python -m loadgen.distributed.host``): the one-host
  multi-process path with its start decided by the coordinator;
* ``clock``: clock offsets to the scheduler and the start instant in CLOCK_MONOTONIC;
* ``frames``: the pipe protocol between a bridge and its host process.
"""
