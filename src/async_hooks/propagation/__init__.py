"""Carrying context across every boundary where ``contextvars`` alone loses or leaks it.

See docs/propagation.md for the table of boundaries, what bare
``contextvars`` does at each, and the helper that closes it.
"""

from .._policy import (
    JSON,
    JsonSerializer,
    Serializer,
    capture_context,
    export_stores,
    import_stores,
)
from ._context_thread import ContextThread, start_thread
from ._executors import ContextExecutor, bind_callback, run_in_executor, to_thread
from ._generators import BoundAsyncGenerator, BoundGenerator, bind_generator, bound_generator
from ._install import install, installed, uninstall
from ._processes import ProcessJob, carry_stores, start_process
from ._unhandled import (
    ExceptionContextInstallation,
    failure_context,
    in_failure_context,
    install_exception_context,
    with_exception_context,
)

__all__ = [
    "JSON",
    "BoundAsyncGenerator",
    "BoundGenerator",
    "ContextExecutor",
    "ContextThread",
    "ExceptionContextInstallation",
    "JsonSerializer",
    "ProcessJob",
    "Serializer",
    "bind_callback",
    "bind_generator",
    "bound_generator",
    "capture_context",
    "carry_stores",
    "export_stores",
    "failure_context",
    "import_stores",
    "in_failure_context",
    "install",
    "install_exception_context",
    "installed",
    "run_in_executor",
    "start_process",
    "start_thread",
    "to_thread",
    "uninstall",
    "with_exception_context",
]

# repr() and help() name the path users import from, not the private module.
for _name in __all__:
    if _name != "JSON":  # an instance: its class carries the path
        globals()[_name].__module__ = __name__
del _name
