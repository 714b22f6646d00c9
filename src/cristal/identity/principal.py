"""Who is asking: the principal every search, tool call and step carries."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Principal:
    """An employee of one organization, or the installation itself.

    The installation principal is whoever runs the CLI on the server without
    ``--as`` (and the engine's own jobs): it may manage organizations and
    people but never read company data, so there is no ambient super-user for
    agents to borrow. (The Operator, ``cristal.operator``, is the browser agent:
    it always acts as an employee.)
    """

    kind: Literal["user", "installation"]
    name: str
    org_id: int | None = None
    org_slug: str | None = None
    user_id: int | None = None
    role: str = "member"
    groups: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def installation(cls, name: str | None = None) -> Principal:
        try:
            who = name or getpass.getuser()
        except (KeyError, OSError):
            who = "unknown"
        return cls(kind="installation", name=who, role="installation")

    @property
    def is_installation(self) -> bool:
        return self.kind == "installation"

    @property
    def is_admin(self) -> bool:
        return self.kind == "user" and self.role == "admin"

    @property
    def email(self) -> str | None:
        return self.name if self.kind == "user" else None

    @property
    def label(self) -> str:
        """How the principal appears in audit records: ``user:EMAIL@org`` or ``operator:NAME``.

        The installation keeps the ``operator:`` label it was recorded under before it had its own name, so that
        one installation's audit trail reads (and filters) the same before and after.
        """
        if self.is_installation:
            return f"operator:{self.name}"
        return f"user:{self.name}@{self.org_slug}"

    def acl_matchers(self) -> frozenset[str]:
        """The access-rule strings (``org``, ``user:EMAIL``, ``group:NAME``) that match this principal.

        Retrieval filters with these inside its query, so the rules' meaning is
        defined here once, next to ``authorize``.
        """
        if self.is_installation:
            return frozenset()
        return frozenset({"org", f"user:{self.name}"} | {f"group:{g}" for g in self.groups})
