"""Gymnasium registration: every task as ``cristal/FAMILY-NAME-v0``.

``register_envs()`` registers the built-in tasks (and any task files given)
with Gymnasium's registry, which belongs to Gymnasium; calling it again is
harmless. Then ``gymnasium.make("cristal/tools-file-mileage-v0")`` builds the
environment; keyword arguments (``workdir``, ``max_steps``) pass through.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gymnasium

from cristal.environments.catalog import select, tasks
from cristal.environments.tools import ToolsEnv


def make_env(task: str, task_files: tuple[str, ...] = (), **kwargs: Any) -> ToolsEnv:
    """The entry point Gymnasium calls: the environment of ``task`` (an environment id or a task name)."""
    return ToolsEnv(select(task, tasks(task_files))[0], **kwargs)


def register_envs(task_files: Iterable[str | Path] = ()) -> list[str]:
    """Register every task's environment id; returns the ids."""
    files = tuple(str(f) for f in task_files)
    ids = []
    for task in tasks(files):
        if task.env_id not in gymnasium.registry:
            gymnasium.register(id=task.env_id, entry_point="cristal.environments.gym:make_env",
                               kwargs={"task": task.env_id, "task_files": files}, disable_env_checker=False)
        ids.append(task.env_id)
    return ids
