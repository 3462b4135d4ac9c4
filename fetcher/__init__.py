"""The fetcher app."""
