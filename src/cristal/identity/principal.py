"""Who is asking: the principal every search, tool call and step carries."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Principal:
    """An employee of one organization, or the installation's operator.

    The operator is whoever runs the CLI on the server without ``--as``: they
    may manage organizations and people but never read company data, so there
    is no ambient super-user for agents to borrow.
    """

    kind: Literal["user", "operator"]
    name: str
    org_id: int | None = None
    org_slug: str | None = None
    user_id: int | None = None
    role: str = "member"
    groups: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def operator(cls, name: str | None = None) -> Principal:
        try:
            who = name or getpass.getuser()
        except (KeyError, OSError):
            who = "unknown"
        return cls(kind="operator", name=who, role="operator")

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"

    @property
    def is_admin(self) -> bool:
        return self.kind == "user" and self.role == "admin"

    @property
    def email(self) -> str | None:
        return self.name if self.kind == "user" else None

    @property
    def label(self) -> str:
        """How the principal appears in audit records: ``user:EMAIL@org`` or ``operator:NAME``."""
        if self.is_operator:
            return f"operator:{self.name}"
        return f"user:{self.name}@{self.org_slug}"

    def acl_matchers(self) -> frozenset[str]:
        """The access-rule strings (``org``, ``user:EMAIL``, ``group:NAME``) that match this principal.

        Retrieval filters with these inside its query, so the rules' meaning is
        defined here once, next to ``authorize``.
        """
        if self.is_operator:
            return frozenset()
        return frozenset({"org", f"user:{self.name}"} | {f"group:{g}" for g in self.groups})
