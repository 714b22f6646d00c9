"""Training environments: company work as tasks with seeded instances and rewards computed from the state left behind.

A task is a YAML file (``task.py``): an instruction template and its parameters,
a start-state fixture, the tools the agent gets, the policy document it must
follow, the reference actions that solve it and the facts the user must be
told, and SQL checks over the resulting state. The **tools** family
(``tools.py``, τ-bench style) runs a task over a per-rollout copy of the sample
company's ERP database with a simulated employee; each task is a
``gymnasium.Env`` (``gym.py``) registered as ``cristal/tools-NAME-v0``.
``rollouts.py`` runs policies (``policies.py``) over seeds and reports success,
mean reward, pass@k and pass^k.

This package sits in the layer of workflows and agents and, unlike them, may
import ``cristal.sample``: the environments are built *from* the sample company
(its ERP, its policy documents), the way the Operator's demo is.
"""
