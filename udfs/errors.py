"""Errors about single records.

A ``RecordError`` means "this record cannot be processed, the job can go on": with error tolerance ``all`` the
record goes to the dead-letter topic with the error's class name and message; with ``none`` the job stops with a
``RecordRejectedError`` that names the record's Kafka coordinates. Messages never contain secrets and stay short
(they travel in Kafka headers).
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 1000


class RecordError(Exception):
    """Base class of every per-record error. Subclasses name the kind of bad input."""

    @property
    def error_class(self) -> str:
        return type(self).__name__

    @property
    def message(self) -> str:
        text = str(self)
        return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


class RecordRejectedError(RuntimeError):
    """Raised to stop the job (error tolerance ``none``) on a record that cannot be processed."""

    def __init__(self, coordinates: str, error_class: str, message: str, stage: str) -> None:
        super().__init__(f"record {coordinates} rejected in {stage}: {error_class}: {message}")
        self.coordinates = coordinates
        self.error_class = error_class
        self.stage = stage
