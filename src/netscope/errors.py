"""One exception type for every user-facing mistake, so callers can catch it cleanly."""


class NetscopeError(ValueError):
    """Bad input or a failed precondition, with a message that says what to do."""
