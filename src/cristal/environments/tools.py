"""The **tools** family (τ-bench style): an employee asks for something, the agent uses ERP tools under a policy.

A ``ToolsEnv`` is a ``gymnasium.Env``. ``reset(seed=...)`` gives the rollout a
folder of its own with a fresh copy of the ERP (the start state), draws the
task's instance for the seed, and computes the goal state by replaying the
task's reference actions on a second fresh copy. The observation is text, what
a Cristal agent sees: first the system prompt (the policy document, the tools)
and the employee's message, then each tool's reply or the employee's answer.
An action is a tool call, ``{"name": ..., "arguments": {...}}`` (``arguments`` may be
a JSON string, as models send it), or a message to the employee,
``{"message": ...}``; a JSON string of either is accepted too.

The episode ends when the agent calls ``done`` (terminated) or after the task's
``max_steps`` (truncated). The reward is 1 when the final database equals the
goal state, every required fact was told to the employee and every SQL check
holds, else 0; ``info["reward_details"]`` says which part failed.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import gymnasium
from gymnasium import spaces

from cristal.environments.erp import TOOLS, ErpCopy
from cristal.environments.task import TaskDefinition, TaskInstance, bindings
from cristal.environments.users import SimulatedUser, scripted_user
from cristal.errors import InvalidInput
from cristal.models.shapes import ToolCall, tool_message
from cristal.sample.knowledge import DOCUMENTS

SYSTEM = """You are Cristal, the expense assistant of {company}. You help the employee {email} with travel and
expense claims in the company's ERP. Follow the policy below exactly; look facts up with the sql tool rather than
guessing; ask the employee when something you need is missing; tell them the outcome, with the amounts; call done
when their request is handled.

# Policy

{policy}"""


class Utterance(spaces.Space[str]):
    """Any text (gymnasium's ``Text`` space limits the characters; tool results and policies use all of Unicode)."""

    def __init__(self) -> None:
        super().__init__()

    def contains(self, x: Any) -> bool:
        return isinstance(x, str)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return "".join(chr(int(c)) for c in self.np_random.integers(32, 127, size=int(self.np_random.integers(0, 40))))

    @property
    def is_np_flattenable(self) -> bool:
        return False


class ToolCallSpace(spaces.Space[Any]):
    """A tool call or a message to the employee (a mapping, or its JSON text)."""

    def __init__(self, tools: tuple[str, ...]) -> None:
        super().__init__()
        self.tools = tools

    def sample(self, mask: Any = None, probability: Any = None) -> Any:
        """A tool call without arguments or a short message (what ``gymnasium``'s checks and random agents use)."""
        choice = int(self.np_random.integers(0, len(self.tools) + 1))
        if choice == len(self.tools):
            return {"message": "Hello."}
        return {"name": self.tools[choice], "arguments": {}}

    def contains(self, x: Any) -> bool:
        try:
            parse_action(x)
        except ValueError:
            return False
        return True


def parse_action(action: Any) -> tuple[str, Any]:
    """``("message", text)`` or ``("tool", (name, arguments, call_id))``; ``ValueError`` when it is neither."""
    if isinstance(action, str):
        try:
            action = json.loads(action)
        except json.JSONDecodeError:
            raise ValueError("an action is a JSON object: {\"name\", \"arguments\"} or {\"message\"}") from None
    if not isinstance(action, dict):
        raise ValueError("an action is a mapping: {\"name\", \"arguments\"} or {\"message\"}")
    if "message" in action:
        if not isinstance(action["message"], str) or set(action) - {"message"}:
            raise ValueError("a message action is {\"message\": TEXT}")
        return "message", action["message"]
    name, arguments = action.get("name"), action.get("arguments", {})
    if not isinstance(name, str) or set(action) - {"name", "arguments", "id"}:
        raise ValueError("a tool call is {\"name\": TOOL, \"arguments\": {...}}")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            raise ValueError(f"the arguments of {name} are not JSON") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"the arguments of {name} are not a JSON object")
    return "tool", (name, arguments, action.get("id"))


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def told(fact: str, said: str) -> bool:
    """Whether ``said`` (the agent's messages, normalised) states ``fact``: a number as any number equal to it
    (``$975``, ``975.00`` and ``975`` all state 975), other text as a case- and space-insensitive substring."""
    try:
        value = float(fact.replace(",", ""))
    except ValueError:
        return _normal(fact) in said
    return any(abs(float(n.replace(",", "")) - value) < 0.005 for n in _NUMBER.findall(said))


