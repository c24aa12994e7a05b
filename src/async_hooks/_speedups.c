/* async_hooks._speedups: the hot paths of storage and hooks in C.
 *
 * The same behaviour as the pure-Python code it replaces (_storage.py,
 * _resource.py, the emitters of _hooks.py); docs/accelerator.md says how it
 * is built, chosen and checked against stale builds. What is here:
 *
 *   emit_init, emit_before, emit_after, emit_destroy, emit_promise_resolve
 *                 the dispatch of events to the enabled callbacks
 *   StorageBase   the base of AsyncLocalStorage: get_store, run, exit, enter_with
 *   ResourceBase  the base of AsyncResource: __init__, run_in_async_scope
 *   BoundFunction what AsyncResource.bind returns
 *   snapshot()    returns a SnapshotRunner
 *
 * The Python objects this code calls back into (ContextCoroutine, the
 * execution-frame variable, the error reporter, ...) are handed over once by
 * configure_dispatch(), configure() and configure_resources(), called from
 * async_hooks._hooks, async_hooks._coroutines and async_hooks._resource at
 * import.
 *
 * The contextvars C API is not in the limited API: one binary per interpreter.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#if PY_VERSION_HEX < 0x030C0000
#include "structmember.h"
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

#ifndef ASYNC_HOOKS_BUILD_STAMP
#define ASYNC_HOOKS_BUILD_STAMP ""
#endif

/* -- what configure() hands over ------------------------------------------ */

/* Single-phase init with static state: the package supports one interpreter
 * per process, as its pure-Python module globals do. */
static PyObject *context_coroutine;   /* the ContextCoroutine class */
static PyObject *foreign_coroutine_types; /* dict: type -> bool, filled by is_foreign */
static PyObject *is_foreign;          /* is_foreign_coroutine_type(cls) -> bool */
static PyObject *not_callable_error;  /* not_callable_error(value, name) -> exception */
static PyObject *current_frame;       /* the ContextVar of the execution frame */
static PyObject *str_fn;              /* "fn" */

/* What configure_resources() hands over, for AsyncResource's construction. */
static PyObject *validate_async_type;       /* raises for a bad `type` */
static PyObject *validate_trigger_async_id; /* raises for a bad trigger id */
static PyObject *validate_manual_destroy;   /* raises for a non-bool flag */
static PyObject *next_async_id;             /* _execution.next_async_id() */
static PyObject *async_id_counter;          /* the iterator next_async_id advances */
static PyObject *execution_frame;           /* the ExecutionFrame class */
/* Where ExecutionFrame keeps its three __slots__, read from its member
 * descriptors by configure_resources(); 0 when they are not plain slots
 * (then frames are made by calling the class). */
static Py_ssize_t frame_async_id_offset, frame_trigger_offset, frame_resource_offset;
static PyObject *destroy_when_collected;    /* _resource's watch: (resource) -> None */
static PyObject *str_async_id;              /* "async_id" */

/* What configure_dispatch() hands over. */
static PyObject *pending_destroys;        /* _hooks.pending_destroys (a deque) */
static PyObject *flush_pending_destroys;  /* _hooks.flush_pending_destroys() */
static PyObject *report_unraisable;       /* (error, message, callback) -> None */
static PyObject *apply_deferred_changes;  /* _hooks._apply_deferred_changes() */

/* Mirror _hooks.enabled (set_enabled_callbacks): the callbacks of each event,
 * and C ints, because every bound call and every construction tests them,
 * and an attribute read would cost more than the rest of the test. */
enum { EVENT_INIT, EVENT_BEFORE, EVENT_AFTER, EVENT_DESTROY, EVENT_PROMISE_RESOLVE, EVENTS };
static const char *const event_names[EVENTS] = {"init", "before", "after", "destroy",
                                                 "promise_resolve"};
static PyObject *event_callbacks[EVENTS]; /* a tuple each */
static PyObject *event_messages[EVENTS];  /* "Exception ignored in async_hooks <event> hook" */
static int scope_events; /* a before or an after callback */
static int init_events;
static int destroy_events;
/* Mirrors _hooks._threads_with_deferred_changes != 0. */
static int deferred_changes_waiting;

static int
configured(void)
{
    if (context_coroutine == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "async_hooks._speedups is used before configure()");
        return 0;
    }
    return 1;
}

/* -- errors kept across cleanup -------------------------------------------- */

/* PyErr_Fetch/Restore are deprecated from 3.12; one name for both. */
#if PY_VERSION_HEX >= 0x030C0000
typedef PyObject *SavedError;

static inline SavedError
save_error(void)
{
    return PyErr_GetRaisedException();
}

static inline int
saved_is_set(SavedError saved)
{
    return saved != NULL;
}

/* Cleanup raised while `saved` was pending: the new error gets it as its
 * __context__, as a `finally` block that raises does in Python. */
static void
chain_saved(SavedError saved)
{
    PyObject *raised = PyErr_GetRaisedException();
    if (raised != saved) {
        PyException_SetContext(raised, saved); /* steals saved */
    }
    else {
        Py_DECREF(saved);
    }
    PyErr_SetRaisedException(raised);
}

static inline void
restore_error(SavedError saved)
{
    PyErr_SetRaisedException(saved);
}
#else
typedef struct {
    PyObject *type, *value, *traceback;
} SavedError;

static inline SavedError
save_error(void)
{
    SavedError saved;
    PyErr_Fetch(&saved.type, &saved.value, &saved.traceback);
    return saved;
}

static inline int
saved_is_set(SavedError saved)
{
    return saved.type != NULL;
}

static void
chain_saved(SavedError saved)
{
    PyObject *type, *value, *traceback;
    PyErr_NormalizeException(&saved.type, &saved.value, &saved.traceback);
    if (saved.traceback != NULL) {
        PyException_SetTraceback(saved.value, saved.traceback);
    }
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != saved.value) {
        PyException_SetContext(value, saved.value); /* steals */
    }
    else {
        Py_DECREF(saved.value);
    }
    Py_DECREF(saved.type);
    Py_XDECREF(saved.traceback);
    PyErr_Restore(type, value, traceback);
}

static inline void
restore_error(SavedError saved)
{
    PyErr_Restore(saved.type, saved.value, saved.traceback);
}
#endif

/* After cleanup code: `saved` comes back, unless the cleanup raised (then
 * its error wins, chained to `saved`). */
static void
finish_cleanup(SavedError saved)
{
    if (PyErr_Occurred()) {
        if (saved_is_set(saved)) {
            chain_saved(saved);
        }
    }
    else {
        restore_error(saved);
    }
}

/* Exits `context` after a call that returned `result` (NULL: it raised);
 * returns result, or NULL if the exit failed. Nothing is saved when nothing
 * is pending: each save and restore costs a thread-state lookup. */
static PyObject *
exit_context(PyObject *context, PyObject *result)
{
    if (result != NULL) {
        if (PyContext_Exit(context) < 0) {
            Py_CLEAR(result);
        }
        return result;
    }
    SavedError saved = save_error();
    PyContext_Exit(context);
    finish_cleanup(saved);
    return NULL;
}

/* A TypeError from calling `fn` becomes the library's "must be callable"
 * error when fn is not callable. Checked only on failure: checking first
 * would cost every call. Like `raise ... from None` in Python: no cause,
 * context suppressed but kept. */
static void
replace_if_not_callable(PyObject *fn)
{
    if (!PyErr_ExceptionMatches(PyExc_TypeError) || PyCallable_Check(fn)) {
        return;
    }
    SavedError original = save_error();
    PyObject *error = PyObject_CallFunctionObjArgs(not_callable_error, fn, str_fn, NULL);
    if (error == NULL) {
        finish_cleanup(original);
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyException_SetContext(error, original); /* steals */
#else
    PyErr_NormalizeException(&original.type, &original.value, &original.traceback);
    if (original.traceback != NULL) {
        PyException_SetTraceback(original.value, original.traceback);
    }
    PyException_SetContext(error, original.value); /* steals */
    Py_DECREF(original.type);
    Py_XDECREF(original.traceback);
#endif
    PyException_SetCause(error, NULL); /* also sets __suppress_context__ */
    /* Not PyErr_SetObject: it would chain to the exception being handled. */
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(error);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(error)), error, NULL);
#endif
}

/* -- the coroutine rule (docs/semantics.md, "Coroutines") ----------------- */

