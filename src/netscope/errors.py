"""One exception type for every user-facing mistake, so callers can catch it cleanly."""


class NetscopeError(ValueError):
    """Bad input or a failed precondition, with a message that says what to do."""


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (library errors can run to pages), or
    its type when it has no message: for one-line error reports."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
