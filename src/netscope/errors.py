"""One exception type for every user-facing mistake, so callers can catch it cleanly."""


class NetscopeError(ValueError):
    """Bad input or a failed precondition, with a message that says what to do."""


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (library errors can run to pages), or
    its type when it has no message: for one-line error reports."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def shown(value: object, limit: int = 60) -> str:
    """A user's value as a message quotes it: its repr, cut to ``limit`` characters with
    its full length said (a 1,000,000-character task name must not become a 1 MB error)."""
    if isinstance(value, str):
        value = str(value)  # NumPy's str_ too, quoted as plain text
    elif hasattr(value, "item"):
        value = value.item()  # a NumPy scalar: quoted as the number it holds
    text = repr(value)
    if len(text) <= limit:
        return text
    length = len(value) if isinstance(value, str) else len(text)
    return f"{text[:limit]}... ({length:,} characters)"


def row_at(index: int, in_file: bool = False) -> str:
    """One convention for every message: rows count from 1, a header not counted; a row of
    a file also names its line (the header being line 1)."""
    return f"row {index + 1} (line {index + 2} of the file)" if in_file else \
        f"row {index + 1} (counting from 1)"