/* 1 if `result` is a coroutine (native or another Coroutine), 0 if not, -1 on error. */
static int
is_coroutine(PyObject *result)
{
    if (Py_IS_TYPE(result, &PyCoro_Type)) {
        return 1;
    }
    if (result == Py_None) {
        return 0;
    }
    PyObject *cls = (PyObject *)Py_TYPE(result);
    PyObject *known = PyDict_GetItemWithError(foreign_coroutine_types, cls);
    if (known != NULL) {
        return known == Py_True;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *answer = PyObject_CallOneArg(is_foreign, cls);
    if (answer == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return truth;
}

/* `result` itself, or a ContextCoroutine running it in `context`. Steals
 * `result`; `async_id` NULL means a coroutine of stores, not of a scope. */
static PyObject *
wrap_if_coroutine(PyObject *result, PyObject *context, PyObject *async_id, PyObject *resource)
{
    int coroutine = is_coroutine(result);
    if (coroutine == 0) {
        return result;
    }
    if (coroutine < 0) {
        Py_DECREF(result);
        return NULL;
    }
    PyObject *args[4] = {result, context, async_id, resource};
    PyObject *wrapped = PyObject_Vectorcall(context_coroutine, args, async_id ? 4 : 2, NULL);
    Py_DECREF(result);
    return wrapped;
}

/* Call fn(*args) with the keyword names as given. `offset` is
 * PY_VECTORCALL_ARGUMENTS_OFFSET only when our own caller lent us the slot
 * before `args` (it passed that flag with this very array); otherwise it is
 * 0. The slot is never ours to lend: it may be a tuple's size field (a call
 * through tp_call) or an argument our caller still holds, and a callee that
 * borrows it leaves garbage there for the cyclic collector to read. */
static inline PyObject *
call_fn(PyObject *fn, PyObject *const *args, Py_ssize_t nargs, size_t offset, PyObject *kwnames)
{
    return PyObject_Vectorcall(fn, args, (size_t)nargs | offset, kwnames);
}

/* -- StorageBase ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    /* The instance's ContextVar; replaced as a whole by disable(). Read on
     * every call, never cached elsewhere, so a get_store bound method saved
     * before disable() reads the new variable. */
    PyObject *var;
    PyObject *default_value;
} Storage;

static int
storage_traverse(Storage *self, visitproc visit, void *arg)
{
    Py_VISIT(self->var);
    Py_VISIT(self->default_value);
    return 0;
}

static int
storage_clear(Storage *self)
{
    Py_CLEAR(self->var);
    Py_CLEAR(self->default_value);
    return 0;
}

static void
storage_dealloc(Storage *self)
{
    PyObject_GC_UnTrack(self);
    storage_clear(self);
    /* A static base: subtype_dealloc releases the subclass's type. */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
storage_var(Storage *self)
{
    if (self->var == NULL) {
        PyErr_SetString(PyExc_AttributeError,
                        "AsyncLocalStorage.__init__() was not called (no variable)");
    }
    return self->var;
}

PyDoc_STRVAR(get_store_doc,
"get_store($self, /)\n--\n\n"
"The store of the current execution, or ``default`` where there is none.\n"
"\n"
"``default`` is returned only where no ``run``/``enter_with`` of this\n"
"instance is in effect; ``run(None, fn)`` and ``exit(fn)`` store None.");

static PyObject *
storage_get_store(Storage *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *var = self->var, *value;
    if (var == NULL) {
        return storage_var(self);
    }
    /* The variable was created with the instance's default. */
    if (PyContextVar_Get(var, NULL, &value) < 0) {
        return NULL;
    }
    return value;
}

/* The `finally` of run: the previous store is back. */
static int
end_run(Storage *self, PyObject *var, PyObject *token)
{
    if (PyContextVar_Reset(var, token) < 0) {
        return -1;
    }
    if (self->var != var && self->var != NULL) {
        /* fn called disable(): what was entered after it ends here too. */
        PyObject *entered = PyContextVar_Set(self->var, self->default_value);
        if (entered == NULL) {
            return -1;
        }
        Py_DECREF(entered);
    }
    return 0;
}

/* run(store, fn, *args, **kwargs), with the arguments of fn starting at args. */
static PyObject *
storage_run_impl(Storage *self, PyObject *store, PyObject *fn,
                 PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *var = storage_var(self);
    if (var == NULL || !configured()) {
        return NULL;
    }
    Py_INCREF(var);
    PyObject *token = PyContextVar_Set(var, store);
    if (token == NULL) {
        Py_DECREF(var);
        return NULL;
    }
    PyObject *result = call_fn(fn, args, nargs, 0, kwnames);
    if (result != NULL) {
        int coroutine = is_coroutine(result);
        if (coroutine < 0) {
            Py_CLEAR(result);
        }
        else if (coroutine > 0) {
            /* Copied before the reset: the coroutine also sees what fn entered. */
            PyObject *context = PyContext_CopyCurrent();
            PyObject *wrapped = NULL;
            if (context != NULL) {
                PyObject *pair[2] = {result, context};
                wrapped = PyObject_Vectorcall(context_coroutine, pair, 2, NULL);
                Py_DECREF(context);
            }
            Py_SETREF(result, wrapped);
        }
    }
    else {
        replace_if_not_callable(fn);
    }
    if (result != NULL) {
        if (end_run(self, var, token) < 0) {
            Py_CLEAR(result);
        }
    }
    else {
        SavedError saved = save_error();
        end_run(self, var, token);
        finish_cleanup(saved);
    }
    Py_DECREF(token);
    Py_DECREF(var);
    return result;
}

static int
require_positional(const char *name, Py_ssize_t nargs, Py_ssize_t needed, const char *missing)
{
    if (nargs >= needed) {
        return 1;
    }
    PyErr_Format(PyExc_TypeError,
                 "%s() missing required positional argument%s: %s", name,
                 needed - nargs > 1 ? "s" : "", missing);
    return 0;
}

PyDoc_STRVAR(run_doc,
"run($self, store, fn, /, *args, **kwargs)\n--\n\n"
"Call ``fn(*args, **kwargs)`` with ``store`` as this instance's store.\n"
"\n"
"The store is seen by everything ``fn`` creates (tasks, callbacks,\n"
"timers) and the previous one is back afterwards, also if ``fn``\n"
"raises. If ``fn`` returns a coroutine, the coroutine is returned\n"
"wrapped so that it keeps the store for its whole execution when\n"
"awaited.");

static PyObject *
storage_run(Storage *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (!require_positional("AsyncLocalStorage.run", nargs, 2,
                            nargs == 0 ? "'store' and 'fn'" : "'fn'")) {
        return NULL;
    }
    return storage_run_impl(self, args[0], args[1], args + 2, nargs - 2, kwnames);
}

PyDoc_STRVAR(exit_doc,
"exit($self, fn, /, *args, **kwargs)\n--\n\n"
"Call ``fn`` outside of any store: inside, ``get_store()`` is None.");

static PyObject *
storage_exit(Storage *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (!require_positional("AsyncLocalStorage.exit", nargs, 1, "'fn'")) {
        return NULL;
    }
    return storage_run_impl(self, Py_None, args[0], args + 1, nargs - 1, kwnames);
}

PyDoc_STRVAR(enter_with_doc,
"enter_with($self, store, /)\n--\n\n"
"Make ``store`` the store for the rest of the current execution.\n"
"\n"
"In asyncio that is the rest of the current task or callback, and\n"
"everything it schedules. Prefer ``run`` or ``with_scope``, which end.");

static PyObject *
storage_enter_with(Storage *self, PyObject *store)
{
    PyObject *var = storage_var(self);
    if (var == NULL) {
        return NULL;
    }
    PyObject *token = PyContextVar_Set(var, store);
    if (token == NULL) {
        return NULL;
    }
    Py_DECREF(token);
    Py_RETURN_NONE;
}

static PyMethodDef storage_methods[] = {
    {"get_store", (PyCFunction)storage_get_store, METH_NOARGS, get_store_doc},
    {"run", (PyCFunction)(void (*)(void))storage_run, METH_FASTCALL | METH_KEYWORDS, run_doc},
    {"exit", (PyCFunction)(void (*)(void))storage_exit, METH_FASTCALL | METH_KEYWORDS, exit_doc},
    {"enter_with", (PyCFunction)storage_enter_with, METH_O, enter_with_doc},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef storage_members[] = {
    {"_var", Py_T_OBJECT_EX, offsetof(Storage, var), 0, "The store's ContextVar."},
    {"_default", Py_T_OBJECT_EX, offsetof(Storage, default_value), 0, "The store's default."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject StorageType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "async_hooks._speedups.StorageBase",
    .tp_doc = PyDoc_STR("The compiled hot path of AsyncLocalStorage."),
    .tp_basicsize = sizeof(Storage),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)storage_traverse,
    .tp_clear = (inquiry)storage_clear,
    .tp_dealloc = (destructor)storage_dealloc,
    .tp_methods = storage_methods,
    .tp_members = storage_members,
};

/* -- the dispatch of events ------------------------------------------------- */

/* Deliver the destroys queued by the garbage collector, if any: before any
 * other event, and before a new resource takes an id. -1 on error. */
static int
flush_queued_destroys(void)
{
    Py_ssize_t queued = PyObject_Size(pending_destroys);
    if (queued <= 0) {
        return (int)queued;
    }
    PyObject *flushed = PyObject_CallNoArgs(flush_pending_destroys);
    if (flushed == NULL) {
        return -1;
    }
    Py_DECREF(flushed);
    return 0;
}

/* How deep this thread is inside dispatch(): hook changes made at any depth
 * wait for the outermost dispatch to end (_hooks._inside_dispatch asks). */
static _Thread_local int dispatch_depth;

/* Hands the error being raised by `callback` to report_unraisable; returns
 * -1 if reporting raised (that error is then the one pending). */
static int
report_callback_error(int event, PyObject *callback)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *error = PyErr_GetRaisedException();
#else
    PyObject *type, *error, *traceback;
    PyErr_Fetch(&type, &error, &traceback);
    PyErr_NormalizeException(&type, &error, &traceback);
    if (traceback != NULL) {
        PyException_SetTraceback(error, traceback);
    }
    Py_XDECREF(type);
    Py_XDECREF(traceback);
#endif
    PyObject *report_args[3] = {error, event_messages[event], callback};
    PyObject *reported = PyObject_Vectorcall(report_unraisable, report_args, 3, NULL);
    Py_DECREF(error);
    if (reported == NULL) {
        return -1;
    }
    Py_DECREF(reported);
    return 0;
}

/* The callbacks of `event`, each called with args, in one copy of the
 * current context: a callback that enters a store changes neither the code
 * that caused the event nor the next event. An Exception from a callback is
 * reported and the rest go on; anything else (KeyboardInterrupt) stops the
 * dispatch and is raised. Returns -1 with an error set, else 0. */
static int
dispatch(int event, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *callbacks = event_callbacks[event];
    if (callbacks == NULL || PyTuple_GET_SIZE(callbacks) == 0) {
        return 0;
    }
    if (report_unraisable == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "async_hooks._speedups dispatches before configure_dispatch()");
        return -1;
    }
    if (event != EVENT_DESTROY) {
        if (flush_queued_destroys() < 0) {
            return -1;
        }
        callbacks = event_callbacks[event]; /* a destroy callback may change hooks */
    }
    PyObject *context = PyContext_CopyCurrent();
    if (context == NULL) {
        return -1;
    }
    if (PyContext_Enter(context) < 0) {
        Py_DECREF(context);
        return -1;
    }
    /* Held: enable() or disable() from a callback replaces the tuple. */
    Py_INCREF(callbacks);
    dispatch_depth++;
    int failed = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(callbacks); i++) {
        PyObject *callback = PyTuple_GET_ITEM(callbacks, i);
        PyObject *result = PyObject_Vectorcall(callback, args, nargs, NULL);
        if (result != NULL) {
            Py_DECREF(result);
        }
        else if (!PyErr_ExceptionMatches(PyExc_Exception) ||
                 report_callback_error(event, callback) < 0) {
            failed = 1;
            break;
        }
    }
    dispatch_depth--;
    Py_DECREF(callbacks);
    if (failed) {
        SavedError saved = save_error();
        PyContext_Exit(context);
        finish_cleanup(saved);
    }
    else if (PyContext_Exit(context) < 0) {
        failed = 1;
    }
    Py_DECREF(context);
    if (!failed && deferred_changes_waiting && dispatch_depth == 0) {
        PyObject *applied = PyObject_CallNoArgs(apply_deferred_changes);
        if (applied == NULL) {
            return -1;
        }
        Py_DECREF(applied);
    }
    return failed ? -1 : 0;
}

