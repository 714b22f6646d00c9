"""Checkpoints of research steps belong to one organization and person: nobody can squat the id another
organization's run will use, and notes that belong to someone else are never resumed or overwritten."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from cristal.actions import build_registry
from cristal.errors import AccessDenied
from cristal.identity.directory import org_by_slug
from cristal.research.checkpoints import checkpoint_for, claim_checkpoint
from cristal.research.notes import Notes
from cristal.workflows.steps import Meta, perform

Q = "What is the hotel cap in Munich?"
SPEC: dict[str, Any] = {"question": Q, "mode": "extractive", "lang": None, "max_steps": 30, "max_tokens": 60_000, "max_seconds": 300.0}


def _org_id(rdb, slug: str) -> int:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with rdb.session() as s:
        return org_by_slug(s, slug).id


def _squat(store, checkpoint: str, who) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """What another organization's employee can leave behind under an id: their own notes."""
    intruder = who("eng@empty.example", "empty")
    store.save(checkpoint, Notes("squatted", "en", "extractive", intruder.label, "empty"))


def test_a_foreign_checkpoint_does_not_break_another_organizations_run(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    acme = _org_id(rdb, "acme")
    meta = Meta("run_0123456789abcdef", "report", None, acme, "eng@acme.example", None)
    # Every id the run could be expected to use is taken by organization "empty": the id the step used to derive
    # (sha256 of run and step), the first id derived from (org, run, step), and a pinned one.
    squatted = {hashlib.sha256(meta.key.encode()).hexdigest()[:12], checkpoint_for(acme, meta.key), "00000000beef"}
    for checkpoint in squatted:
        _squat(store, checkpoint, who)
    out = perform(build_registry(), rdb, settings, "research", meta, {**SPEC, "checkpoint": "00000000beef"})
    assert out["status"] == "complete" and "180 EUR" in out["report"]
    assert out["research_id"] not in squatted
    assert store.owner(out["research_id"]) == (acme, "user:eng@acme.example@acme")
    for checkpoint in squatted:  # the intruder's rows are left as they were
        notes, result = store.load(checkpoint)
        assert notes.question == "squatted" and result is None
    # The same step run again (a crash, a worker taking over) finds the same notes: the choice is stable.
    assert claim_checkpoint(store, acme, "user:eng@acme.example@acme", meta.key) == out["research_id"]
    again = perform(build_registry(), rdb, settings, "research", meta, SPEC)
    assert again["research_id"] == out["research_id"] and again["report"] == out["report"]


def test_checkpoint_ids_differ_between_organizations_and_cannot_be_overwritten(rdb, who, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    acme, empty = _org_id(rdb, "acme"), _org_id(rdb, "empty")
    key = "run_same:step"
    assert checkpoint_for(acme, key) != checkpoint_for(empty, key)
    assert len({checkpoint_for(acme, key, n) for n in range(5)}) == 5
    _squat(store, "0123456789ab", who)
    mine = who("eng@acme.example")
    with pytest.raises(AccessDenied):
        store.save("0123456789ab", Notes("mine", "en", "extractive", mine.label, "acme"))
    assert store.load("0123456789ab")[0].question == "squatted"
