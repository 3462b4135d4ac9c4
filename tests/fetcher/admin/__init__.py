"""Tests of the Django admin."""
