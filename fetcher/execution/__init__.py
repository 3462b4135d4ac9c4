"""Execution: one run on one gateway connection, and the ibkr worker's persistent connection."""
