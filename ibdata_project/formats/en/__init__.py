"""English formats (the project's language): ISO-like dates, times with their zone."""