static PyObject *
emit(int event, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "emit_%s() takes exactly %zd argument%s (%zd given)",
                     event_names[event], expected, expected == 1 ? "" : "s", nargs);
        return NULL;
    }
    if (dispatch(event, args, nargs) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
emit_init(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    return emit(EVENT_INIT, args, nargs, 4);
}

static PyObject *
emit_before(PyObject *Py_UNUSED(module), PyObject *async_id)
{
    return dispatch(EVENT_BEFORE, &async_id, 1) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
emit_after(PyObject *Py_UNUSED(module), PyObject *async_id)
{
    return dispatch(EVENT_AFTER, &async_id, 1) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
emit_destroy(PyObject *Py_UNUSED(module), PyObject *async_id)
{
    return dispatch(EVENT_DESTROY, &async_id, 1) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
emit_promise_resolve(PyObject *Py_UNUSED(module), PyObject *async_id)
{
    return dispatch(EVENT_PROMISE_RESOLVE, &async_id, 1) < 0 ? NULL : Py_NewRef(Py_None);
}

PyDoc_STRVAR(emit_init_doc, "emit_init(async_id, type, trigger_async_id, resource, /)\n--\n\n"
                            "Call the enabled init callbacks.");
PyDoc_STRVAR(emit_before_doc, "emit_before(async_id, /)\n--\n\nCall the enabled before callbacks.");
PyDoc_STRVAR(emit_after_doc, "emit_after(async_id, /)\n--\n\nCall the enabled after callbacks.");
PyDoc_STRVAR(emit_destroy_doc,
             "emit_destroy(async_id, /)\n--\n\nCall the enabled destroy callbacks.");
PyDoc_STRVAR(emit_promise_resolve_doc,
             "emit_promise_resolve(async_id, /)\n--\n\n"
             "Call the enabled promise_resolve callbacks.");

PyDoc_STRVAR(dispatching_doc, "dispatching()\n--\n\n"
                              "Whether this thread is running hook callbacks (at any depth).");

static PyObject *
dispatching(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    return PyBool_FromLong(dispatch_depth > 0);
}

/* A copy of the current context with `frame` as its execution frame: the
 * context of a resource whose callbacks then need no frame switch. */
static PyObject *
context_with_frame(PyObject *frame)
{
    PyObject *context = PyContext_CopyCurrent();
    if (context == NULL || PyContext_Enter(context) < 0) {
        Py_XDECREF(context);
        return NULL;
    }
    PyObject *token = PyContextVar_Set(current_frame, frame);
    int exited = PyContext_Exit(context);
    Py_XDECREF(token);
    if (token == NULL || exited < 0) {
        Py_DECREF(context);
        return NULL;
    }
    return context;
}

/* -- a call in a resource's scope ------------------------------------------ */

/* fn(*args) inside `context` (stolen; a fresh copy), between the resource's
 * before and after events when a hook listens for them. */
static PyObject *
scope_call(PyObject *context, PyObject *async_id, PyObject *resource, PyObject *fn,
           PyObject *const *args, Py_ssize_t nargs, size_t offset, PyObject *kwnames,
           int check_callable)
{
    if (!configured() || PyContext_Enter(context) < 0) {
        Py_DECREF(context);
        return NULL;
    }
    PyObject *result;
    if (scope_events) {
        if (dispatch(EVENT_BEFORE, &async_id, 1) < 0) {
            result = NULL;
        }
        else {
            result = call_fn(fn, args, nargs, offset, kwnames);
            /* Node's finally: after is emitted also when fn raised. */
            SavedError saved = save_error();
            int after_failed = dispatch(EVENT_AFTER, &async_id, 1) < 0;
            finish_cleanup(saved);
            if (after_failed) {
                Py_CLEAR(result);
            }
        }
    }
    else {
        result = call_fn(fn, args, nargs, offset, kwnames);
    }
    if (result == NULL && check_callable) {
        replace_if_not_callable(fn);
    }
    result = exit_context(context, result);
    if (result != NULL) {
        result = wrap_if_coroutine(result, context, async_id, resource);
    }
    Py_DECREF(context);
    return result;
}

/* -- ResourceBase ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *context; /* captured at creation, with the resource's frame in it */
    PyObject *async_id;
    PyObject *trigger_async_id;
    PyObject *type;
    PyObject *destroyed; /* a bool: emit_destroy() was called */
} Resource;

static int
resource_traverse(Resource *self, visitproc visit, void *arg)
{
    Py_VISIT(self->context);
    Py_VISIT(self->async_id);
    Py_VISIT(self->trigger_async_id);
    Py_VISIT(self->type);
    Py_VISIT(self->destroyed);
    return 0;
}

static int
resource_clear(Resource *self)
{
    Py_CLEAR(self->context);
    Py_CLEAR(self->async_id);
    Py_CLEAR(self->trigger_async_id);
    Py_CLEAR(self->type);
    Py_CLEAR(self->destroyed);
    return 0;
}

/* Calls a Python check that raises for a bad value; 0 when it passed. */
static int
check_with(PyObject *check, PyObject *value)
{
    PyObject *checked = PyObject_CallOneArg(check, value);
    if (checked == NULL) {
        return -1;
    }
    Py_DECREF(checked);
    return 0;
}

/* ExecutionFrame(async_id, trigger_async_id, resource), without running its
 * Python __init__: what that __init__ does for a resource that can be
 * referenced weakly (every AsyncResource), written into its slots. */
static PyObject *
new_frame(PyObject *async_id, PyObject *trigger_id, PyObject *resource)
{
    if (frame_async_id_offset == 0) {
        PyObject *args[3] = {async_id, trigger_id, resource};
        return PyObject_Vectorcall(execution_frame, args, 3, NULL);
    }
    PyObject *ref = PyWeakref_NewRef(resource, NULL);
    if (ref == NULL) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)execution_frame;
    PyObject *frame = type->tp_alloc(type, 0);
    if (frame == NULL) {
        Py_DECREF(ref);
        return NULL;
    }
    char *base = (char *)frame;
    *(PyObject **)(base + frame_async_id_offset) = Py_NewRef(async_id);
    *(PyObject **)(base + frame_trigger_offset) = Py_NewRef(trigger_id);
    *(PyObject **)(base + frame_resource_offset) = ref;
    return frame;
}

/* The offset of a plain object slot `name` of `type`, 0 if it is not one. */
static Py_ssize_t
slot_offset(PyObject *type, const char *name)
{
    PyObject *descriptor = PyObject_GetAttrString(type, name);
    if (descriptor == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t offset = 0;
    if (Py_IS_TYPE(descriptor, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
        if (member->type == Py_T_OBJECT_EX && member->flags == 0) {
            offset = member->offset;
        }
    }
    Py_DECREF(descriptor);
    return offset;
}

/* AsyncResource.__init__ (the pure-Python one is in _resource.py): validate,
 * take an id, capture the context with the resource's execution frame in
 * it, emit init, and watch for collection when a destroy hook listens. */
static int
resource_init(Resource *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"type", "trigger_async_id", "require_manual_destroy", NULL};
    PyObject *type, *trigger = Py_None, *manual = Py_False;
    if (validate_async_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "async_hooks._speedups is used before configure_resources()");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$O:AsyncResource", names, &type,
                                     &trigger, &manual)) {
        return -1;
    }
    /* The checks run in Python only for what they reject or must look at. */
    if ((!PyUnicode_Check(type) || PyUnicode_GET_LENGTH(type) == 0) &&
        check_with(validate_async_type, type) < 0) {
        return -1;
    }
    if (!PyBool_Check(manual) && check_with(validate_manual_destroy, manual) < 0) {
        return -1;
    }
    PyObject *trigger_id;
    if (trigger == Py_None) {
        PyObject *frame;
        if (PyContextVar_Get(current_frame, NULL, &frame) < 0) {
            return -1;
        }
        trigger_id = PyObject_GetAttr(frame, str_async_id);
        Py_DECREF(frame);
        if (trigger_id == NULL) {
            return -1;
        }
    }
    else {
        if (check_with(validate_trigger_async_id, trigger) < 0) {
            return -1;
        }
        trigger_id = Py_NewRef(trigger);
    }
    if (flush_queued_destroys() < 0) {
        Py_DECREF(trigger_id);
        return -1;
    }
    PyObject *async_id = PyObject_CallNoArgs(next_async_id);
    if (async_id == NULL) {
        Py_DECREF(trigger_id);
        return -1;
    }
    Py_XSETREF(self->async_id, async_id);
    Py_XSETREF(self->trigger_async_id, trigger_id);
    Py_XSETREF(self->type, Py_NewRef(type));
    Py_XSETREF(self->destroyed, Py_NewRef(Py_False));

    PyObject *frame = new_frame(async_id, trigger_id, (PyObject *)self);
    if (frame == NULL) {
        return -1;
    }
    PyObject *context = context_with_frame(frame);
    Py_DECREF(frame);
    if (context == NULL) {
        return -1;
    }
    Py_XSETREF(self->context, context);

    if (init_events) {
        PyObject *init_args[4] = {async_id, type, trigger_id, (PyObject *)self};
        if (dispatch(EVENT_INIT, init_args, 4) < 0) {
            return -1;
        }
    }
    if (destroy_events && manual == Py_False &&
        check_with(destroy_when_collected, (PyObject *)self) < 0) {
        return -1;
    }
    return 0;
}

static void
resource_dealloc(Resource *self)
{
    PyObject_GC_UnTrack(self);
    resource_clear(self);
    /* A static base: subtype_dealloc releases the subclass's type. */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(run_in_async_scope_doc,
"run_in_async_scope($self, fn, /, *args, **kwargs)\n--\n\n"
"Call ``fn`` in this resource's scope, between ``before`` and ``after``.\n"
"\n"
"Inside, the stores are those of the resource's creation and\n"
"``execution_async_id()`` is this resource's id. A returned coroutine\n"
"keeps that scope (and its before/after) for each of its steps.");

static PyObject *
resource_run_in_async_scope(Resource *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    if (!require_positional("AsyncResource.run_in_async_scope", nargs, 1, "'fn'")) {
        return NULL;
    }
    if (self->context == NULL || self->async_id == NULL) {
        PyErr_SetString(PyExc_AttributeError,
                        "AsyncResource.__init__() was not called (no context)");
        return NULL;
    }
    PyObject *context = PyContext_Copy(self->context);
    if (context == NULL) {
        return NULL;
    }
    return scope_call(context, self->async_id, (PyObject *)self, args[0], args + 1, nargs - 1,
                      0, kwnames, 1);
}

static PyMethodDef resource_methods[] = {
    {"run_in_async_scope", (PyCFunction)(void (*)(void))resource_run_in_async_scope,
     METH_FASTCALL | METH_KEYWORDS, run_in_async_scope_doc},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef resource_members[] = {
    {"_context", Py_T_OBJECT_EX, offsetof(Resource, context), 0,
     "The context captured at creation."},
    {"_async_id", Py_T_OBJECT_EX, offsetof(Resource, async_id), 0, "The resource's id."},
    {"_trigger_async_id", Py_T_OBJECT_EX, offsetof(Resource, trigger_async_id), 0,
     "The id of the execution that created it."},
    {"_type", Py_T_OBJECT_EX, offsetof(Resource, type), 0, "The type given."},
    {"_destroyed", Py_T_OBJECT_EX, offsetof(Resource, destroyed), 0,
     "Whether emit_destroy() was called."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ResourceType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "async_hooks._speedups.ResourceBase",
    /* The signature line is what inspect.signature(AsyncResource) shows. */
    .tp_doc = PyDoc_STR("ResourceBase(type, trigger_async_id=None, *, require_manual_destroy=False)\n"
                        "--\n\n"
                        "The compiled hot path of AsyncResource."),
    .tp_basicsize = sizeof(Resource),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)resource_init,
    .tp_traverse = (traverseproc)resource_traverse,
    .tp_clear = (inquiry)resource_clear,
    .tp_dealloc = (destructor)resource_dealloc,
    .tp_methods = resource_methods,
    .tp_members = resource_members,
};

/* -- callables that behave as functions in a class body ------------------- */

/* A Python function stored on a class binds to the instance; the objects
 * below replace Python functions, so they bind the same way. */
static PyObject *
bind_as_method(PyObject *self, PyObject *instance, PyObject *Py_UNUSED(owner))
{
    if (instance == NULL || instance == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, instance);
}

/* -- BoundFunction ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *context; /* the resource's, copied on every call */
    PyObject *fn;
    PyObject *async_id;
    PyObject *resource;
    PyObject *dict; /* __name__, __wrapped__, ... from functools.update_wrapper */
    PyObject *weakrefs;
    vectorcallfunc vectorcall;
} Bound;

static PyObject *
bound_vectorcall(Bound *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *context = PyContext_Copy(self->context);
    if (context == NULL) {
        return NULL;
    }
    /* fn was checked when bound: a TypeError is fn's own. */
    return scope_call(context, self->async_id, self->resource, self->fn, args,
                      PyVectorcall_NARGS(nargsf), nargsf & PY_VECTORCALL_ARGUMENTS_OFFSET,
                      kwnames, 0);
}

static PyObject *
bound_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *context, *fn, *async_id, *resource;
    static char *names[] = {"context", "fn", "async_id", "resource", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OOO:BoundFunction", names,
                                     &PyContext_Type, &context, &fn, &async_id, &resource)) {
        return NULL;
    }
    Bound *self = (Bound *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->context = Py_NewRef(context);
    self->fn = Py_NewRef(fn);
    self->async_id = Py_NewRef(async_id);
    self->resource = Py_NewRef(resource);
    self->vectorcall = (vectorcallfunc)bound_vectorcall;
    return (PyObject *)self;
}

static int
bound_traverse(Bound *self, visitproc visit, void *arg)
{
    Py_VISIT(self->context);
    Py_VISIT(self->fn);
    Py_VISIT(self->async_id);
    Py_VISIT(self->resource);
    Py_VISIT(self->dict);
    return 0;
}

static int
bound_clear(Bound *self)
{
    Py_CLEAR(self->context);
    Py_CLEAR(self->fn);
    Py_CLEAR(self->async_id);
    Py_CLEAR(self->resource);
    Py_CLEAR(self->dict);
    return 0;
}

static void
bound_dealloc(Bound *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    bound_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
bound_repr(Bound *self)
{
    return PyUnicode_FromFormat("<async_hooks bound function %R>", self->fn);
}

static PyGetSetDef bound_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BoundType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "async_hooks._speedups.BoundFunction",
    .tp_doc = PyDoc_STR("A function bound to a resource's scope (AsyncResource.bind)."),
    .tp_basicsize = sizeof(Bound),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = bound_new,
    .tp_traverse = (traverseproc)bound_traverse,
    .tp_clear = (inquiry)bound_clear,
    .tp_dealloc = (destructor)bound_dealloc,
    .tp_repr = (reprfunc)bound_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Bound, vectorcall),
    .tp_dictoffset = offsetof(Bound, dict),
    .tp_weaklistoffset = offsetof(Bound, weakrefs),
    .tp_descr_get = bind_as_method,
    .tp_getset = bound_getset,
};

/* -- SnapshotRunner ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *context; /* captured by snapshot(), copied on every call */
    PyObject *frame;   /* the execution frame current at capture */
    PyObject *weakrefs;
    vectorcallfunc vectorcall;
} Snapshot;

static PyObject *
snapshot_vectorcall(Snapshot *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (!require_positional("snapshot runner", nargs, 1, "'fn'")) {
        return NULL;
    }
    PyObject *fn = args[0], *frame;
    if (!configured() || PyContextVar_Get(current_frame, NULL, &frame) < 0) {
        return NULL;
    }
    PyObject *context = PyContext_Copy(self->context);
    if (context == NULL) {
        Py_DECREF(frame);
        return NULL;
    }
    if (PyContext_Enter(context) < 0) {
        Py_DECREF(frame);
        Py_DECREF(context);
        return NULL;
    }
    PyObject *result = NULL;
    int frame_ok = 1;
    if (frame != self->frame) {
        /* A snapshot restores stores, not an execution scope (as in Node):
         * inside, the ids stay the caller's. */
        PyObject *token = PyContextVar_Set(current_frame, frame);
        frame_ok = token != NULL;
        Py_XDECREF(token);
    }
    Py_DECREF(frame);
    if (frame_ok) {
        result = call_fn(fn, args + 1, nargs - 1, 0, kwnames);
        if (result == NULL) {
            replace_if_not_callable(fn);
        }
    }
    result = exit_context(context, result);
    if (result != NULL) {
        result = wrap_if_coroutine(result, context, NULL, NULL);
    }
    Py_DECREF(context);
    return result;
}

static int
snapshot_traverse(Snapshot *self, visitproc visit, void *arg)
{
    Py_VISIT(self->context);
    Py_VISIT(self->frame);
    return 0;
}

static int
snapshot_clear(Snapshot *self)
{
    Py_CLEAR(self->context);
    Py_CLEAR(self->frame);
    return 0;
}

static void
snapshot_dealloc(Snapshot *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    snapshot_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject SnapshotType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "async_hooks._speedups.SnapshotRunner",
    .tp_doc = PyDoc_STR("runner(fn, /, *args, **kwargs): fn in a fresh copy of the captured context."),
    .tp_basicsize = sizeof(Snapshot),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_traverse = (traverseproc)snapshot_traverse,
    .tp_clear = (inquiry)snapshot_clear,
    .tp_dealloc = (destructor)snapshot_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Snapshot, vectorcall),
    .tp_weaklistoffset = offsetof(Snapshot, weakrefs),
    .tp_descr_get = bind_as_method,
};

PyDoc_STRVAR(snapshot_doc,
"snapshot()\n--\n\n"
"Capture the current context; the result runs functions inside it.\n"
"\n"
"Every call of the returned runner uses a fresh copy of the captured\n"
"context, so calls do not see each other's changes and may nest.");

