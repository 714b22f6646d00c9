"""The built-in tasks (``tasks/*.yaml``) and finding a task by environment id or name.

A company adds its own tasks by writing task files in the same format and
passing their paths (``cristal env run --task-file FILE``); the built-in ones
are read from this package each time they are asked for (a few small files),
so nothing is held between calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cristal.environments.task import TaskDefinition, load_task
from cristal.errors import InvalidInput, NotFound
from cristal.sample.knowledge import DOCUMENTS

TASKS = Path(__file__).parent / "tasks"


def checked(task: TaskDefinition, origin: str) -> TaskDefinition:
    """``task``, once its policy document is known to exist among the sample company's documents."""
    if not (DOCUMENTS / task.policy).is_file():
        raise InvalidInput(f"{origin}: policy: no sample document {task.policy!r}")
    return task


def builtin_tasks() -> list[TaskDefinition]:
    return [checked(load_task(p), str(p)) for p in sorted(TASKS.glob("*.yaml"))]


def tasks(files: Iterable[str | Path] = ()) -> list[TaskDefinition]:
    """The built-in tasks followed by the tasks in ``files``; two with one environment id are an error."""
    found = builtin_tasks() + [checked(load_task(f), str(f)) for f in files]
    seen: set[str] = set()
    for task in found:
        if task.env_id in seen:
            raise InvalidInput(f"two tasks have the environment id {task.env_id}")
        seen.add(task.env_id)
    return found


def select(wanted: str, available: list[TaskDefinition]) -> list[TaskDefinition]:
    """The tasks ``wanted`` names: an environment id, a task name, a family (``tools``) or ``all``."""
    if wanted == "all":
        return available
    chosen = [t for t in available if wanted in (t.env_id, t.name, t.family)]
    if not chosen:
        raise NotFound(f"no environment {wanted!r}; see `cristal env list`")
    return chosen
