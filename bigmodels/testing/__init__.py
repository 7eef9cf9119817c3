"""Helpers for testing bigmodels itself (fault injection on real processes)."""
