"""The one exception type for mistakes a user can make and fix."""


class DlxError(Exception):
    """A user-facing error: the message names the field (or thing) and what to do."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