static PyObject *
snapshot(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    if (!configured()) {
        return NULL;
    }
    Snapshot *self = PyObject_GC_New(Snapshot, &SnapshotType);
    if (self == NULL) {
        return NULL;
    }
    self->weakrefs = NULL;
    self->vectorcall = (vectorcallfunc)snapshot_vectorcall;
    self->frame = NULL;
    self->context = PyContext_CopyCurrent();
    if (self->context == NULL || PyContextVar_Get(current_frame, NULL, &self->frame) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* -- runtime tracking of asyncio ------------------------------------------- */

/* The common cases of _runtime/_asyncio.py in C: a task made by create_task,
 * the steps it schedules and runs, a plain call_soon callback and a future
 * from create_future. Each replacement holds the loop's original method and
 * the Python replacement, which it calls for every other case (a task
 * factory, debug mode, a user's context for a task, a task not made by
 * create_task, creation sites), so what it does is what the Python code
 * does. */

/* What configure_records() and configure_tracking() hand over. */
static PyObject *record_type;       /* _live.TrackedResource */
static PyObject *live_resources;    /* _live.live_resources: async id -> record */
static PyObject *task_records;      /* _asyncio._tasks: id(task) -> record */
static PyObject *handle_records;    /* _asyncio._handles: id(handle) -> record */
static PyObject *future_records;    /* _asyncio._futures: id(future) -> record */
static PyObject *resource_ref_type; /* _live._ResourceRef */
static PyObject *resource_collected; /* _live._resource_collected(async_id) */
static PyObject *no_resource;       /* _live._no_resource */
static PyObject *running_task;      /* _asyncio._running_task */
static PyObject *task_type;         /* asyncio.Task (the C one) */
static PyObject *task_done;         /* asyncio.Task.done, the method descriptor */
static PyObject *empty_str;
static PyObject *zero;
static PyObject *str_done, *str_debug_attribute, *str_factory_attribute, *str_self;
static PyObject *str_get_debug, *str_get_task_factory;
static PyObject *str_name, *str_context;
static PyObject *context_kwnames;      /* ("context",) */
static PyObject *name_context_kwnames; /* ("name", "context") */

/* Where TrackedResource and asyncio.Handle keep their slots. */
static Py_ssize_t rec_async_id, rec_trigger, rec_resource, rec_context, rec_created_at,
    rec_creation_site, rec_filed_as, rec_filed_in, rec_frame_in_context, rec_holder,
    rec_initialized, rec_repeats, rec_type;
static Py_ssize_t handle_callback, handle_context;

/* Whether any hook is enabled, and whether creation sites are recorded
 * (set_enabled_callbacks mirrors _hooks.enabled.hooks and .creation_sites). */
static int any_hook;
static int creation_sites;

/* The record create_task is making on this thread: the task's constructor
 * schedules its first step before create_task has the task. */
static _Thread_local PyObject *creating_record;

/* TaskStepMethWrapper, the type of a C task's step callback: found by name
 * the first time one is seen (the type is not exported). */
static PyTypeObject *step_wrapper_type;
static int step_wrapper_task_read; /* whether its task is read off its struct */

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* Whether a keyword name is `interned`: callers in C may pass names they
 * made themselves (the C Task's "context" is not interned). */
static inline int
is_keyword(PyObject *name, PyObject *interned)
{
    return name == interned || PyUnicode_Compare(name, interned) == 0;
}

static inline PyObject *
get_slot(PyObject *obj, Py_ssize_t offset)
{
    return SLOT(obj, offset); /* borrowed; NULL when unset */
}

static inline void
set_slot(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    Py_XSETREF(SLOT(obj, offset), Py_NewRef(value));
}

/* The C task whose step `callback` is (borrowed), else NULL with no error. */
static PyObject *
c_task_of_step(PyObject *callback)
{
    PyTypeObject *type = Py_TYPE(callback);
    if (type == step_wrapper_type) {
        goto step_wrapper;
    }
    if (PyCFunction_Check(callback)) {
        PyObject *owner = PyCFunction_GET_SELF(callback);
        if (owner != NULL && Py_IS_TYPE(owner, (PyTypeObject *)task_type) &&
            strcmp(((PyCFunctionObject *)callback)->m_ml->ml_name, "task_wakeup") == 0) {
            return owner;
        }
        return NULL;
    }
    if (step_wrapper_type == NULL) {
        const char *dot = strrchr(type->tp_name, '.');
        if (strcmp(dot == NULL ? type->tp_name : dot + 1, "TaskStepMethWrapper") == 0) {
            step_wrapper_type = type;
            goto step_wrapper;
        }
    }
    return NULL;
step_wrapper:;
    PyObject *owner;
    if (step_wrapper_task_read) {
        owner = SLOT(callback, sizeof(PyObject));
    }
    else {
        owner = PyObject_GetAttr(callback, str_self);
        if (owner == NULL) {
            PyErr_Clear();
            return NULL;
        }
        Py_DECREF(owner); /* the wrapper holds it */
        /* The wrapper keeps its task first after its header in every CPython
         * this builds for; read there from now on once seen to be so (what
         * __self__ reads otherwise costs a getset lookup per step). */
        step_wrapper_task_read = SLOT(callback, sizeof(PyObject)) == owner;
    }
    return owner != NULL && Py_IS_TYPE(owner, (PyTypeObject *)task_type) ? owner : NULL;
}

/* index[id(obj)], borrowed, or NULL (with an error only if the lookup failed). */
static PyObject *
record_of(PyObject *index, PyObject *obj)
{
    PyObject *key = PyLong_FromVoidPtr(obj);
    if (key == NULL) {
        return NULL;
    }
    PyObject *record = PyDict_GetItemWithError(index, key);
    Py_DECREF(key);
    return record;
}

/* next_async_id(), without the call through its method wrapper. */
static PyObject *
new_async_id(void)
{
    if (async_id_counter == NULL) {
        return PyObject_CallNoArgs(next_async_id);
    }
    return Py_TYPE(async_id_counter)->tp_iternext(async_id_counter);
}

/* time.monotonic(), read as that function reads it. */
static PyObject *
monotonic_now(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t now;
    if (PyTime_Monotonic(&now) < 0) {
        return NULL;
    }
    return PyFloat_FromDouble(PyTime_AsSecondsDouble(now));
#else
    return PyFloat_FromDouble(_PyTime_AsSecondsDouble(_PyTime_GetMonotonicClock()));
#endif
}

/* The object a record names (borrowed; NULL when collected or not yet
 * named): what its weak reference points to. */
static PyObject *
referent(PyObject *record)
{
    PyObject *ref = get_slot(record, rec_resource);
    if (ref == NULL || !PyWeakref_Check(ref)) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *obj;
    if (PyWeakref_GetRef(ref, &obj) <= 0) {
        PyErr_Clear();
        return NULL;
    }
    Py_DECREF(obj); /* only compared with an object the caller holds */
    return obj;
#else
    PyObject *obj = PyWeakref_GetObject(ref);
    return obj == Py_None ? NULL : obj;
#endif
}

/* The live record whose frame `context` holds as the context of its own
 * (borrowed), else NULL with no error. This is how a task's or handle's
 * record is found when it was made with a context of its own (the common
 * case): with no index keyed by id() to keep. The caller checks whose
 * resource it is: other handles may run in a task's context. */
static PyObject *
record_in_context(PyObject *context)
{
    if (context == NULL || !PyContext_CheckExact(context)) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *record;
    if (PyMapping_GetOptionalItem(context, current_frame, &record) <= 0) {
        PyErr_Clear();
        return NULL;
    }
#else
    PyObject *record = PyObject_GetItem(context, current_frame);
    if (record == NULL) {
        PyErr_Clear(); /* no frame in it: not made here */
        return NULL;
    }
#endif
    Py_DECREF(record); /* the context holds it */
    /* A finished record lets go of its context. */
    if (!Py_IS_TYPE(record, (PyTypeObject *)record_type) ||
        get_slot(record, rec_context) != context) {
        return NULL;
    }
    return record;
}

/* A new record (TrackedResource.__init__ with no context and the current
 * execution as trigger), listed in live_resources; NULL on error. */
static PyObject *
new_record(void)
{
    if (flush_queued_destroys() < 0) {
        return NULL;
    }
    PyObject *frame;
    if (PyContextVar_Get(current_frame, NULL, &frame) < 0) {
        return NULL;
    }
    PyObject *trigger = NULL;
    if (frame != NULL && frame_async_id_offset != 0 &&
        (Py_IS_TYPE(frame, (PyTypeObject *)record_type) ||
         Py_IS_TYPE(frame, (PyTypeObject *)execution_frame))) {
        trigger = Py_XNewRef(SLOT(frame, frame_async_id_offset)); /* the slot TrackedResource inherits */
    }
    if (trigger == NULL && frame != NULL) {
        trigger = PyObject_GetAttr(frame, str_async_id);
    }
    Py_XDECREF(frame);
    if (trigger == NULL) {
        return NULL;
    }
    PyObject *async_id = new_async_id();
    PyObject *now = async_id == NULL ? NULL : monotonic_now();
    PyObject *record = now == NULL ? NULL
                                   : ((PyTypeObject *)record_type)
                                         ->tp_alloc((PyTypeObject *)record_type, 0);
    if (record == NULL) {
        Py_DECREF(trigger);
        Py_XDECREF(async_id);
        Py_XDECREF(now);
        return NULL;
    }
    SLOT(record, rec_async_id) = async_id;
    SLOT(record, rec_trigger) = trigger;
    SLOT(record, rec_resource) = Py_NewRef(no_resource);
    SLOT(record, rec_type) = Py_NewRef(empty_str);
    SLOT(record, rec_context) = Py_NewRef(Py_None);
    SLOT(record, rec_created_at) = now;
    SLOT(record, rec_creation_site) = Py_NewRef(Py_None);
    SLOT(record, rec_initialized) = Py_NewRef(Py_False);
    SLOT(record, rec_frame_in_context) = Py_NewRef(Py_False);
    SLOT(record, rec_filed_in) = Py_NewRef(Py_None);
    SLOT(record, rec_filed_as) = Py_NewRef(zero);
    SLOT(record, rec_repeats) = Py_NewRef(Py_False);
    SLOT(record, rec_holder) = Py_NewRef(Py_None);
    if (PyDict_SetItem(live_resources, async_id, record) < 0) {
        Py_DECREF(record);
        return NULL;
    }
    return record;
}

/* TrackedResource.file(index, obj). */
static int
file_record(PyObject *record, PyObject *index, PyObject *obj)
{
    PyObject *key = PyLong_FromVoidPtr(obj);
    if (key == NULL) {
        return -1;
    }
    set_slot(record, rec_filed_in, index);
    Py_XSETREF(SLOT(record, rec_filed_as), key);
    return PyDict_SetItem(index, key, record);
}

/* TrackedResource.unfile(). */
static int
unfile_record(PyObject *record)
{
    PyObject *index = get_slot(record, rec_filed_in);
    if (index == NULL || index == Py_None) {
        return 0;
    }
    Py_INCREF(index);
    set_slot(record, rec_filed_in, Py_None);
    PyObject *key = get_slot(record, rec_filed_as);
    PyObject *filed = PyDict_GetItemWithError(index, key);
    int failed = filed == NULL && PyErr_Occurred();
    if (filed == record) {
        failed = PyDict_DelItem(index, key) < 0;
    }
    Py_DECREF(index);
    return failed ? -1 : 0;
}

/* _live.forget(record). */
static void
forget_record(PyObject *record)
{
    SavedError saved = save_error();
    PyObject *popped = PyObject_CallMethod(live_resources, "pop", "OO",
                                           get_slot(record, rec_async_id), Py_None);
    Py_XDECREF(popped);
    unfile_record(record);
    finish_cleanup(saved);
}

/* A _ResourceRef (a record made by the Python code) that would end the
 * resource when its object is collected becomes a weak reference with no
 * callback: its callback would only find the resource ended, and here the
 * swap costs less than that Python call (the Python finish() leaves the
 * callback, which costs less there than a swap in Python). One made by
 * watching_ref() stays: its callback costs no Python. */
static int
let_go(PyObject *record)
{
    PyObject *ref = get_slot(record, rec_resource);
    if (ref == NULL || !Py_IS_TYPE(ref, (PyTypeObject *)resource_ref_type)) {
        return 0;
    }
    PyObject *obj;
#if PY_VERSION_HEX >= 0x030D0000
    if (PyWeakref_GetRef(ref, &obj) < 0) {
        return -1;
    }
#else
    obj = Py_XNewRef(PyWeakref_GetObject(ref));
    if (obj == Py_None) {
        Py_CLEAR(obj);
    }
#endif
    PyObject *plain = obj == NULL ? Py_NewRef(no_resource) : PyWeakref_NewRef(obj, NULL);
    Py_XDECREF(obj);
    if (plain == NULL) {
        return -1;
    }
    Py_XSETREF(SLOT(record, rec_resource), plain);
    return 0;
}

/* _live.finish(record): destroy, once. */
static int
finish_record(PyObject *record)
{
    set_slot(record, rec_context, Py_None);
    set_slot(record, rec_holder, Py_None);
    if (let_go(record) < 0) {
        return -1;
    }
    PyObject *async_id = get_slot(record, rec_async_id);
    PyObject *listed = PyDict_GetItemWithError(live_resources, async_id);
    if (listed == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(async_id);
    int failed = PyDict_DelItem(live_resources, async_id) < 0 || unfile_record(record) < 0 ||
                 dispatch(EVENT_DESTROY, &async_id, 1) < 0;
    Py_DECREF(async_id);
    return failed ? -1 : 0;
}

/* The callback of a weak reference made by watching_ref(): bound to the
 * resource's async id. Collecting an object whose resource has ended (the
 * common case: a finished task, a run handle) finds no record, and calls no
 * Python. */
static PyObject *
watched_object_collected(PyObject *async_id, PyObject *Py_UNUSED(ref))
{
    PyObject *record = PyDict_GetItemWithError(live_resources, async_id);
    if (record == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return PyObject_CallOneArg(resource_collected, async_id);
}

static PyMethodDef watched_object_collected_def = {
    "watched_object_collected", watched_object_collected, METH_O, NULL};

/* A weak reference to `obj` that ends the record's resource when `obj` is
 * collected first (what _live._ResourceRef does, at a third of the cost).
 *
 * The callback holds only an int, so it cannot be part of a reference
 * cycle: it is left out of the cyclic collector's work. (The reference
 * itself cannot be: the collector moves a weak reference with a callback
 * through its own lists when the referent dies in a collection.) */
static PyObject *
watching_ref(PyObject *obj, PyObject *record)
{
    PyObject *callback = PyCFunction_New(&watched_object_collected_def,
                                         get_slot(record, rec_async_id));
    if (callback == NULL) {
        return NULL;
    }
    PyObject_GC_UnTrack(callback);
    PyObject *ref = PyWeakref_NewRef(obj, callback);
    Py_DECREF(callback);
    return ref;
}

/* PyType_GetName(type), remembered for the last static class asked about
 * (uvloop's handles): for those it builds a new string from tp_name each
 * time; a heap class keeps its name. A static class is never freed, so its
 * address cannot come to name another one. */
static PyObject *named_type; /* borrowed */
static PyObject *named_type_name;

static PyObject *
type_name_of(PyTypeObject *type)
{
    if (type->tp_flags & Py_TPFLAGS_HEAPTYPE) {
        return PyType_GetName(type);
    }
    if ((PyObject *)type != named_type) {
        PyObject *name = PyType_GetName(type);
        if (name == NULL) {
            return NULL;
        }
        named_type = (PyObject *)type;
        Py_XSETREF(named_type_name, name);
    }
    return Py_NewRef(named_type_name);
}

/* TrackedResource.attach(obj): the weak reference, the type, init. */
static int
attach_record(PyObject *record, PyObject *obj)
{
    if (get_slot(record, rec_initialized) == Py_True) {
        return 0;
    }
    PyObject *type_name = type_name_of(Py_TYPE(obj));
    if (type_name == NULL) {
        return -1;
    }
    Py_XSETREF(SLOT(record, rec_type), type_name);
    /* A resource whose end a holder already watches (uvloop's handle, which
     * holds our callback) needs only a reference that names it. */
    PyObject *holder = get_slot(record, rec_holder);
    PyObject *ref = holder != NULL && holder != Py_None ? PyWeakref_NewRef(obj, NULL)
                                                        : watching_ref(obj, record);
    if (ref == NULL) {
        return -1; /* every object tracked here takes weak references */
    }
    Py_XSETREF(SLOT(record, rec_resource), ref);
    set_slot(record, rec_initialized, Py_True);
    if (init_events) {
        PyObject *init_args[4] = {get_slot(record, rec_async_id), type_name,
                                  get_slot(record, rec_trigger), obj};
        Py_INCREF(type_name);
        int failed = dispatch(EVENT_INIT, init_args, 4) < 0;
        Py_DECREF(type_name);
        if (failed) {
            return -1;
        }
    }
    return 0;
}

/* Whether the loop is in debug mode, or has a task factory: what get_debug()
 * and get_task_factory() return. The stdlib loop keeps them in attributes,
 * read as such (a method call costs three times as much); uvloop keeps them
 * in C, and is asked (its class is remembered, as a failed attribute
 * lookup costs an exception each time). */
static PyTypeObject *debug_asked_of, *factory_asked_of; /* loop classes with methods only */

static int
loop_state(PyObject *loop, PyObject *attribute, PyObject *method)
{
    PyTypeObject **asked_of = attribute == str_debug_attribute ? &debug_asked_of
                                                               : &factory_asked_of;
    PyObject *value = NULL;
    if (Py_TYPE(loop) != *asked_of) {
        value = PyObject_GetAttr(loop, attribute);
        if (value == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                return -1;
            }
            PyErr_Clear();
            *asked_of = Py_TYPE(loop); /* borrowed: only compared */
        }
    }
    if (value == NULL) {
        value = PyObject_CallMethodNoArgs(loop, method);
        if (value == NULL) {
            return -1;
        }
    }
    int set = attribute == str_debug_attribute ? PyObject_IsTrue(value) : value != Py_None;
    Py_DECREF(value);
    return set;
}

static int
method_is_true(PyObject *obj, PyObject *name)
{
    PyObject *result = PyObject_CallMethodNoArgs(obj, name);
    if (result == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    return truth;
}

/* _asyncio._resolved(arg): a callback scheduled with `arg` first may be a
 * tracked future scheduling its done-callbacks: then it resolved. */
static int
resolve_if_future(PyObject *arg)
{
    PyObject *record = record_of(future_records, arg);
    if (record == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(record);
    int done = method_is_true(arg, str_done);
    int failed = done < 0;
    if (done > 0) {
        PyObject *async_id = Py_NewRef(get_slot(record, rec_async_id));
        failed = dispatch(EVENT_PROMISE_RESOLVE, &async_id, 1) < 0 || finish_record(record) < 0;
        Py_DECREF(async_id);
    }
    Py_DECREF(record);
    return failed ? -1 : 0;
}

/* After a task's step: the task's after, or, when the step finished the
 * task, its promise_resolve, after and destroy (the resolution inside the
 * step that settled it, as in Node). */
static int
end_task_step(PyObject *task, PyObject *record, PyObject *async_id)
{
    int done;
    if (Py_IS_TYPE(task, (PyTypeObject *)task_type)) {
        /* A C task's done(), called as the function it is: no method lookup. */
        PyObject *result = PyObject_Vectorcall(task_done, &task, 1, NULL);
        if (result == NULL) {
            return -1;
        }
        done = result == Py_True;
        Py_DECREF(result);
    }
    else if ((done = method_is_true(task, str_done)) < 0) {
        return -1;
    }
    if (done) {
        return dispatch(EVENT_PROMISE_RESOLVE, &async_id, 1) < 0 ||
                       dispatch(EVENT_AFTER, &async_id, 1) < 0 || finish_record(record) < 0
                   ? -1
                   : 0;
    }
    return dispatch(EVENT_AFTER, &async_id, 1);
}

/* The record of the C task whose step is being scheduled to run in
 * `context` (borrowed; `context` may be NULL): its own, or create_task's,
 * filed now if it is not found from the context. NULL with no error: not
 * one of ours (the Python path decides). */
static PyObject *
step_record(PyObject *task, PyObject *context)
{
    PyObject *record = record_in_context(context);
    if (record != NULL && (record == creating_record || referent(record) == task)) {
        return record;
    }
    record = record_of(task_records, task);
    if (record != NULL || PyErr_Occurred() || creating_record == NULL) {
        return record;
    }
    if (file_record(creating_record, task_records, task) < 0) {
        return NULL;
    }
    return creating_record;
}

/* Whether call_soon(callback, *args[, context=]) takes the compiled path
 * (1) or the Python one (0); -1 on error. A future scheduling its
 * done-callbacks (the first argument) resolves here. */
static int
common_call_soon(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs < 2 || nkw > 1 ||
        (nkw == 1 && !is_keyword(PyTuple_GET_ITEM(kwnames, 0), str_context)) || creation_sites) {
        return 0;
    }
    if (nargs > 2 && resolve_if_future(args[2]) < 0) {
        return -1;
    }
    return 1;
}

/* original(loop, callback, *args[2:], context=context): a call_soon of
 * `args` (nargs positional, the loop first) with its callback and context
 * given here. */
static PyObject *
call_soon_with(PyObject *original, PyObject *const *args, Py_ssize_t nargs, PyObject *callback,
               PyObject *context)
{
    PyObject *small[8];
    PyObject **call = nargs < 8 ? small : PyMem_Malloc((nargs + 1) * sizeof(PyObject *));
    if (call == NULL) {
        return PyErr_NoMemory();
    }
    memcpy(call, args, nargs * sizeof(PyObject *));
    call[1] = callback;
    call[nargs] = context;
    PyObject *handle = PyObject_Vectorcall(original, call, nargs, context_kwnames);
    if (call != small) {
        PyMem_Free(call);
    }
    return handle;
}

/* A replacement method: a vectorcall object that is its own method
 * descriptor (Py_TPFLAGS_METHOD_DESCRIPTOR), so that a call through the
 * instance passes the instance as args[0] and makes no bound method. */
typedef struct {
    PyObject_HEAD
    PyObject *original; /* the loop's or Handle's own method */
    PyObject *slow;     /* the Python replacement, for every other case */
    vectorcallfunc vectorcall;
} Replacement;

static int
replacement_traverse(Replacement *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->slow);
    return 0;
}

static int
replacement_clear(Replacement *self)
{
    Py_CLEAR(self->original);
    Py_CLEAR(self->slow);
    return 0;
}

static void
replacement_dealloc(Replacement *self)
{
    PyObject_GC_UnTrack(self);
    replacement_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
replacement_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

/* Introspection sees the replaced method's names. */
static PyObject *
replacement_name(Replacement *self, void *attribute)
{
    return PyObject_GetAttrString(self->original, (const char *)attribute);
}

static PyGetSetDef replacement_getset[] = {
    {"__name__", (getter)replacement_name, NULL, NULL, "__name__"},
    {"__qualname__", (getter)replacement_name, NULL, NULL, "__qualname__"},
    {NULL},
};

static PyObject *
slow_path(Replacement *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
}

/* Handle._run(handle) for a handle tracked here or a C task's step. */
static PyObject *
tracked_handle_run(Replacement *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        return slow_path(self, args, nargsf, kwnames);
    }
    PyObject *handle = args[0];
    PyObject *task = NULL;
    PyObject *callback = get_slot(handle, handle_callback);
    /* Made with a context of its own, as a handle or a task's step. */
    PyObject *record = record_in_context(get_slot(handle, handle_context));
    if (record != NULL) {
        PyObject *named = referent(record);
        if (named != handle) {
            task = callback == NULL ? NULL : c_task_of_step(callback);
            if (task == NULL || named != task) {
                task = NULL;
                record = NULL;
            }
        }
    }
    /* Else filed by id (a context of the user's, or made in Python). */
    if (record == NULL) {
        record = record_of(handle_records, handle);
    }
    if (record == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        task = callback == NULL ? NULL : c_task_of_step(callback);
        record = task == NULL ? NULL : record_of(task_records, task);
        if (record == NULL) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            return slow_path(self, args, nargsf, kwnames);
        }
    }
    if (get_slot(record, rec_frame_in_context) != Py_True) {
        return slow_path(self, args, nargsf, kwnames);
    }
    Py_INCREF(record);
    Py_XINCREF(task);
    PyObject *async_id = get_slot(record, rec_async_id);
    Py_INCREF(async_id);
    PyObject *result = NULL;
    if (dispatch(EVENT_BEFORE, &async_id, 1) == 0) {
        result = PyObject_Vectorcall(self->original, args, 1, NULL);
        SavedError saved = save_error();
        int failed = 0;
        if (task == NULL) {
            failed = dispatch(EVENT_AFTER, &async_id, 1) < 0 ||
                     (get_slot(record, rec_repeats) != Py_True && finish_record(record) < 0);
        }
        else {
            failed = end_task_step(task, record, async_id) < 0;
        }
        finish_cleanup(saved);
        if (failed) {
            Py_CLEAR(result);
        }
    }
    Py_DECREF(async_id);
    Py_XDECREF(task);
    Py_DECREF(record);
    return result;
}

/* loop.call_soon(callback, *args, context=None) on the stdlib loop. */
static PyObject *
tracked_call_soon(Replacement *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    int common = common_call_soon(args, nargs, kwnames);
    if (common <= 0) {
        return common < 0 ? NULL : slow_path(self, args, nargsf, kwnames);
    }
    PyObject *loop = args[0], *callback = args[1];
    PyObject *task = c_task_of_step(callback);
    if (task != NULL) {
        /* The task's own step: Handle._run finds the task from the callback. */
        if (step_record(task, nkw == 1 ? args[nargs] : NULL) == NULL) {
            return PyErr_Occurred() ? NULL : slow_path(self, args, nargsf, kwnames);
        }
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    if (!any_hook || callback == flush_pending_destroys) {
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    int debug = loop_state(loop, str_debug_attribute, str_get_debug);
    if (debug != 0) {
        return debug < 0 ? NULL : slow_path(self, args, nargsf, kwnames);
    }
    PyObject *context = nkw == 1 ? args[nargs] : Py_None;
    PyObject *record = new_record();
    if (record == NULL) {
        return NULL;
    }
    if (context == Py_None) {
        /* A context of the handle's own, with its frame inside. */
        context = context_with_frame(record);
        if (context == NULL) {
            goto failed;
        }
        set_slot(record, rec_frame_in_context, Py_True);
    }
    else {
        Py_INCREF(context);
    }
    Py_XSETREF(SLOT(record, rec_context), context);
    PyObject *handle = call_soon_with(self->original, args, nargs, callback, context);
    if (handle == NULL) {
        goto failed;
    }
    /* One run in a context of its own is found from that context. */
    if ((get_slot(record, rec_frame_in_context) != Py_True &&
         file_record(record, handle_records, handle) < 0) ||
        attach_record(record, handle) < 0) {
        Py_DECREF(handle);
        Py_DECREF(record);
        return NULL;
    }
    Py_DECREF(record);
    return handle;
failed:
    forget_record(record);
    Py_DECREF(record);
    return NULL;
}

/* loop.create_task(coro, name=...) on both loops, for a coroutine with no
 * task factory, no context of the user's and no debug mode. */
static PyObject *
tracked_create_task(Replacement *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (!any_hook || creation_sites || nargs != 2 || !PyCoro_CheckExact(args[1]) ||
        nkw > 1 || (nkw == 1 && !is_keyword(PyTuple_GET_ITEM(kwnames, 0), str_name))) {
        return slow_path(self, args, nargsf, kwnames);
    }
    PyObject *loop = args[0];
    /* An eager task factory runs the first step inside the constructor. */
    int special = loop_state(loop, str_debug_attribute, str_get_debug);
    if (special == 0) {
        special = loop_state(loop, str_factory_attribute, str_get_task_factory);
    }
    if (special != 0) {
        return special < 0 ? NULL : slow_path(self, args, nargsf, kwnames);
    }
    PyObject *record = new_record();
    if (record == NULL) {
        return NULL;
    }
    set_slot(record, rec_resource, running_task);
    /* The task's context, made here rather than by its constructor: a copy
     * of this one with the record as the frame, so that every step reports
     * the task's ids with no frame switch. */
    PyObject *context = context_with_frame(record);
    if (context == NULL) {
        goto forget;
    }
    set_slot(record, rec_frame_in_context, Py_True);
    Py_XSETREF(SLOT(record, rec_context), context);
    PyObject *with_context[4] = {args[0], args[1], nkw == 1 ? args[2] : context, context};
    PyObject *outer = creating_record;
    creating_record = record;
    PyObject *task = PyObject_Vectorcall(self->original, with_context, 2,
                                         nkw == 1 ? name_context_kwnames : context_kwnames);
    creating_record = outer;
    if (task == NULL) {
        goto forget;
    }
    /* Its steps find the record from the task's context. */
    if (attach_record(record, task) < 0) {
        Py_DECREF(record);
        Py_DECREF(task);
        return NULL;
    }
    Py_DECREF(record);
    return task;
forget:
    if (get_slot(record, rec_initialized) != Py_True) {
        forget_record(record);
    }
    Py_DECREF(record);
    return NULL;
}

static PyObject *
replacement_new(PyTypeObject *type, PyObject *args, PyObject *kwargs, vectorcallfunc call)
{
    PyObject *original, *slow;
    if (!PyArg_ParseTuple(args, "OO", &original, &slow)) {
        return NULL;
    }
    if (record_type == NULL || task_records == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "runtime tracking used before configure_records() and configure_tracking()");
        return NULL;
    }
    Replacement *self = PyObject_GC_New(Replacement, type);
    if (self == NULL) {
        return NULL;
    }
    self->original = Py_NewRef(original);
    self->slow = Py_NewRef(slow);
    self->vectorcall = call;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *
handle_run_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return replacement_new(type, args, kwargs, (vectorcallfunc)tracked_handle_run);
}

static PyObject *
call_soon_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return replacement_new(type, args, kwargs, (vectorcallfunc)tracked_call_soon);
}

static PyObject *
create_task_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return replacement_new(type, args, kwargs, (vectorcallfunc)tracked_create_task);
}

static PyMemberDef replacement_members[] = {
    {"__wrapped__", Py_T_OBJECT_EX, offsetof(Replacement, original), Py_READONLY,
     "The method replaced."},
    {NULL},
};

#define REPLACEMENT_TYPE(c_name, py_name, doc, new_fn)                                     \
    static PyTypeObject c_name = {                                                        \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "async_hooks._speedups." py_name,        \
        .tp_basicsize = sizeof(Replacement),                                              \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | \
                    Py_TPFLAGS_METHOD_DESCRIPTOR,                                         \
        .tp_doc = doc,                                                                    \
        .tp_new = new_fn,                                                                 \
        .tp_traverse = (traverseproc)replacement_traverse,                                \
        .tp_clear = (inquiry)replacement_clear,                                           \
        .tp_dealloc = (destructor)replacement_dealloc,                                    \
        .tp_call = PyVectorcall_Call,                                                     \
        .tp_vectorcall_offset = offsetof(Replacement, vectorcall),                        \
        .tp_descr_get = replacement_get,                                                  \
        .tp_members = replacement_members,                                                \
        .tp_getset = replacement_getset,                                                  \
    }

REPLACEMENT_TYPE(HandleRunType, "TrackedHandleRun",
                 "TrackedHandleRun(original, slow)\n--\n\n"
                 "Handle._run with before/after around a tracked handle or task step.",
                 handle_run_new);
REPLACEMENT_TYPE(CallSoonType, "TrackedCallSoon",
                 "TrackedCallSoon(original, slow)\n--\n\n"
                 "The stdlib loop's call_soon, tracking the handle it makes.",
                 call_soon_new);
REPLACEMENT_TYPE(CreateTaskType, "TrackedCreateTask",
                 "TrackedCreateTask(original, slow)\n--\n\n"
                 "The stdlib loop's create_task, tracking the task it makes.",
                 create_task_new);

static Py_ssize_t
required_offset(PyObject *type, const char *name)
{
    Py_ssize_t offset = slot_offset(type, name);
    if (offset == 0) {
        PyErr_Format(PyExc_TypeError, "%R has no plain slot %s", type, name);
    }
    return offset;
}

/* loop.create_future(), on both loops. */
static PyObject *
tracked_create_future(Replacement *self, PyObject *const *args, size_t nargsf,
                      PyObject *kwnames)
{
    if (creation_sites) {
        return slow_path(self, args, nargsf, kwnames);
    }
    PyObject *future = PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    if (future == NULL || !any_hook) {
        return future;
    }
    PyObject *record = new_record();
    if (record == NULL) {
        Py_DECREF(future);
        return NULL;
    }
    PyObject *context = PyContext_CopyCurrent();
    if (context == NULL) {
        forget_record(record);
        goto failed;
    }
    Py_XSETREF(SLOT(record, rec_context), context);
    if (file_record(record, future_records, future) < 0 || attach_record(record, future) < 0) {
        goto failed;
    }
    Py_DECREF(record);
    return future;
failed:
    Py_DECREF(record);
    Py_DECREF(future);
    return NULL;
}

static PyObject *
create_future_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return replacement_new(type, args, kwargs, (vectorcallfunc)tracked_create_future);
}

REPLACEMENT_TYPE(CreateFutureType, "TrackedCreateFuture",
                 "TrackedCreateFuture(original, slow)\n--\n\n"
                 "The loop's create_future, tracking the future it makes.",
                 create_future_new);

/* -- runtime tracking on uvloop ---------------------------------------------- */

/* uvloop builds and runs its handles in C, with no Python method to wrap:
 * the callback it gets is ours. TrackedCallback runs the user's callback as
 * the resource's code; TaskStep runs a task's step between the task's
 * before and after. The Python classes of the same names in
 * _runtime/_asyncio.py are the fallback. */

typedef struct {
    PyObject_HEAD
    PyObject *callback;
    PyObject *record;
    PyObject *ready; /* held by a scheduling thread until init was emitted, or None */
    PyObject *weakreflist;
    vectorcallfunc vectorcall;
} TrackedCallback;

static PyTypeObject TrackedCallbackType;

/* run_as(record, fn, *args): fn between before and after, the record the
 * current frame. */
static PyObject *
run_as_record(PyObject *record, PyObject *fn, PyObject *const *args, size_t nargsf,
              PyObject *kwnames)
{
    PyObject *token = PyContextVar_Set(current_frame, record);
    if (token == NULL) {
        return NULL;
    }
    PyObject *async_id = Py_NewRef(get_slot(record, rec_async_id));
    PyObject *result = NULL;
    if (dispatch(EVENT_BEFORE, &async_id, 1) == 0) {
        result = PyObject_Vectorcall(fn, args, nargsf, kwnames);
        SavedError saved = save_error();
        int failed = dispatch(EVENT_AFTER, &async_id, 1) < 0;
        finish_cleanup(saved);
        if (failed) {
            Py_CLEAR(result);
        }
    }
    Py_DECREF(async_id);
    SavedError saved = save_error();
    int reset_failed = PyContextVar_Reset(current_frame, token) < 0;
    Py_DECREF(token);
    finish_cleanup(saved);
    if (reset_failed) {
        Py_CLEAR(result);
    }
    return result;
}

static PyObject *
tracked_callback_call(TrackedCallback *self, PyObject *const *args, size_t nargsf,
                      PyObject *kwnames)
{
    if (self->ready != Py_None) {
        /* Wait until the scheduling thread emitted init. */
        PyObject *ready = Py_NewRef(self->ready);
        PyObject *acquired = PyObject_CallMethod(ready, "acquire", NULL);
        PyObject *released = acquired == NULL ? NULL : PyObject_CallMethod(ready, "release", NULL);
        Py_XDECREF(acquired);
        Py_DECREF(ready);
        if (released == NULL) {
            return NULL;
        }
        Py_DECREF(released);
    }
    PyObject *record = Py_NewRef(self->record);
    PyObject *result = run_as_record(record, self->callback, args, nargsf, kwnames);
    if (get_slot(record, rec_repeats) != Py_True) {
        SavedError saved = save_error();
        int failed = finish_record(record) < 0;
        finish_cleanup(saved);
        if (failed) {
            Py_CLEAR(result);
        }
    }
    Py_DECREF(record);
    return result;
}

static PyObject *
new_tracked_callback(PyTypeObject *type, PyObject *callback, PyObject *record)
{
    TrackedCallback *self = PyObject_GC_New(TrackedCallback, type);
    if (self == NULL) {
        return NULL;
    }
    self->callback = Py_NewRef(callback);
    self->record = Py_NewRef(record);
    self->ready = Py_NewRef(Py_None);
    self->weakreflist = NULL;
    self->vectorcall = (vectorcallfunc)tracked_callback_call;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *
tracked_callback_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *callback, *record;
    static char *names[] = {"callback", "record", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:TrackedCallback", names, &callback,
                                     &record)) {
        return NULL;
    }
    if (record_type == NULL || !PyObject_TypeCheck(record, (PyTypeObject *)record_type)) {
        PyErr_SetString(PyExc_TypeError, "TrackedCallback needs a TrackedResource");
        return NULL;
    }
    return new_tracked_callback(type, callback, record);
}

