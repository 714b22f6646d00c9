"""The Operator: an agent that does tasks in web applications through a real browser.

``run_operator`` drives a headless Chromium (one isolated context per run)
with a model choosing tool calls through the LLM gateway; ``replay_trajectory``
repeats a recorded run with no model. The rules of a run (allowed domains,
secrets, approval of the state-changing requests actions send) live in ``safety``; every
action is authorized (``operator.act``) and audited.

Names are imported on first use, as in ``cristal.models``: Playwright and the
model client load with the browser and the run, not with ``cristal.operator.policy``
(``cristal operator domains`` opens no browser).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "AllowList": "safety",
    "BrowserSession": "browser",
    "Observation": "observation",
    "ReplayResult": "replay",
    "RunConfig": "run",
    "RunResult": "run",
    "Secrets": "safety",
    "Timing": "browser",
    "chromium": "browser",
    "load_trajectory": "record",
    "replay_trajectory": "replay",
    "run_operator": "run",
}
_RENAMED = {"load_trajectory": "load"}

__all__ = [
    "AllowList", "BrowserSession", "Observation", "ReplayResult", "RunConfig", "RunResult", "Secrets", "Timing",
    "chromium", "load_trajectory", "replay_trajectory", "run_operator",
]

if TYPE_CHECKING:
    from cristal.operator.browser import BrowserSession, Timing, chromium
    from cristal.operator.observation import Observation
    from cristal.operator.record import load as load_trajectory
    from cristal.operator.replay import ReplayResult, replay_trajectory
    from cristal.operator.run import RunConfig, RunResult, run_operator
    from cristal.operator.safety import AllowList, Secrets


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cristal.operator' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cristal.operator.{module}"), _RENAMED.get(name, name))
