"""Every error async_hooks raises is the class docs/errors.md names, carrying Node's code."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from async_hooks import AsyncHooksError, AsyncLocalStorage, AsyncResource, create_hook
from async_hooks.errors import (
    InvalidArgTypeError,
    InvalidArgValueError,
    InvalidAsyncCallbackError,
    InvalidAsyncIdTypeError,
    InvalidAsyncIdValueError,
    InvalidAsyncTypeError,
    ResourceDestroyedError,
)

EXPECTED = [
    (InvalidArgTypeError, TypeError, "ERR_INVALID_ARG_TYPE"),
    (InvalidArgValueError, ValueError, "ERR_INVALID_ARG_VALUE"),
    (InvalidAsyncTypeError, ValueError, "ERR_ASYNC_TYPE"),
    (InvalidAsyncIdTypeError, TypeError, "ERR_INVALID_ASYNC_ID"),
    (InvalidAsyncIdValueError, ValueError, "ERR_INVALID_ASYNC_ID"),
    (InvalidAsyncCallbackError, TypeError, "ERR_ASYNC_CALLBACK"),
    (ResourceDestroyedError, RuntimeError, None),
]


@pytest.mark.parametrize(("error_class", "python_class", "code"), EXPECTED)
def test_each_class_is_the_python_exception_and_carries_a_code(
    error_class: type[AsyncHooksError], python_class: type[Exception], code: str | None
) -> None:
    assert issubclass(error_class, python_class)
    assert issubclass(error_class, AsyncHooksError)
    assert isinstance(error_class.code, str)
    assert error_class.code.startswith("ERR_")
    if code is not None:
        assert error_class.code == code
    # The code is also readable on an instance, as on a Node error.
    assert error_class("message").code == error_class.code


def test_the_base_class_is_exported_from_the_package() -> None:
    import async_hooks

    assert async_hooks.AsyncHooksError is AsyncHooksError
    assert issubclass(AsyncHooksError, Exception)


def _raised_by(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except Exception as error:
        return error
    pytest.fail("no exception was raised")


def test_except_type_error_catches_every_type_error_the_library_raises() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    type_errors: list[Callable[[], object]] = [
        lambda: AsyncResource(42),  # type: ignore[arg-type]
        lambda: AsyncResource("T", "1"),  # type: ignore[arg-type]
        lambda: AsyncResource("T", True),
        lambda: AsyncResource("T", require_manual_destroy=1),  # type: ignore[arg-type]
        lambda: als.run(1, None),  # type: ignore[call-overload]
        lambda: AsyncLocalStorage.bind(3),  # type: ignore[arg-type]
        lambda: create_hook(init=5),  # type: ignore[arg-type]
    ]
    codes = {"ERR_INVALID_ARG_TYPE", "ERR_INVALID_ASYNC_ID", "ERR_ASYNC_CALLBACK"}
    for action in type_errors:
        with pytest.raises(TypeError) as caught:
            action()
        assert isinstance(caught.value, AsyncHooksError)
        assert caught.value.code in codes


def test_except_value_error_catches_every_value_error_the_library_raises() -> None:
    value_errors: list[Callable[[], object]] = [
        lambda: AsyncResource(""),
        lambda: AsyncResource("T", -2),
        lambda: create_hook({"promiseResolve": print}),
    ]
    for action in value_errors:
        error = _raised_by(action)
        assert isinstance(error, ValueError)
        assert isinstance(error, AsyncHooksError)


def test_a_second_emit_destroy_is_a_runtime_error_with_a_code() -> None:
    resource = AsyncResource("T").emit_destroy()
    error = _raised_by(resource.emit_destroy)
    assert isinstance(error, RuntimeError)
    assert isinstance(error, ResourceDestroyedError)
    assert error.code.startswith("ERR_")


def test_assigning_the_name_of_a_storage_is_an_attribute_error() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage(name="request")
    with pytest.raises(AttributeError):
        als.name = "other"  # type: ignore[misc]
    assert als.name == "request"
