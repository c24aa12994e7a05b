"""Report an exception that has no caller to go to, the way Python itself does.

``sys.unraisablehook`` only accepts the interpreter's own
``UnraisableHookArgs`` type, which the sys module does not export; it is
obtained once, at import, from a deliberately failing ``__del__``.
"""

from __future__ import annotations

import sys
from typing import Any


def _unraisable_args_type() -> Any:
    captured: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = captured.append
    try:

        class _Probe:
            def __del__(self) -> None:
                raise RuntimeError("probe")

        _Probe()
    finally:
        sys.unraisablehook = previous
    return type(captured[0])


_UnraisableHookArgs = _unraisable_args_type()


def report_unraisable(error: BaseException, message: str, obj: object) -> None:
    """Hand ``error`` to ``sys.unraisablehook``, printed as ``message: repr(obj)``."""
    sys.unraisablehook(_UnraisableHookArgs((type(error), error, error.__traceback__, message, obj)))
