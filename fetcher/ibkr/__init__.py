"""The IBKR layer: project types, error mapping, connecting; only gateway.py imports ib_insync."""
