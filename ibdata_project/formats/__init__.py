"""Date formats of the admin's pages (FORMAT_MODULE_PATH): every time says its zone."""
