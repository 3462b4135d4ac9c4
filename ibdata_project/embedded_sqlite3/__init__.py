"""The embedded default's database backend: Django's SQLite, its file's folder made on first use."""
