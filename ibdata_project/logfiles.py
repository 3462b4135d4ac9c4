"""The project's log file: rotated like logging's own, opened (and its folder made) at the first
record rather than when the settings are read."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path


class RotatingLogFile(RotatingFileHandler):
    def __init__(self, filename: str, **kwargs) -> None:
        super().__init__(filename, delay=True, **kwargs)

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:
            Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        super().emit(record)
