"""Using the result: the best model under a budget, its export, and `squeeze.load`
(empty on purpose: a stage imports only what it names)."""
