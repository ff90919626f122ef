"""The night runner's parts: the per-frame task, the ledger, the night summary, its plots
and its page."""
