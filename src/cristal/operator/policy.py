"""Each organization's allow-list of web domains for the Operator.

``organizations.operator_allowed_domains`` holds a JSON list of domains
(``NULL``: no organization-wide limit). Every run's own allow-list is
intersected with it (``AllowList.org_domains`` in ``cristal.net.policy``,
which also reads the list), so a run can narrow it but
never widen it. Only organization admins read or change it
(``operator.policy``, audited); runs read it as part of their own checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cristal.db import Database
from cristal.errors import InvalidInput
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug, resolve_principal
from cristal.net.policy import load_org_domains, normalise_domain, org_domains

__all__ = ["domains_policy", "load_org_domains", "org_domains"]


def domains_policy(db: Database, org_slug: str, email: str, *, set_domains: Iterable[str] = (), clear: bool = False) -> dict[str, Any]:
    """Show, replace (``set_domains``) or remove (``clear``) the list, as an admin of the organization."""
    wanted = list(set_domains)
    if wanted and clear:
        raise InvalidInput("give either --set DOMAIN... or --clear, not both")
    normalised = list(dict.fromkeys(normalise_domain(d) for d in wanted))  # bad input before any change
    change = bool(normalised) or clear
    with db.session() as s:
        principal = resolve_principal(s, org_slug, email)
        org = org_by_slug(s, org_slug)
        before = org.operator_allowed_domains
        details: dict[str, Any] = {"change": change, "before": before}
        if change:
            details["after"] = None if clear else normalised
        # Reading the list tells where the Operator may go: also admins only.
        require(s, principal, "operator.policy", in_org(org, "operator-policy", org_slug), details=details)
        if change:
            org.operator_allowed_domains = None if clear else normalised
        after = org.operator_allowed_domains
    return {"org": org_slug, "allowed_domains": after, "limited": after is not None, "changed": change}
