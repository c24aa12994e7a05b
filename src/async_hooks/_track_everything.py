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
"""

from __future__ import annotations

import async_hooks


def _ignore(*args: object) -> None:
    pass


# Held by the module, so the hook stays enabled for the interpreter's lifetime.
hook = async_hooks.create_hook(
    init=_ignore, before=_ignore, after=_ignore, destroy=_ignore, promise_resolve=_ignore
).enable()
