"""A small multilingual company folder with access rules, synced into a fresh database."""

from __future__ import annotations

from pathlib import Path

import pytest

from cristal.db import Database
from cristal.identity import users
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.knowledge.sync import sync_source

INSTALLATION = Principal.installation("test-operator")

FILES = {
    "public/.cristal-acl": "org\n",
    "public/travel.md": "# Travel policy\n\nHotels in Munich may cost up to 150 EUR per night.\n\n"
                        "## Meals\n\nThe per diem for meals is 28 EUR.\n",
    "public/garantie.md": "# Garantiebedingungen\n\n"
                          "Die Garantiezeit für Sora Luftreiniger beträgt in Deutschland drei Jahre ab Kaufdatum.\n",
    "public/reise.txt": "Reisekostenabrechnungen sind innerhalb von vier Wochen einzureichen.\n",
    "public/shucho.md": "# 出張規程\n\n出張旅費の精算は翌月五日までに申請してください。宿泊費の上限は一泊一万五千円です。\n",
    "finance/.cristal-acl": "group:finance\n",
    "finance/bank.txt": "Supplier Kumo Components is paid to IBAN DE89 3704 0044 0532 0130 00 every quarter.\n",
    "finance/q3.md": "# Q3 results\n\nRevenue in Q3 was 4.2 million EUR, up 12 percent.\n",
    "hr/.cristal-acl": "group:hr\nuser:eng@acme.example\n",
    "hr/salaries.md": "# Salary bands\n\nSenior engineers earn between 85,000 and 105,000 EUR.\n",
    "board/minutes.md": "# Board minutes\n\nThe board approved the acquisition of Nimbus GmbH for 12 million EUR.\n",
}


def write_tree(root: Path, files: dict[str, str] = FILES) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def company_docs(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "docs")


@pytest.fixture
def indexed(two_orgs: Database, company_docs: Path) -> Database:
    """acme has the folder as source 'wiki' (no default rule); globex has its own tiny source."""
    db = two_orgs
    other = write_tree(company_docs.parent / "globex-docs",
                       {"plan.md": "# Globex plan\n\nGlobex will open an office in Osaka. Hotels in Munich cost 150 EUR.\n"})
    with db.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "wiki", "files", str(company_docs))
        sources.add_source(s, INSTALLATION, "globex", "wiki", "files", str(other), acl="org")
        users.add_user(s, INSTALLATION, "acme", "hr@acme.example", groups=["hr"])
    sync_source(db, INSTALLATION, "acme", "wiki")
    sync_source(db, INSTALLATION, "globex", "wiki")
    return db
