"""The IBKR layer: project types, error mapping, connecting; only clients.py imports the client
library (ib_insync or ib_async) and only gateway.py uses it."""
