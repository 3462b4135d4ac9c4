"""Browser tests: headless Chromium against a live server, a real ibkr worker and the simulator."""
