"""The durable runtime: how work is done safely, below the layers that decide what work to do.

Every run -- a workflow, ``cristal research``, ``cristal operate`` -- is a DBOS
workflow executed by this runtime. What lives where:

* :mod:`cristal.durable.runtime` -- DBOS in this process: launch, shutdown,
  executors and their heartbeat, recovery and takeover of dead executors, the
  database's DBOS client, and :func:`~cristal.durable.runtime.run_here`, the one
  way to run a run in the foreground and end the process cleanly;
* :mod:`cristal.durable.store` -- Cristal's view of runs and steps (idempotent
  writes, safe on replay);
* :mod:`cristal.durable.approvals` -- human approvals and the one loop that
  waits for a decision;
* :mod:`cristal.durable.limits` -- per-organization limits on action kinds
  across all workers;
* :mod:`cristal.durable.schema` -- their tables.

What a workflow run does step by step (the interpreter) is in
:mod:`cristal.workflows.engine`; this package imports nothing above it.
"""
