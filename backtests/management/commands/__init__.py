"""`manage.py backtest`."""
