"""What is being acted on, as ``authorize`` sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    """A thing inside (or, for ``org_id=None``, above) an organization.

    ``acl`` holds access rules (``org``, ``user:EMAIL``, ``group:NAME``) for
    company data; ``None`` means the resource has no rules of its own, which
    for data means default deny (admins only).
    """

    kind: str
    org_id: int | None
    id: str = ""
    acl: tuple[str, ...] | None = None
    owner_user_id: int | None = None
    org_slug: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}" if self.id else self.kind