static int
tracked_callback_traverse(TrackedCallback *self, visitproc visit, void *arg)
{
    Py_VISIT(self->callback);
    Py_VISIT(self->record);
    Py_VISIT(self->ready);
    return 0;
}

static int
tracked_callback_clear(TrackedCallback *self)
{
    Py_CLEAR(self->callback);
    Py_CLEAR(self->record);
    Py_CLEAR(self->ready);
    return 0;
}

static void
tracked_callback_dealloc(TrackedCallback *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    tracked_callback_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
tracked_callback_repr(TrackedCallback *self)
{
    return PyObject_Repr(self->callback);
}

static PyMemberDef tracked_callback_members[] = {
    {"callback", Py_T_OBJECT_EX, offsetof(TrackedCallback, callback), Py_READONLY,
     "The user's callback."},
    {"record", Py_T_OBJECT_EX, offsetof(TrackedCallback, record), Py_READONLY,
     "The resource's record."},
    {"_ready", Py_T_OBJECT_EX, offsetof(TrackedCallback, ready), 0,
     "A lock held until init was emitted (call_soon_threadsafe), or None."},
    {NULL},
};

static PyTypeObject TrackedCallbackType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "async_hooks._speedups.TrackedCallback",
    .tp_basicsize = sizeof(TrackedCallback),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "TrackedCallback(callback, record)\n--\n\n"
              "The callback a uvloop handle runs: the user's, between before and after.",
    .tp_new = tracked_callback_new,
    .tp_traverse = (traverseproc)tracked_callback_traverse,
    .tp_clear = (inquiry)tracked_callback_clear,
    .tp_dealloc = (destructor)tracked_callback_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(TrackedCallback, vectorcall),
    .tp_weaklistoffset = offsetof(TrackedCallback, weakreflist),
    .tp_repr = (reprfunc)tracked_callback_repr,
    .tp_members = tracked_callback_members,
};

