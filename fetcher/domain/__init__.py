"""The fetcher's domain: Django-free, no I/O (timeframes, instruments, bars, sessions, planning)."""
