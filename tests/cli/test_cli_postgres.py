"""The main CLI cases again, on a real PostgreSQL server."""

from __future__ import annotations

from .test_cli import (  # noqa: F401  (pytest collects the imported tests and fixture here)
    company,
    company_db,
    company_in_process,
    test_api_key_is_shown_once,
    test_audit_shows_admin_changes,
    test_cli_cannot_cross_organizations,
    test_init_is_idempotent,
    test_member_cannot_read_the_audit_trail_and_the_refusal_is_audited,
    test_people_management,
    test_setup_through_the_cli,
)

BACKENDS = ("postgres",)
