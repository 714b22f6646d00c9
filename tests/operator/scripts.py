"""Scripted "models" for the Operator tests (see ``cristal.operator.scripted``)."""

from __future__ import annotations

from typing import Any

from cristal.operator.scripted import act, element_id, latest_observation  # noqa: F401  (re-exported for the tests)
from tests.operator.site import USER


def login_steps(password: str = "{{PASSWORD}}") -> list[Any]:
    return [
        act("fill", 'textbox "E-mail"', text=USER),
        act("fill", 'textbox "Password"', text=password),
        act("click", 'button "Log in"'),
    ]


def new_claim_steps(description: str = "Train to Berlin", amount: str = "89.90", category: str = "Travel") -> list[Any]:
    return [
        act("click", 'link "New expense"'),
        act("fill", 'textbox "Description"', text=description),
        act("fill", 'textbox "Amount (EUR)"', text=amount),
        act("select_option", 'combobox "Category"', value=category),
        act("click", 'checkbox "Receipt attached"'),
    ]
