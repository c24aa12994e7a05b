"""Runtime tracking for a whole interpreter, to run test suites not written for it.

Importing this module enables one hook with all five callbacks as no-ops, so that
every asyncio resource of the process goes through runtime tracking. It exists for
``scripts/stdlib-asyncio``: the ``.pth`` file that script puts in its own venvs
imports it when ``ASYNC_HOOKS_TRACK_ALL=1``. A ``.pth`` file reaches CPython's
test_asyncio, its regrtest workers and every interpreter its tests start (``-I``
skips ``sitecustomize``, not ``.pth`` files), and a run without the variable never
even imports async_hooks.

It lives in the package rather than beside the script so that the ``.pth`` line
imports the editable install's current code without a ``sys.path`` entry of its
own, one more thing the judged suite would see. Nothing in the package imports it,
and it does nothing until imported.

With ``ASYNC_HOOKS_CHECK_DIR`` set, the hook is an ``EventChecker`` instead, and each
interpreter that saw a lifecycle rule broken writes what it saw into that directory
when it exits (``scripts/stdlib-asyncio --check-events``).
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

import async_hooks
from async_hooks.lowlevel import EventChecker

#: Where each interpreter writes the rules it saw broken, when set (and the
#: hook is then an EventChecker instead of no-ops): ``<dir>/<pid>.txt``.
CHECK_DIR_VARIABLE = "ASYNC_HOOKS_CHECK_DIR"


def _ignore(*args: object) -> None:
    pass


def _write_violations(checker: EventChecker, directory: Path) -> None:
    if checker.count:
        lines = [f"{checker.count} violation(s) in: {' '.join(sys.argv)}"]
        lines += [str(violation) for violation in checker.violations]
        (directory / f"{os.getpid()}.txt").write_text("\n".join(lines) + "\n")


_check_dir = os.environ.get(CHECK_DIR_VARIABLE)
if _check_dir:
    checker = EventChecker()
    # Held by the module, so the hook stays enabled for the interpreter's lifetime.
    hook = async_hooks.create_hook(checker).enable()
    atexit.register(_write_violations, checker, Path(_check_dir))
else:
    hook = async_hooks.create_hook(
        init=_ignore, before=_ignore, after=_ignore, destroy=_ignore, promise_resolve=_ignore
    ).enable()
