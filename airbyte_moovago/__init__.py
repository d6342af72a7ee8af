"""Airbyte protocol adapters over tap-moovago and target-moovago (standard library only)."""