typedef struct {
    PyObject_HEAD
    PyObject *step;
    PyObject *task;
    PyObject *record;
    vectorcallfunc vectorcall;
} TaskStep;

static PyObject *
task_step_call(TaskStep *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *record = Py_NewRef(self->record), *task = Py_NewRef(self->task);
    PyObject *token = NULL;
    if (get_slot(record, rec_frame_in_context) != Py_True) {
        token = PyContextVar_Set(current_frame, record);
        if (token == NULL) {
            Py_DECREF(record);
            Py_DECREF(task);
            return NULL;
        }
    }
    PyObject *async_id = Py_NewRef(get_slot(record, rec_async_id));
    PyObject *result = NULL;
    if (dispatch(EVENT_BEFORE, &async_id, 1) == 0) {
        result = PyObject_Vectorcall(self->step, args, nargsf, kwnames);
        SavedError saved = save_error();
        int failed = end_task_step(task, record, async_id) < 0;
        finish_cleanup(saved);
        if (failed) {
            Py_CLEAR(result);
        }
    }
    Py_DECREF(async_id);
    if (token != NULL) {
        SavedError saved = save_error();
        int reset_failed = PyContextVar_Reset(current_frame, token) < 0;
        Py_DECREF(token);
        finish_cleanup(saved);
        if (reset_failed) {
            Py_CLEAR(result);
        }
    }
    Py_DECREF(task);
    Py_DECREF(record);
    return result;
}

static PyObject *
new_task_step(PyTypeObject *type, PyObject *step, PyObject *task, PyObject *record)
{
    TaskStep *self = PyObject_GC_New(TaskStep, type);
    if (self == NULL) {
        return NULL;
    }
    self->step = Py_NewRef(step);
    self->task = Py_NewRef(task);
    self->record = Py_NewRef(record);
    self->vectorcall = (vectorcallfunc)task_step_call;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *
task_step_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *step, *task, *record;
    static char *names[] = {"step", "task", "record", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO:TaskStep", names, &step, &task,
                                     &record)) {
        return NULL;
    }
    if (record_type == NULL || !PyObject_TypeCheck(record, (PyTypeObject *)record_type)) {
        PyErr_SetString(PyExc_TypeError, "TaskStep needs a TrackedResource");
        return NULL;
    }
    return new_task_step(type, step, task, record);
}

static int
task_step_traverse(TaskStep *self, visitproc visit, void *arg)
{
    Py_VISIT(self->step);
    Py_VISIT(self->task);
    Py_VISIT(self->record);
    return 0;
}

