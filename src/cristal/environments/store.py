"""Stored rollouts, and their export as training data (OpenAI chat ``messages`` with ``tool_calls`` plus ``tools``).

``save`` keeps a batch of rollouts in ``env_rollouts`` with their provenance.
``export`` writes one JSON line per stored rollout that passes the filters:
``{"messages": [...], "tools": [...]}``, the format of OpenAI's fine-tuning for
tool calling, which TRL and prime-rl read as a conversational dataset with
tools. Rollouts with the same messages are written once; the file is written
whole or not at all (``write_lines``, which ``cristal env run --out`` uses too).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cristal.db.schema import EnvRollout
from cristal.environments.rollouts import Rollout


def save(session: Session, rollouts: list[Rollout]) -> str:
    """Store ``rollouts`` as one batch; returns the batch id."""
    batch = "envb_" + secrets.token_hex(8)
    session.add_all(EnvRollout(
        batch=batch, env_id=r.env_id, task=r.task, family=r.family, seed=r.seed, policy=r.policy, model=r.model, tokens=r.tokens,
        reward=r.reward, steps=r.steps, seconds=r.seconds, terminated=r.terminated, error=r.error, details=r.details,
        messages=r.messages, tools=r.tools) for r in rollouts)
    return batch


def example(row: EnvRollout) -> dict[str, Any]:
    """A stored rollout as one fine-tuning example: the chat messages and the tools' JSON schemas."""
    return {"messages": row.messages, "tools": row.tools}


def export(session: Session, out: Path, *, min_reward: float | None = None, env: str | None = None,
           policy: str | None = None) -> dict[str, int]:
    """Write the stored rollouts that pass the filters to ``out`` as JSONL; returns what was read, written, repeated."""
    query = select(EnvRollout).where(EnvRollout.error.is_(None)).order_by(EnvRollout.id)
    if min_reward is not None:
        query = query.where(EnvRollout.reward >= min_reward)
    if env is not None:
        query = query.where((EnvRollout.env_id == env) | (EnvRollout.task == env) | (EnvRollout.family == env))
    if policy is not None:
        query = query.where(EnvRollout.policy == policy)
    seen: set[str] = set()
    counts = {"read": 0, "written": 0, "duplicates": 0}

    def lines() -> Iterator[str]:
        for row in session.scalars(query):
            counts["read"] += 1
            key = json.dumps(row.messages, ensure_ascii=False, sort_keys=True)
            if key in seen:
                counts["duplicates"] += 1
                continue
            seen.add(key)
            yield json.dumps(example(row), ensure_ascii=False, sort_keys=True)

    counts["written"] = write_lines(out, lines())
    return counts


def write_lines(out: Path, lines: Iterable[str]) -> int:
    """Write ``lines`` (one JSON document each) to ``out`` whole or not at all; returns how many were written.

    They go to a temporary file beside ``out`` that replaces it at the end, so a reader never sees half a file
    and a failure midway leaves ``out`` as it was.
    """
    tmp = out.with_name(out.name + ".tmp")
    written = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line + "\n")
                written += 1
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written
