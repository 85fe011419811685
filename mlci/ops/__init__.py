"""Use cases: one module per command family; plain functions with keyword arguments returning reports."""
