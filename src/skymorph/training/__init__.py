"""The training floor: run folders, Lightning fits, budgets and records, used by methods/, cosmo/ and
infer/ alike (DESIGN.md section 1)."""
