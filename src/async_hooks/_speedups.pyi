# The compiled accelerator (src/async_hooks/_speedups.c); what Python sees of it.
from collections.abc import Callable
from contextvars import Context, ContextVar
from typing import Any

BUILD_STAMP: str

class StorageBase:
    _var: ContextVar[Any]
    _default: Any
    def get_store(self) -> Any: ...
    def run(self, store: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...
    def exit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...
    def enter_with(self, store: Any, /) -> None: ...

class ResourceBase:
    _context: Context
    _async_id: int
    _trigger_async_id: int
    _type: str
    _destroyed: bool
    def __init__(
        self,
        type: str,
        trigger_async_id: int | None = None,
        *,
        require_manual_destroy: bool = False,
    ) -> None: ...
    def run_in_async_scope(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...

class BoundFunction:
    def __init__(
        self, context: Context, fn: Callable[..., Any], async_id: int, resource: object
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

class SnapshotRunner:
    def __call__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...

def snapshot() -> SnapshotRunner: ...
def configure(
    *,
    context_coroutine: type,
    foreign_coroutine_types: dict[type, bool],
    is_foreign_coroutine_type: Callable[[type], bool],
    not_callable_error: Callable[[Any, str], BaseException],
    current_frame: ContextVar[Any],
) -> None: ...
def configure_dispatch(
    *,
    pending_destroys: object,
    flush_pending_destroys: Callable[[], None],
    report_unraisable: Callable[[BaseException, str, object], None],
    apply_deferred_changes: Callable[[], None],
) -> None: ...
def configure_resources(
    *,
    validate_async_type: Callable[[Any], object],
    validate_trigger_async_id: Callable[[Any], object],
    validate_manual_destroy: Callable[[Any], object],
    next_async_id: Callable[[], int],
    execution_frame: type,
    destroy_when_collected: Callable[[Any], None],
) -> None: ...
def set_enabled_callbacks(
    *,
    init: tuple[Callable[..., object], ...],
    before: tuple[Callable[..., object], ...],
    after: tuple[Callable[..., object], ...],
    destroy: tuple[Callable[..., object], ...],
    promise_resolve: tuple[Callable[..., object], ...],
    any_hook: bool,
    creation_sites: bool,
) -> None: ...
def configure_records(
    *,
    record_type: type,
    live_resources: dict[int, Any],
    resource_ref_type: type,
    collected: Callable[[Any], None],
    no_resource: Callable[[], None],
) -> None: ...
def configure_tracking(
    *,
    tasks: dict[int, Any],
    handles: dict[int, Any],
    futures: dict[int, Any],
    running_task: Callable[[], object],
    task_type: type,
    handle_type: type,
) -> None: ...

class TrackedHandleRun:
    __wrapped__: Callable[..., Any]
    def __init__(self, original: Callable[..., Any], slow: Callable[..., Any]) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

class TrackedCallSoon(TrackedHandleRun): ...
class TrackedCreateTask(TrackedHandleRun): ...
class TrackedUvloopCallSoon(TrackedHandleRun): ...
class TrackedCreateFuture(TrackedHandleRun): ...

class TrackedCallback:
    callback: Callable[..., object]
    record: Any
    _ready: Any
    def __init__(self, callback: Callable[..., object], record: Any) -> None: ...
    def __call__(self, *args: Any) -> None: ...

class ProtocolCallback:
    tracking: Any
    name: str
    method: Callable[..., Any]
    def __init__(self, tracking: Any, name: str, method: Callable[..., Any]) -> None: ...
    def __call__(self, *args: Any) -> Any: ...

def configure_network(*, run_protocol_callback: Callable[..., Any]) -> None: ...

class TaskStep:
    def __init__(self, step: Callable[..., object], task: Any, record: Any) -> None: ...
    def __call__(self, *args: Any) -> None: ...

def set_deferred_changes_waiting(waiting: bool, /) -> None: ...
def dispatching() -> bool: ...
def emit_init(async_id: int, type: str, trigger_async_id: int, resource: object, /) -> None: ...
def emit_before(async_id: int, /) -> None: ...
def emit_after(async_id: int, /) -> None: ...
def emit_destroy(async_id: int, /) -> None: ...
def emit_promise_resolve(async_id: int, /) -> None: ...
def own_methods(cls: type, /) -> None: ...
