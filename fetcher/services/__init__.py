"""Writes: fetch runs, their items and chunks, instruments, and recovery of orphaned runs."""
