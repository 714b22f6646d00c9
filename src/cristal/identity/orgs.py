"""Organizations (tenants): create, list, configure, delete."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cristal.db.schema import Organization, User
from cristal.errors import AlreadyExists, InvalidInput
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource
from cristal.identity.validation import check_slug

ORG_KEY_ENV_PREFIX = "CRISTAL_ORG_KEY_"


@dataclass(frozen=True)
class OrgInfo:
    slug: str
    name: str
    users: int
    llm_base_url: str | None
    llm_model: str | None
    llm_monthly_budget_usd: float | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def check_key_env(name: str) -> str:
    """``name`` if it may name an organization's secret (a model key, a sign-in client secret), else ``InvalidInput``.

    Only variables meant for this purpose: otherwise an org admin could name
    any server variable (the database URL...) and receive it as a credential
    at an endpoint of their choosing.
    """
    if not (name.startswith(ORG_KEY_ENV_PREFIX) and name.replace("_", "").isalnum()):
        raise InvalidInput(f"invalid key variable {name!r}: the name must start with {ORG_KEY_ENV_PREFIX}")
    return name


def _info(session: Session, org: Organization) -> OrgInfo:
    count = session.scalar(select(func.count()).select_from(User).where(User.org_id == org.id)) or 0
    return OrgInfo(org.slug, org.name, count, org.llm_base_url, org.llm_model, org.llm_monthly_budget_usd)


def create_org(session: Session, actor: Principal, slug: str, name: str | None = None) -> OrgInfo:
    check_slug(slug)
    require(session, actor, "org.create", Resource("org", None, slug, org_slug=slug), details={"name": name or slug})
    if session.scalar(select(Organization.id).where(Organization.slug == slug)) is not None:
        raise AlreadyExists(f"organization {slug!r} already exists")
    org = Organization(slug=slug, name=(name or slug).strip() or slug)
    session.add(org)
    session.flush()
    return _info(session, org)


def list_orgs(session: Session, actor: Principal) -> list[OrgInfo]:
    """All organizations for the installation principal; a user sees only their own."""
    stmt = select(Organization).order_by(Organization.slug)
    if not actor.is_installation:
        stmt = stmt.where(Organization.id == actor.org_id)
    return [_info(session, org) for org in session.scalars(stmt)]


def delete_org(session: Session, actor: Principal, slug: str) -> None:
    """Remove an organization and everything it owns.

    Every row of Cristal's tables that belongs to an organization references
    it, directly or through its parent row, with ``ON DELETE CASCADE`` (people,
    keys, sources, documents, chunks, index state, runs, usage...), so the
    database removes it all in this transaction; ids are never handed out again. Only the audit trail outlives it, by design. Embeddings
    are cached by content across organizations; callers prune the unused ones
    (``knowledge.index.delete_unused_embeddings``).
    """
    org = org_by_slug(session, slug)
    require(session, actor, "org.delete", in_org(org, "org", slug))
    session.delete(org)
    session.flush()


def configure_llm(
    session: Session,
    actor: Principal,
    slug: str,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key_env: str | None = None,
    monthly_budget_usd: float | None = None,
    clear_budget: bool = False,
) -> OrgInfo:
    """Per-organization model settings; unset values keep falling back to the process settings."""
    org = org_by_slug(session, slug)
    changes: dict[str, str | float | None] = {
        k: v
        for k, v in {"base_url": base_url, "model": model, "api_key_env": api_key_env, "budget": monthly_budget_usd}.items()
        if v is not None
    }
    if clear_budget:
        changes["budget"] = None
    require(session, actor, "org.update", in_org(org, "org", slug), details=changes)
    if base_url is not None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"invalid LLM base URL {base_url!r}: must start with http:// or https://")
        org.llm_base_url = base_url
    if model is not None:
        org.llm_model = model
    if api_key_env is not None:
        org.llm_api_key_env = check_key_env(api_key_env)
    if monthly_budget_usd is not None:
        if monthly_budget_usd < 0:
            raise InvalidInput("the budget must be zero or more US dollars")
        org.llm_monthly_budget_usd = monthly_budget_usd
    if clear_budget:
        org.llm_monthly_budget_usd = None
    session.flush()
    return _info(session, org)