static int
task_step_clear(TaskStep *self)
{
    Py_CLEAR(self->step);
    Py_CLEAR(self->task);
    Py_CLEAR(self->record);
    return 0;
}

static void
task_step_dealloc(TaskStep *self)
{
    PyObject_GC_UnTrack(self);
    task_step_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
task_step_repr(TaskStep *self)
{
    return PyObject_Repr(self->step);
}

static PyTypeObject TaskStepType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "async_hooks._speedups.TaskStep",
    .tp_basicsize = sizeof(TaskStep),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "TaskStep(step, task, record)\n--\n\n"
              "A task's step on uvloop, run between the task's before and after.",
    .tp_new = task_step_new,
    .tp_traverse = (traverseproc)task_step_traverse,
    .tp_clear = (inquiry)task_step_clear,
    .tp_dealloc = (destructor)task_step_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(TaskStep, vectorcall),
    .tp_repr = (reprfunc)task_step_repr,
};

/* args with args[index] replaced by `value`, into `small` when it fits. */
static PyObject **
args_with(PyObject *const *args, Py_ssize_t count, Py_ssize_t index, PyObject *value,
          PyObject **small, Py_ssize_t small_size)
{
    PyObject **copy =
        count <= small_size ? small : PyMem_Malloc(count * sizeof(PyObject *));
    if (copy == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(copy, args, count * sizeof(PyObject *));
    copy[index] = value;
    return copy;
}

/* uvloop's call_soon(callback, *args, context=None). */
static PyObject *
tracked_uvloop_call_soon(Replacement *self, PyObject *const *args, size_t nargsf,
                         PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    int common = common_call_soon(args, nargs, kwnames);
    if (common <= 0) {
        return common < 0 ? NULL : slow_path(self, args, nargsf, kwnames);
    }
    PyObject *loop = args[0], *callback = args[1];
    PyObject *small[8];
    Py_ssize_t total = nargs + nkw;
    PyObject *task = c_task_of_step(callback);
    if (task != NULL) {
        PyObject *record = step_record(task, nkw == 1 ? args[nargs] : NULL);
        if (record == NULL) {
            return PyErr_Occurred() ? NULL : slow_path(self, args, nargsf, kwnames);
        }
        if (!any_hook) {
            return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
        }
        PyObject *step = new_task_step(&TaskStepType, callback, task, record);
        if (step == NULL) {
            return NULL;
        }
        PyObject **with_step = args_with(args, total, 1, step, small, 8);
        PyObject *handle = with_step == NULL
                               ? NULL
                               : PyObject_Vectorcall(self->original, with_step, nargs, kwnames);
        if (with_step != NULL && with_step != small) {
            PyMem_Free(with_step);
        }
        Py_DECREF(step);
        return handle;
    }
    if (!any_hook || Py_IS_TYPE(callback, &TrackedCallbackType) ||
        callback == flush_pending_destroys || !PyCallable_Check(callback)) {
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    int debug = method_is_true(loop, str_get_debug);
    if (debug != 0) {
        /* uvloop checks for a coroutine function then: the Python path leaves it be. */
        return debug < 0 ? NULL : slow_path(self, args, nargsf, kwnames);
    }
    PyObject *record = new_record();
    if (record == NULL) {
        return NULL;
    }
    PyObject *context = nkw == 1 ? args[nargs] : Py_None;
    context = context == Py_None ? PyContext_CopyCurrent() : Py_NewRef(context);
    if (context == NULL) {
        goto failed;
    }
    Py_XSETREF(SLOT(record, rec_context), context);
    PyObject *tracked = new_tracked_callback(&TrackedCallbackType, callback, record);
    if (tracked == NULL) {
        goto failed;
    }
    PyObject *handle = call_soon_with(self->original, args, nargs, tracked, context);
    if (handle == NULL) {
        Py_DECREF(tracked);
        goto failed;
    }
    /* uvloop's cancel drops the callback, which the record watches. */
    PyObject *holder = watching_ref(tracked, record);
    Py_DECREF(tracked);
    if (holder == NULL) {
        Py_DECREF(handle);
        goto failed;
    }
    Py_XSETREF(SLOT(record, rec_holder), holder);
    if (attach_record(record, handle) < 0) {
        Py_DECREF(handle);
        Py_DECREF(record);
        return NULL;
    }
    Py_DECREF(record);
    return handle;
failed:
    forget_record(record);
    Py_DECREF(record);
    return NULL;
}

static PyObject *
uvloop_call_soon_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return replacement_new(type, args, kwargs, (vectorcallfunc)tracked_uvloop_call_soon);
}

REPLACEMENT_TYPE(UvloopCallSoonType, "TrackedUvloopCallSoon",
                 "TrackedUvloopCallSoon(original, slow)\n--\n\n"
                 "uvloop's call_soon, giving uvloop a tracked callback or task step.",
                 uvloop_call_soon_new);

/* -- runtime tracking of transports ------------------------------------------ */

/* A protocol method run between its transport's before and after (the
 * Python twin is _runtime/_network._ProtocolCallback): the common case, a
 * callback of an open connection other than connection_made and
 * connection_lost, in C; every other case through the Python function
 * configure_network() hands over. */

static PyObject *run_protocol_callback; /* _network._run_protocol_callback(callback, *args) */
static PyObject *str_record, *str_lost, *str_connection_made, *str_connection_lost;

typedef struct {
    PyObject_HEAD
    PyObject *tracking; /* the connection's _ConnectionTracking */
    PyObject *name;
    PyObject *method;
    int common; /* neither connection_made nor connection_lost */
    vectorcallfunc vectorcall;
} ProtocolCallback;

static PyObject *
protocol_callback_slow(ProtocolCallback *self, PyObject *const *args, size_t nargsf)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *small[8];
    PyObject **with_self =
        nargs + 1 <= 8 ? small : PyMem_Malloc((nargs + 1) * sizeof(PyObject *));
    if (with_self == NULL) {
        return PyErr_NoMemory();
    }
    with_self[0] = (PyObject *)self;
    memcpy(with_self + 1, args, nargs * sizeof(PyObject *));
    PyObject *result = PyObject_Vectorcall(run_protocol_callback, with_self, nargs + 1, NULL);
    if (with_self != small) {
        PyMem_Free(with_self);
    }
    return result;
}

static PyObject *
protocol_callback_call(ProtocolCallback *self, PyObject *const *args, size_t nargsf,
                       PyObject *kwnames)
{
    if (!self->common || kwnames != NULL || run_protocol_callback == NULL) {
        if (run_protocol_callback == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "ProtocolCallback used before configure_network()");
            return NULL;
        }
        return protocol_callback_slow(self, args, nargsf);
    }
    PyObject *record = PyObject_GetAttr(self->tracking, str_record);
    if (record == NULL) {
        return NULL;
    }
    int live = record != Py_None && Py_IS_TYPE(record, (PyTypeObject *)record_type)
                   ? PyDict_Contains(live_resources, get_slot(record, rec_async_id))
                   : 0;
    if (live <= 0) {
        Py_DECREF(record);
        return live < 0 ? NULL : protocol_callback_slow(self, args, nargsf);
    }
    PyObject *tracking = Py_NewRef(self->tracking);
    PyObject *result = run_as_record(record, self->method, args, nargsf, NULL);
    if (get_slot(record, rec_repeats) != Py_True) {
        /* Ended during this run (its transport was collected): lost once
         * the outermost of its callbacks returns. */
        SavedError saved = save_error();
        PyObject *frame = NULL;
        int failed = PyContextVar_Get(current_frame, NULL, &frame) < 0;
        if (!failed && frame != record) {
            PyObject *lost = PyObject_CallMethodNoArgs(tracking, str_lost);
            failed = lost == NULL;
            Py_XDECREF(lost);
        }
        Py_XDECREF(frame);
        finish_cleanup(saved);
        if (failed) {
            Py_CLEAR(result);
        }
    }
    Py_DECREF(tracking);
    Py_DECREF(record);
    return result;
}

static PyObject *
protocol_callback_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *tracking, *name, *method;
    static char *names[] = {"tracking", "name", "method", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OUO:ProtocolCallback", names, &tracking,
                                     &name, &method)) {
        return NULL;
    }
    if (record_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ProtocolCallback used before configure_records()");
        return NULL;
    }
    ProtocolCallback *self = PyObject_GC_New(ProtocolCallback, type);
    if (self == NULL) {
        return NULL;
    }
    self->tracking = Py_NewRef(tracking);
    self->name = Py_NewRef(name);
    self->method = Py_NewRef(method);
    self->common = !is_keyword(name, str_connection_made) && !is_keyword(name, str_connection_lost);
    self->vectorcall = (vectorcallfunc)protocol_callback_call;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static int
protocol_callback_traverse(ProtocolCallback *self, visitproc visit, void *arg)
{
    Py_VISIT(self->tracking);
    Py_VISIT(self->name);
    Py_VISIT(self->method);
    return 0;
}

static int
protocol_callback_clear(ProtocolCallback *self)
{
    Py_CLEAR(self->tracking);
    Py_CLEAR(self->name);
    Py_CLEAR(self->method);
    return 0;
}

static void
protocol_callback_dealloc(ProtocolCallback *self)
{
    PyObject_GC_UnTrack(self);
    protocol_callback_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef protocol_callback_members[] = {
    {"tracking", Py_T_OBJECT_EX, offsetof(ProtocolCallback, tracking), Py_READONLY,
     "The connection's tracking."},
    {"name", Py_T_OBJECT_EX, offsetof(ProtocolCallback, name), Py_READONLY,
     "The protocol method's name."},
    {"method", Py_T_OBJECT_EX, offsetof(ProtocolCallback, method), Py_READONLY,
     "The protocol's own method."},
    {NULL},
};

static PyTypeObject ProtocolCallbackType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "async_hooks._speedups.ProtocolCallback",
    .tp_basicsize = sizeof(ProtocolCallback),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "ProtocolCallback(tracking, name, method)\n--\n\n"
              "One protocol method, run between its transport's before and after.",
    .tp_new = protocol_callback_new,
    .tp_traverse = (traverseproc)protocol_callback_traverse,
    .tp_clear = (inquiry)protocol_callback_clear,
    .tp_dealloc = (destructor)protocol_callback_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(ProtocolCallback, vectorcall),
    .tp_members = protocol_callback_members,
};

PyDoc_STRVAR(configure_network_doc,
"configure_network(*, run_protocol_callback)\n--\n\n"
"Hand over what ProtocolCallback calls for every case but the common one\n"
"(from _runtime._network).");

static PyObject *
configure_network(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    PyObject *run;
    static char *names[] = {"run_protocol_callback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$O:configure_network", names, &run)) {
        return NULL;
    }
    Py_XSETREF(run_protocol_callback, Py_NewRef(run));
    Py_RETURN_NONE;
}

PyDoc_STRVAR(configure_records_doc,
"configure_records(*, record_type, live_resources, resource_ref_type,\n"
"                  resource_collected, no_resource)\n--\n\n"
"Hand over what the compiled tracking makes records with (from _runtime._live).");

static PyObject *
configure_records(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    PyObject *record, *live, *ref, *on_collected, *nothing;
    static char *names[] = {"record_type", "live_resources", "resource_ref_type",
                            "resource_collected", "no_resource", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$O!O!O!OO:configure_records", names,
                                     &PyType_Type, &record, &PyDict_Type, &live, &PyType_Type,
                                     &ref, &on_collected, &nothing)) {
        return NULL;
    }
    if ((rec_async_id = required_offset(record, "async_id")) == 0 ||
        (rec_trigger = required_offset(record, "trigger_async_id")) == 0 ||
        (rec_resource = required_offset(record, "_resource")) == 0 ||
        (rec_context = required_offset(record, "context")) == 0 ||
        (rec_created_at = required_offset(record, "created_at")) == 0 ||
        (rec_creation_site = required_offset(record, "creation_site")) == 0 ||
        (rec_filed_as = required_offset(record, "filed_as")) == 0 ||
        (rec_filed_in = required_offset(record, "filed_in")) == 0 ||
        (rec_frame_in_context = required_offset(record, "frame_in_context")) == 0 ||
        (rec_holder = required_offset(record, "holder")) == 0 ||
        (rec_initialized = required_offset(record, "initialized")) == 0 ||
        (rec_repeats = required_offset(record, "repeats")) == 0 ||
        (rec_type = required_offset(record, "type")) == 0) {
        return NULL;
    }
    Py_XSETREF(record_type, Py_NewRef(record));
    Py_XSETREF(live_resources, Py_NewRef(live));
    Py_XSETREF(resource_ref_type, Py_NewRef(ref));
    Py_XSETREF(resource_collected, Py_NewRef(on_collected));
    Py_XSETREF(no_resource, Py_NewRef(nothing));
    Py_RETURN_NONE;
}

PyDoc_STRVAR(configure_tracking_doc,
"configure_tracking(*, tasks, handles, futures, running_task, task_type, handle_type)\n--\n\n"
"Hand over what runtime tracking of asyncio reads and calls\n"
"(from _runtime._asyncio).");

