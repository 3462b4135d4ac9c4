"""The IBKR layer: the only package that imports ib_insync."""
