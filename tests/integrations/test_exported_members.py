"""The public surface of the integrations: each public module's ``__all__`` is
pinned here, and lists every public name the module defines, so that a name
cannot become public by accident nor disappear without this file changing."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import async_hooks.integrations

EXPORTS = {
    "aiohttp": ["REQUEST_ID_KEY", "context_trace_config", "setup_request_context"],
    "asgi": ["ASGIApp", "Message", "Receive", "RequestContextMiddleware", "Scope", "Send"],
    "baggage": [
        "BAGGAGE_HEADER",
        "MAX_BAGGAGE_BYTES",
        "MAX_BAGGAGE_MEMBERS",
        "decode_baggage",
        "encode_baggage",
    ],
    "blinker": ["RECEIVER_RESOURCE_TYPE", "connect_in_context"],
    "celery": [
        "ContextTask",
        "REQUEST_ID_HEADER",
        "STORES_HEADER",
        "context_headers",
        "parent_task_id",
        "task_id",
    ],
    "django": ["RequestContextMiddleware"],
    "dramatiq": [
        "ContextMiddleware",
        "PARENT_MESSAGE_ID_OPTION",
        "REQUEST_ID_OPTION",
        "STORES_OPTION",
        "context_options",
        "message_id",
        "parent_message_id",
    ],
    "gevent": ["ContextGreenlet", "greenlet_in_context", "spawn", "spawn_later"],
    "httpx": ["add_context_headers", "add_context_headers_async", "instrument_httpx"],
    "logging": ["StoreFilter"],
    "loguru": ["StorePatcher"],
    "opentelemetry": [
        "AsyncHooksRuntimeContext",
        "StoreSpanAttributes",
        "TraceFilter",
        "opentelemetry_context",
    ],
    "outgoing": [
        "OutgoingPolicy",
        "add_outgoing_headers",
        "get_outgoing_policy",
        "outgoing_headers",
        "set_outgoing_policy",
    ],
    "pyee": [
        "AsyncIOEventEmitterAsyncResource",
        "EventEmitterAsyncResource",
        "EventEmitterReferencingAsyncResource",
    ],
    "request_id": [
        "DEFAULT_HEADER",
        "MAX_REQUEST_ID_LENGTH",
        "check_header_name",
        "is_valid_request_id",
        "new_request_id",
        "request_id",
    ],
    "requests": ["ContextAdapter", "instrument_requests"],
    "rq": [
        "ContextJob",
        "PARENT_JOB_ID_META_KEY",
        "REQUEST_ID_META_KEY",
        "STORES_META_KEY",
        "context_meta",
        "job_id",
        "parent_job_id",
    ],
    "structlog": ["StoreProcessor"],
    "wsgi": ["RequestContextMiddleware"],
}


def integration(name: str) -> ModuleType:
    return importlib.import_module(f"async_hooks.integrations.{name}")


def imported_names(module: ModuleType) -> set[str]:
    """The names that ``import`` statements bind in ``module``, guarded ones included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def public_names(module: ModuleType) -> set[str]:
    """The public names ``module`` binds itself: neither imported names nor modules."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    } - imported_names(module)


def test_every_public_module_is_pinned() -> None:
    modules = [info.name for info in pkgutil.iter_modules(async_hooks.integrations.__path__)]
    assert sorted(name for name in modules if not name.startswith("_")) == sorted(EXPORTS)


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_all_is_what_the_module_exports(name: str) -> None:
    module = integration(name)
    assert sorted(module.__all__) == EXPORTS[name]
    assert sorted(public_names(module)) == EXPORTS[name]


def test_the_package_exports_setup() -> None:
    assert async_hooks.integrations.__all__ == ["setup"]
    assert async_hooks.integrations.setup.__module__ == "async_hooks.integrations"


def test_private_modules_have_no_all() -> None:
    # In this project __all__ means "exported": a private module exports nothing.
    private = ["async_hooks._extras"] + [
        f"{async_hooks.integrations.__name__}.{info.name}"
        for info in pkgutil.iter_modules(async_hooks.integrations.__path__)
        if info.name.startswith("_")
    ]
    # _extras, _carrier, _fields, _otel_context, _server_context, _setup, _worker_carrier
    assert len(private) == 7
    for name in private:
        assert not hasattr(importlib.import_module(name), "__all__"), name


def test_the_package_itself_exports_nothing() -> None:
    assert public_names(async_hooks.integrations) == set()