static PyObject *
configure_tracking(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    PyObject *tasks, *handles, *futures, *running, *task, *handle;
    static char *names[] = {"tasks",        "handles",   "futures",    "running_task",
                            "task_type",    "handle_type", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$O!O!O!OO!O!:configure_tracking", names,
                                     &PyDict_Type, &tasks, &PyDict_Type, &handles, &PyDict_Type,
                                     &futures, &running, &PyType_Type, &task, &PyType_Type,
                                     &handle)) {
        return NULL;
    }
    if ((handle_callback = required_offset(handle, "_callback")) == 0 ||
        (handle_context = required_offset(handle, "_context")) == 0) {
        return NULL;
    }
    Py_XSETREF(task_records, Py_NewRef(tasks));
    Py_XSETREF(handle_records, Py_NewRef(handles));
    Py_XSETREF(future_records, Py_NewRef(futures));
    Py_XSETREF(running_task, Py_NewRef(running));
    Py_XSETREF(task_type, Py_NewRef(task));
    Py_XSETREF(task_done, PyObject_GetAttrString(task, "done"));
    if (task_done == NULL) {
        return NULL;
    }
    Py_RETURN_NONE;
}


/* -- module functions ---------------------------------------------------------- */

PyDoc_STRVAR(configure_dispatch_doc,
"configure_dispatch(*, pending_destroys, flush_pending_destroys, report_unraisable,\n"
"                   apply_deferred_changes)\n--\n\n"
"Hand over what the dispatch of events calls back into.");

static PyObject *
configure_dispatch(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    PyObject *pending, *flush, *report, *apply;
    static char *names[] = {"pending_destroys", "flush_pending_destroys", "report_unraisable",
                            "apply_deferred_changes", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOO:configure_dispatch", names, &pending,
                                     &flush, &report, &apply)) {
        return NULL;
    }
    Py_XSETREF(pending_destroys, Py_NewRef(pending));
    Py_XSETREF(flush_pending_destroys, Py_NewRef(flush));
    Py_XSETREF(report_unraisable, Py_NewRef(report));
    Py_XSETREF(apply_deferred_changes, Py_NewRef(apply));
    return Py_NewRef(Py_None);
}

PyDoc_STRVAR(configure_doc,
"configure(*, context_coroutine, foreign_coroutine_types, is_foreign_coroutine_type,\n"
"          not_callable_error, current_frame)\n--\n\n"
"Hand over the Python objects the compiled storage code calls back into.");

static PyObject *
configure(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    PyObject *coroutine, *types, *foreign, *error, *frame;
    static char *names[] = {"context_coroutine", "foreign_coroutine_types",
                            "is_foreign_coroutine_type", "not_callable_error",
                            "current_frame", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OO!OOO!:configure", names, &coroutine,
                                     &PyDict_Type, &types, &foreign, &error,
                                     &PyContextVar_Type, &frame)) {
        return NULL;
    }
    Py_XSETREF(context_coroutine, Py_NewRef(coroutine));
    Py_XSETREF(foreign_coroutine_types, Py_NewRef(types));
    Py_XSETREF(is_foreign, Py_NewRef(foreign));
    Py_XSETREF(not_callable_error, Py_NewRef(error));
    Py_XSETREF(current_frame, Py_NewRef(frame));
    Py_RETURN_NONE;
}

PyDoc_STRVAR(configure_resources_doc,
"configure_resources(*, validate_async_type, validate_trigger_async_id,\n"
"                    validate_manual_destroy, next_async_id, execution_frame,\n"
"                    destroy_when_collected)\n--\n\n"
"Hand over what AsyncResource's construction calls back into.");

static PyObject *
configure_resources(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    PyObject *async_type, *trigger, *manual, *ids, *frame, *watch;
    static char *names[] = {"validate_async_type", "validate_trigger_async_id",
                            "validate_manual_destroy", "next_async_id", "execution_frame",
                            "destroy_when_collected", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOOOO:configure_resources", names,
                                     &async_type, &trigger, &manual, &ids, &frame, &watch)) {
        return NULL;
    }
    Py_XSETREF(validate_async_type, Py_NewRef(async_type));
    Py_XSETREF(validate_trigger_async_id, Py_NewRef(trigger));
    Py_XSETREF(validate_manual_destroy, Py_NewRef(manual));
    Py_XSETREF(next_async_id, Py_NewRef(ids));
    /* A bound __next__ (itertools.count's): advanced directly from here on. */
    Py_CLEAR(async_id_counter);
    PyObject *counter = PyObject_GetAttrString(ids, "__self__");
    if (counter == NULL) {
        PyErr_Clear();
    }
    else if (PyIter_Check(counter)) {
        async_id_counter = counter;
    }
    else {
        Py_DECREF(counter);
    }
    if (!PyType_Check(frame)) {
        PyErr_SetString(PyExc_TypeError, "execution_frame must be a class");
        return NULL;
    }
    Py_XSETREF(execution_frame, Py_NewRef(frame));
    frame_async_id_offset = slot_offset(frame, "async_id");
    frame_trigger_offset = slot_offset(frame, "trigger_async_id");
    frame_resource_offset = slot_offset(frame, "_resource");
    if (frame_trigger_offset == 0 || frame_resource_offset == 0) {
        frame_async_id_offset = 0;
    }
    Py_XSETREF(destroy_when_collected, Py_NewRef(watch));
    Py_RETURN_NONE;
}

PyDoc_STRVAR(set_enabled_callbacks_doc,
"set_enabled_callbacks(*, init, before, after, destroy, promise_resolve, any_hook,\n"
"                      creation_sites)\n--\n\n"
"The enabled callbacks of each event, a tuple each, whether any hook is\n"
"enabled and whether creation sites are recorded (mirrors _hooks.enabled).");

static PyObject *
set_enabled_callbacks(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    PyObject *given[EVENTS];
    int hooks, sites;
    static char *names[] = {"init",         "before",   "after",          "destroy",
                            "promise_resolve", "any_hook", "creation_sites", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$O!O!O!O!O!pp:set_enabled_callbacks", names,
                                     &PyTuple_Type, &given[0], &PyTuple_Type, &given[1],
                                     &PyTuple_Type, &given[2], &PyTuple_Type, &given[3],
                                     &PyTuple_Type, &given[4], &hooks, &sites)) {
        return NULL;
    }
    any_hook = hooks;
    creation_sites = sites;
    for (int event = 0; event < EVENTS; event++) {
        Py_XSETREF(event_callbacks[event], Py_NewRef(given[event]));
    }
    init_events = PyTuple_GET_SIZE(given[EVENT_INIT]) > 0;
    destroy_events = PyTuple_GET_SIZE(given[EVENT_DESTROY]) > 0;
    scope_events =
        PyTuple_GET_SIZE(given[EVENT_BEFORE]) > 0 || PyTuple_GET_SIZE(given[EVENT_AFTER]) > 0;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(set_deferred_changes_waiting_doc,
"set_deferred_changes_waiting(waiting, /)\n--\n\n"
"Whether some thread has hook changes waiting for its dispatch to end\n"
"(mirrors _hooks._threads_with_deferred_changes != 0).");

static PyObject *
set_deferred_changes_waiting(PyObject *Py_UNUSED(module), PyObject *waiting)
{
    int truth = PyObject_IsTrue(waiting);
    if (truth < 0) {
        return NULL;
    }
    deferred_changes_waiting = truth;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(own_methods_doc,
"own_methods(cls, /)\n--\n\n"
"Give a subclass of StorageBase or ResourceBase its own descriptors of their methods.\n"
"\n"
"CPython specialises a call of a C method only when the instance's type is\n"
"exactly the method's own type; inherited from the C base, every call takes\n"
"the generic path (docs/benchmarks.md, \"Accelerator\"). A method that cls\n"
"or a class between it and the base overrides is left alone.");

static PyObject *
own_methods(PyObject *Py_UNUSED(module), PyObject *cls)
{
    PyMethodDef *methods;
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "own_methods() needs a class");
        return NULL;
    }
    if (PyType_IsSubtype((PyTypeObject *)cls, &StorageType)) {
        methods = storage_methods;
    }
    else if (PyType_IsSubtype((PyTypeObject *)cls, &ResourceType)) {
        methods = resource_methods;
    }
    else {
        PyErr_SetString(PyExc_TypeError,
                        "own_methods() needs a subclass of StorageBase or ResourceBase");
        return NULL;
    }
    for (PyMethodDef *def = methods; def->ml_name != NULL; def++) {
        PyObject *current = PyObject_GetAttrString(cls, def->ml_name);
        if (current == NULL) {
            return NULL;
        }
        int ours = Py_IS_TYPE(current, &PyMethodDescr_Type) &&
                   ((PyMethodDescrObject *)current)->d_method == def;
        Py_DECREF(current);
        if (!ours) {
            continue;
        }
        PyObject *descriptor = PyDescr_NewMethod((PyTypeObject *)cls, def);
        if (descriptor == NULL) {
            return NULL;
        }
        int failed = PyObject_SetAttrString(cls, def->ml_name, descriptor);
        Py_DECREF(descriptor);
        if (failed) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"own_methods", own_methods, METH_O, own_methods_doc},
    {"snapshot", snapshot, METH_NOARGS, snapshot_doc},
    {"configure_dispatch", (PyCFunction)(void (*)(void))configure_dispatch,
     METH_VARARGS | METH_KEYWORDS, configure_dispatch_doc},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {"configure_resources", (PyCFunction)(void (*)(void))configure_resources,
     METH_VARARGS | METH_KEYWORDS, configure_resources_doc},
    {"set_enabled_callbacks", (PyCFunction)(void (*)(void))set_enabled_callbacks,
     METH_VARARGS | METH_KEYWORDS, set_enabled_callbacks_doc},
    {"set_deferred_changes_waiting", set_deferred_changes_waiting, METH_O,
     set_deferred_changes_waiting_doc},
    {"dispatching", dispatching, METH_NOARGS, dispatching_doc},
    {"configure_tracking", (PyCFunction)(void (*)(void))configure_tracking,
     METH_VARARGS | METH_KEYWORDS, configure_tracking_doc},
    {"configure_network", (PyCFunction)(void (*)(void))configure_network,
     METH_VARARGS | METH_KEYWORDS, configure_network_doc},
    {"configure_records", (PyCFunction)(void (*)(void))configure_records,
     METH_VARARGS | METH_KEYWORDS, configure_records_doc},
    {"emit_init", (PyCFunction)(void (*)(void))emit_init, METH_FASTCALL, emit_init_doc},
    {"emit_before", emit_before, METH_O, emit_before_doc},
    {"emit_after", emit_after, METH_O, emit_after_doc},
    {"emit_destroy", emit_destroy, METH_O, emit_destroy_doc},
    {"emit_promise_resolve", emit_promise_resolve, METH_O, emit_promise_resolve_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "async_hooks._speedups",
    .m_doc = "The compiled storage hot path of async_hooks (docs/accelerator.md).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyTypeObject *types[] = {&StorageType,  &ResourceType,  &BoundType,     &SnapshotType,
                             &HandleRunType, &CallSoonType, &CreateTaskType,
                             &UvloopCallSoonType, &TrackedCallbackType, &TaskStepType,
                             &CreateFutureType, &ProtocolCallbackType};
    const char *names[] = {"StorageBase",      "ResourceBase",    "BoundFunction",
                           "SnapshotRunner",   "TrackedHandleRun", "TrackedCallSoon",
                           "TrackedCreateTask", "TrackedUvloopCallSoon", "TrackedCallback",
                           "TaskStep",         "TrackedCreateFuture", "ProtocolCallback"};
    str_fn = PyUnicode_InternFromString("fn");
    str_async_id = PyUnicode_InternFromString("async_id");
    if (str_fn == NULL || str_async_id == NULL) {
        return NULL;
    }
    str_done = PyUnicode_InternFromString("done");
    str_record = PyUnicode_InternFromString("record");
    str_lost = PyUnicode_InternFromString("lost");
    str_connection_made = PyUnicode_InternFromString("connection_made");
    str_connection_lost = PyUnicode_InternFromString("connection_lost");
    if (str_record == NULL || str_lost == NULL || str_connection_made == NULL ||
        str_connection_lost == NULL) {
        return NULL;
    }
    str_debug_attribute = PyUnicode_InternFromString("_debug");
    str_get_debug = PyUnicode_InternFromString("get_debug");
    str_get_task_factory = PyUnicode_InternFromString("get_task_factory");
    str_factory_attribute = PyUnicode_InternFromString("_task_factory");
    str_self = PyUnicode_InternFromString("__self__");
    str_name = PyUnicode_InternFromString("name");
    str_context = PyUnicode_InternFromString("context");
    empty_str = PyUnicode_InternFromString("");
    zero = PyLong_FromLong(0);
    if (str_done == NULL || str_debug_attribute == NULL || str_factory_attribute == NULL ||
        str_self == NULL || str_name == NULL || str_context == NULL || empty_str == NULL ||
        str_get_debug == NULL || str_get_task_factory == NULL ||
        zero == NULL || (context_kwnames = PyTuple_Pack(1, str_context)) == NULL ||
        (name_context_kwnames = PyTuple_Pack(2, str_name, str_context)) == NULL) {
        return NULL;
    }
    for (int event = 0; event < EVENTS; event++) {
        event_callbacks[event] = PyTuple_New(0);
        event_messages[event] =
            PyUnicode_FromFormat("Exception ignored in async_hooks %s hook", event_names[event]);
        if (event_callbacks[event] == NULL || event_messages[event] == NULL) {
            return NULL;
        }
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (PyType_Ready(types[i]) < 0 ||
            PyModule_AddObjectRef(module, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(module);
            return NULL;
        }
    }
    if (PyModule_AddStringConstant(module, "BUILD_STAMP", ASYNC_HOOKS_BUILD_STAMP) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
