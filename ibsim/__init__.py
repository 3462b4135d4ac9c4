"""The ibdata IB Gateway simulator: a standalone TWS-protocol server (no Django, nothing of fetcher)."""
