"""Audit: append-only records of every authorization decision and admin change."""

from cristal.audit.log import AuditEntry, query_audit, write_audit

__all__ = ["AuditEntry", "query_audit", "write_audit"]
