"""Pacing: IBKR's rules, the in-process pacer and the Redis pacer shared by every process."""
