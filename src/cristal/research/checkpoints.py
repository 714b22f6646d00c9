"""What a ``research`` workflow step needs at step time: its checkpoint id and where it reports progress.

A step's notes are checkpointed in the database after every phase under an id
derived from the organization and the step's idempotency key (run, step,
item), or pinned by ``cristal research`` in the step's spec, so a step that
runs again after a crash finds its notes and continues without repeating
searches or model calls. A foreground ``cristal research`` hands the step its
progress printer as the run's extra ``PROGRESS``
(:func:`cristal.durable.runtime.run_here`, read by :func:`progress_for`).
Starting and resuming research runs is :mod:`cristal.workflows.research_runs`.
"""

from __future__ import annotations

import hashlib

from cristal.research.run import Progress
from cristal.research.store import CHECKPOINT_ID, CheckpointStore, new_run_id

PROGRESS = "research.progress"  # the run extra a foreground `cristal research` hands its step


# How many derived ids a step tries before it gives up on determinism (each one taken by someone else).
FALLBACKS = 16


def checkpoint_for(org_id: int, key: str, attempt: int = 0) -> str:
    """The checkpoint id a ``research`` step derives from its organization and idempotency key (run, step, item).

    Stable across replays, so a step that runs again after a crash finds its
    notes; the organization is part of it, so runs of different organizations
    never derive the same id. ``attempt`` gives the fallbacks used when an id
    is already taken by someone else.
    """
    material = f"{org_id}:{key}" + (f"#{attempt}" if attempt else "")
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def claim_checkpoint(store: CheckpointStore, org_id: int, principal_label: str, key: str,
                     pinned: str | None = None) -> str:
    """The checkpoint a research step works on: ``pinned`` (by `cristal research`) or derived from (org, run, step).

    An id whose notes belong to someone else (another organization or person:
    squatted, or a freak collision) is skipped for the next derived one, so a
    run starts fresh instead of failing; the same order on a replay finds the
    same notes again.
    """
    candidates = ([pinned] if pinned and CHECKPOINT_ID.match(pinned) else [])
    candidates += [checkpoint_for(org_id, key, n) for n in range(FALLBACKS)]
    for candidate in candidates:
        owner = store.owner(candidate)
        if owner is None or owner == (org_id, principal_label):
            return candidate
    return new_run_id()


def progress_for(run_id: str) -> Progress | None:
    """Where the research step of run ``run_id`` reports progress (a foreground caller in this process)."""
    from cristal.durable.runtime import extra

    progress: Progress | None = extra(run_id, PROGRESS)
    return progress
