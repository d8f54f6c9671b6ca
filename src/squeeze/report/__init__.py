"""What users read: the trade-off report, its figures, its Run table, and the comparison of
experiments. Imports no training code (empty on purpose: a stage imports only what it names)."""
