"""Dry runs: route one ticket with a trace (simulate), or many stored tickets with a draft (replay)."""
