"""Aozora Group: a fictional corporate group with a Japanese, a German and a US company.

Each company has employees in groups with different access. Loading is
idempotent: what already exists is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from cristal.db.schema import Organization, User
from cristal.identity import orgs, users
from cristal.identity.principal import Principal


@dataclass(frozen=True)
class Employee:
    email: str
    role: str = "member"
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Company:
    slug: str
    name: str
    language: str
    employees: tuple[Employee, ...] = field(default_factory=tuple)


GROUP = (
    Company(
        "aozora-jp",
        "青空ホールディングス株式会社 (Aozora Japan K.K.)",
        "ja",
        (
            Employee("yuki.tanaka@aozora.example", "admin", ("management",)),
            Employee("kenji.sato@aozora.example", "member", ("finance",)),
            Employee("haruka.ito@aozora.example", "member", ("engineering",)),
            Employee("daiki.kobayashi@aozora.example", "member", ("sales",)),
        ),
    ),
    Company(
        "aozora-de",
        "Aozora Deutschland GmbH",
        "de",
        (
            Employee("anna.schmidt@aozora-de.example", "admin", ("management",)),
            Employee("lukas.weber@aozora-de.example", "member", ("finance",)),
            Employee("mia.fischer@aozora-de.example", "member", ("engineering", "hr")),
            Employee("jonas.becker@aozora-de.example", "member", ("sales",)),
        ),
    ),
    Company(
        "aozora-us",
        "Aozora Americas Inc.",
        "en",
        (
            Employee("emily.johnson@aozora-us.example", "admin", ("management",)),
            Employee("michael.brown@aozora-us.example", "member", ("finance", "sales")),
        ),
    ),
)


@dataclass
class LoadReport:
    orgs_created: list[str] = field(default_factory=list)
    users_created: list[str] = field(default_factory=list)


def load_company(session: Session, installation: Principal) -> LoadReport:
    """Create the sample organizations and employees that are not there yet."""
    report = LoadReport()
    for company in GROUP:
        if session.scalar(select(Organization.id).where(Organization.slug == company.slug)) is None:
            orgs.create_org(session, installation, company.slug, company.name)
            report.orgs_created.append(company.slug)
        org_id = session.scalar(select(Organization.id).where(Organization.slug == company.slug))
        for person in company.employees:
            exists = session.scalar(select(User.id).where(User.org_id == org_id, User.email == person.email))
            if exists is not None:
                continue
            users.add_user(session, installation, company.slug, person.email, groups=person.groups, role=person.role)
            report.users_created.append(f"{person.email} ({company.slug})")
    return report
