"""The Operator: an agent that does tasks in web applications through a real browser.

``run_operator`` drives a headless Chromium (one isolated context per run)
with a model choosing tool calls through the LLM gateway; ``replay_trajectory``
repeats a recorded run with no model. The rules of a run (allowed domains,
secrets, approval of irreversible-looking actions) live in ``safety``; every
action is authorized (``operator.act``) and audited.
"""

from cristal.operator.browser import BrowserSession, Timing, chromium
from cristal.operator.observation import Observation
from cristal.operator.record import load as load_trajectory
from cristal.operator.replay import ReplayResult, replay_trajectory
from cristal.operator.run import RunConfig, RunResult, run_operator
from cristal.operator.safety import AllowList, Secrets

__all__ = [
    "AllowList", "BrowserSession", "Observation", "ReplayResult", "RunConfig", "RunResult", "Secrets", "Timing",
    "chromium", "load_trajectory", "replay_trajectory", "run_operator",
]
