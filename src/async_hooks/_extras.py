"""The one error every module that needs an optional library raises without it.

Each such module imports its library this way::

    try:
        import httpx
    except ImportError as error:
        raise missing_extra(__name__, "httpx", extra="httpx") from error
"""

from __future__ import annotations


def missing_extra(module: str, library: str, *, extra: str) -> ImportError:
    """An ``ImportError`` saying that ``module`` needs ``library`` and which extra brings it.

    The message reads ``async_hooks.integrations.httpx needs httpx: pip install
    'async-hooks[httpx]'``; ``extra`` is the name of an extra in
    ``[project.optional-dependencies]``. The error's ``name`` is ``library``,
    as Python's own import errors name the missing module.
    """
    message = f"{module} needs {library}: pip install 'async-hooks[{extra}]'"
    return ImportError(message, name=library)
