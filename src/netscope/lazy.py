"""Public names of a package, imported on first use (PEP 562), so that importing the
package (or a light module inside it, such as the method registry that ``--help`` reads)
does not load PyTorch. The first name resolved also applies netscope's thread default
(``netscope.perf.library_threads``)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps a public name to
    the module (relative to the package) that defines it."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        from netscope.perf import library_threads

        library_threads()  # once per process: safe PyTorch threads unless the user chose
        value = getattr(import_module(f"{package}.{exports[name]}"), name)
        globals_of(package)[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals_of(package)) | set(exports))

    return __getattr__, __dir__


def globals_of(package: str) -> dict:
    import sys

    return vars(sys.modules[package])
