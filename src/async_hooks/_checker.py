"""A hook that checks the event stream against the lifecycle rules, for debugging.

Enable it beside your own hooks while you develop or test; it never raises
into the code that caused an event, it only records what broke a rule::

    checker = EventChecker()
    hook = create_hook(checker).enable()
    ...
    hook.disable()
    checker.raise_if_broken()

The rules (docs/runtime.md):

* ``init`` comes first for every id given out while the checker listens;
* ``before``/``after`` are paired and nested, per thread;
* nothing comes after a ``destroy``, and ``destroy`` comes at most once and
  never inside one of the resource's own callbacks;
* ``promise_resolve`` comes at most once per id;
* a runtime resource's trigger is the execution id current at its ``init``,
  or a live resource that caused it (a server, for its connections); an
  ``AsyncResource`` may be given any trigger, so it is not checked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ._execution import current_frame, new_async_id
from ._resource import AsyncResource

# Violations kept beyond this are only counted: a broken invariant inside a
# loop would otherwise grow the list without bound.
_MAX_KEPT = 1000


@dataclass(frozen=True)
class Violation:
    """One broken rule: which event, for which id, and what was wrong."""

    event: str
    async_id: int
    problem: str

    def __str__(self) -> str:
        return f"{self.event}({self.async_id}): {self.problem}"


class EventChecker:
    """Hook callbacks that check every event; give the instance to ``create_hook``.

    Ids given out before the checker was made may show up without an
    ``init`` (their resources were born before anyone listened, as in Node)
    and are exempt from the rules that need one. Thread-safe: events from
    several threads are checked under one lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Ids are given out in increasing order: every id from this one on is new.
        self._first_id = new_async_id()
        # AsyncResources: their embedder may emit destroy from inside their scope.
        self._embedder_ids: set[int] = set()
        self._initialized: set[int] = set()
        self._destroyed: set[int] = set()
        self._resolved: set[int] = set()
        self._stacks = threading.local()
        self.violations: list[Violation] = []
        #: Every violation found, also those beyond the ones kept.
        self.count = 0

    # -- the hook callbacks ----------------------------------------------------

    def init(self, async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        execution_id = current_frame.get().async_id
        with self._lock:
            if async_id in self._initialized:
                self._report("init", async_id, "a second init")
            elif async_id in self._destroyed:
                self._report("init", async_id, "init after its destroy")
            self._initialized.add(async_id)
            if isinstance(resource, AsyncResource):
                self._embedder_ids.add(async_id)
            elif trigger_async_id != execution_id and not self._is_live(trigger_async_id):
                self._report(
                    "init",
                    async_id,
                    f"{type} triggered by {trigger_async_id}, but {execution_id} was executing",
                )

    def before(self, async_id: int) -> None:
        with self._lock:
            self._check_alive("before", async_id)
        self._stack().append(async_id)

    def after(self, async_id: int) -> None:
        stack = self._stack()
        with self._lock:
            if async_id not in self._embedder_ids or async_id not in stack:
                # An embedder's emit_destroy() inside its scope is delivered
                # at once, so its after legitimately follows the destroy.
                self._check_alive("after", async_id)
            if not stack:
                self._report("after", async_id, "after without a before on this thread")
            elif stack[-1] != async_id:
                self._report("after", async_id, f"after inside the callback of {stack[-1]}")
        if async_id in stack:
            # Unwind to it, so that one broken pair is reported once.
            del stack[len(stack) - 1 - stack[::-1].index(async_id) :]

    def destroy(self, async_id: int) -> None:
        with self._lock:
            self._check_alive("destroy", async_id)
            if async_id in self._stack() and async_id not in self._embedder_ids:
                self._report("destroy", async_id, "destroy inside the resource's own callback")
            self._destroyed.add(async_id)

    def promise_resolve(self, async_id: int) -> None:
        with self._lock:
            self._check_alive("promise_resolve", async_id)
            if async_id in self._resolved:
                self._report("promise_resolve", async_id, "a second promise_resolve")
            self._resolved.add(async_id)

    # -- results -------------------------------------------------------------

    def raise_if_broken(self) -> None:
        """Raise ``AssertionError`` listing the violations, if there were any."""
        if self.count:
            shown = "\n".join(f"  {violation}" for violation in self.violations[:20])
            raise AssertionError(f"{self.count} lifecycle rule(s) broken, the first ones:\n{shown}")

    # -- helpers -------------------------------------------------------------

    def _stack(self) -> list[int]:
        stack: list[int] | None = getattr(self._stacks, "ids", None)
        if stack is None:
            stack = self._stacks.ids = []
        return stack

    def _is_live(self, async_id: int) -> bool:
        # A connection is caused by its server, which is not executing when
        # the connection arrives: a trigger may also be a live resource.
        return async_id in self._initialized and async_id not in self._destroyed

    def _check_alive(self, event: str, async_id: int) -> None:
        if async_id in self._destroyed:
            self._report(event, async_id, f"{event} after its destroy")
        elif async_id >= self._first_id and async_id not in self._initialized:
            self._report(event, async_id, f"{event} before its init")

    def _report(self, event: str, async_id: int, problem: str) -> None:
        self.count += 1
        if len(self.violations) < _MAX_KEPT:
            self.violations.append(Violation(event, async_id, problem))