class ToolsEnv(gymnasium.Env[str, Any]):
    """One task of the tools family as a Gymnasium environment (see the module docstring)."""

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012 - gymnasium's own class attribute

    def __init__(self, task: TaskDefinition, *, workdir: str | Path | None = None, max_steps: int | None = None,
                 user: SimulatedUser = scripted_user, render_mode: str | None = None) -> None:
        self.task = task
        self.user = user
        self.max_steps = max_steps or task.max_steps
        self.workdir = Path(workdir) if workdir is not None else None
        self.render_mode = render_mode
        self.observation_space = Utterance()
        self.action_space = ToolCallSpace(tuple(task.tools))
        self.policy_text = (DOCUMENTS / task.policy).read_text(encoding="utf-8")
        self.tool_schemas = [TOOLS[name].schema() for name in task.tools]
        self._folder: Path | None = None
        self._template: ErpCopy | None = None  # the start ERP built once per environment, copied per episode
        self.erp: ErpCopy | None = None
        self.instance: TaskInstance | None = None
        self.messages: list[dict[str, Any]] = []
        self._goal: dict[str, list[tuple[Any, ...]]] = {}
        self._steps = 0
        self._over = True

    # -- the rollout's own state

    def _fresh(self, name: str) -> ErpCopy:
        assert self._folder is not None
        if self._template is None:
            folder = Path(tempfile.mkdtemp(prefix=f"cristal-env-{self.task.name}-template-", dir=self.workdir))
            self._template = ErpCopy.build(folder, self.task.start_state.org)
        return self._template.copy(self._folder / f"{name}.db")

    def _discard(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        self._discard()
        self.messages, self._over, self.erp, self.instance = [], True, None, None  # nothing of the last episode survives
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
        self._folder = Path(tempfile.mkdtemp(prefix=f"cristal-env-{self.task.name}-", dir=self.workdir))
        start = self._fresh("start")
        instance = self.task.instance(seed, start.rows)
        binds = bindings(instance.values)
        start.execute(self.task.start_state.sql, binds)
        goal = self._fresh("goal")
        goal.execute(self.task.start_state.sql, binds)
        for name, arguments in instance.reference:
            reply = TOOLS[name].call(goal, arguments)
            if reply.startswith("error:"):
                raise InvalidInput(f"task {self.task.name} (seed {seed}): reference action {name} fails: {reply[7:]}")
        self._goal = goal.snapshot(self.task.ignore)
        goal.path.unlink()
        self.erp, self.instance, self._steps, self._over = start, instance, 0, False
        system = SYSTEM.format(company=self.task.start_state.org, email=instance.email, policy=self.policy_text.strip())
        self.messages = [{"role": "system", "content": system}, {"role": "user", "content": instance.instruction}]
        observation = f"{system}\n\n# Employee\n\n{instance.instruction}"
        return observation, {"task": self.task.name, "seed": seed, "tools": self.tool_schemas}

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._over or self.instance is None or self.erp is None:
            raise RuntimeError("the episode is over: call reset()")
        self._steps += 1
        terminated = False
        info: dict[str, Any]
        try:
            kind, value = parse_action(action)
        except ValueError as exc:
            observation, info = f"error: {exc}", {"kind": "invalid"}
        else:
            if kind == "message":
                self.messages.append({"role": "assistant", "content": value})
                observation = self.user(self.instance, self.messages)
                self.messages.append({"role": "user", "content": observation})
                info = {"kind": "message"}
            else:
                name, arguments, call_id = value
                call_id = call_id or f"call_{self._steps}"
                self.messages.append({"role": "assistant", "content": None,
                                      "tool_calls": [ToolCall(call_id, name, arguments).as_openai()]})
                if name not in self.task.tools:
                    observation = f"error: unknown tool {name!r}; the tools are {', '.join(self.task.tools)}"
                elif name == "done":
                    observation, terminated = "The conversation is over.", True
                else:
                    observation = TOOLS[name].call(self.erp, arguments)
                self.messages.append(tool_message(call_id, observation))
                info = {"kind": "tool", "tool": name}
        truncated = not terminated and self._steps >= self.max_steps
        reward = 0.0
        if terminated or truncated:
            self._over = True
            details = self.score()
            reward = details["reward"]
            info["reward_details"] = details
        info["steps"] = self._steps
        return observation, reward, terminated, truncated, info

    def score(self) -> dict[str, Any]:
        """The reward of the state the agent left and what it told the employee, with the reasons."""
        assert self.erp is not None and self.instance is not None
        said = _normal(" ".join(m["content"] for m in self.messages if m["role"] == "assistant" and m.get("content")))
        missing = [f for f in self.instance.facts if not told(f, said)]
        state_matches = self.erp.snapshot(self.task.ignore) == self._goal
        failed: list[str] = []
        for check in self.task.checker:
            try:
                rows = self.erp.rows(check.sql, bindings(self.instance.values))
                ok = bool(rows) and bool(next(iter(rows[0].values()), None))
            except Exception as exc:  # noqa: BLE001 - a checker that cannot run fails the rollout and says why
                failed.append(f"{check.says or check.sql}: cannot run ({exc})")
                continue
            if not ok:
                failed.append(check.says or check.sql)
        reward = 1.0 if state_matches and not missing and not failed else 0.0
        return {"reward": reward, "state_matches": state_matches, "facts_missing": missing, "checks_failed": failed}

    def render(self) -> str | None:  # ansi: the conversation as text
        return "\n".join(f"{m['role']}: {m.get('content') or json.dumps(m.get('tool_calls'))}" for m in self.messages)

    def close(self) -> None:
        self._discard()
        if self._template is not None:
            shutil.rmtree(self._template.path.parent.parent, ignore_errors=True)  # build_erp's FOLDER/sample/erp-ORG.db
            self._template = None
        self.erp = None
        super().close()
