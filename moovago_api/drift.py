"""Kept for existing imports: the field checks moved to `moovago_api.deprecations`; the schema
drift tools (usage index, diff, catalog and target-config checks) to `moovago_schema.drift`."""

from moovago_api.deprecations import DEPRECATED, MISSING, FieldIssue, field_report

__all__ = ["DEPRECATED", "MISSING", "FieldIssue", "field_report"]
