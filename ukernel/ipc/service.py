"""The Service base: an inbox loop that handles one message at a time.

A service is a MINIX-style server: a table of handlers (``OPS``, built from
the methods marked ``@op``), its own state, and nothing shared. Because only
one message is handled at a time, the state needs no locks. A handler that
must wait (a pipe read on an empty pipe, a futex wait) calls ``req.defer()``
and answers later with ``self.reply`` (MINIX's SUSPEND), so the loop goes on
serving others.

Dispatch checks a message against the op before the handler runs: the
argument names (every required one, no unknown one) and each argument's type,
from the handler's annotations (``pid: int``, ``set_tid: list[int] | None``).
The annotations are read once per class, when it is created, with
``typing.get_type_hints``; an annotation dispatch cannot check (a ``tuple``:
msgpack has no tuples; a name that does not resolve) refuses the class then,
so a student learns it at boot, not mid-run. A mismatch answers EINVAL naming the service,
op, argument and the type wanted. Kinds: int (within msgpack's 64 bits), str,
bytes, bool, float (an int is a float too, as typing says), list and dict (with
their items checked when the annotation names them: ``list[int]``), None,
unions of those, and ``Any`` or no annotation (no check). A bool is not an int
here: msgpack keeps them apart, and ``kill(pid=True)`` is a caller's mistake.

Once the arguments are right, a handler's exception other than OSError is a
bug in the service, not in the caller: the caller gets EIO, and the fault is
recorded with its traceback and the file:line where it happened, for
check_invariants to report. A handler that wants the caller to see an errno
raises it (``abi.kernel_error(abi.EINVAL, ...)``); a KeyError is never turned
into EINVAL, because that would make a buggy service look like a bad caller.
A result msgpack cannot carry (a set, an int past 64 bits) is a fault too.
"""

from __future__ import annotations

import inspect
import itertools
import linecache
import sysconfig
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import trio

from .. import abi
from ..reprs import bounded
from . import protocol
from .canonical import OPAQUE_MODULES, canonical, fields_of
from .params import INT_MAX, INT_MIN, Params

ReplyFn = Callable[[bytes], Awaitable[None]]


class Fatal:
    """What killed a handler run on the fast path (a KeyboardInterrupt: no Exception, so
    not a fault it answers EIO for), sent to the service's loop to die of there, as it
    would have had the message come through the inbox."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc


#: What an inbox carries: an encoded message, or one a node decoded already to route it.
Delivery = tuple[bytes | list | Fatal, ReplyFn | None]

#: What a deferring handler returns: "I will answer later".
DEFERRED = object()


def op(fn: Callable) -> Callable:
    """Mark a method as a message handler; its name is the op's name."""
    fn.__ukernel_op__ = True
    return fn


#: What an op may change, for state_digest's caches: attribute names, or a function of
#: (service, args) answering them or None (anything), asked before the handler runs.
Changes = tuple[str, ...] | Callable[[Any, dict], "tuple[str, ...] | None"]


#: What an op touches, for explore's reduction: a function of (service, args) answering
#: ``[kind, id, mode]`` triples (mode "r", "w", or "c": a count's change that leaves it above
#: zero) or None (the whole service); asked before the handler when the request's meta has
#: ``fp``, answered in the reply's meta (docs/explore.md).
Touches = Callable[[Any, dict], "list[tuple[str, Any, str]] | None"]


def touches(fn: Touches) -> Callable[[Callable], Callable]:
    """Declare which of the service's objects an op touches; one declaring nothing is all of it."""
    return lambda handler: setattr(handler, "__ukernel_touches__", fn) or handler


def changes(parts: Changes) -> Callable[[Callable], Callable]:
    """Declare what an op may change (``()``: nothing, a query): state_digest keeps the cached
    digest of every part it does not name. An op declaring nothing may change anything."""

    def mark(fn: Callable) -> Callable:
        fn.__ukernel_changes__ = parts
        return fn

    return mark


class Answer(Exception):  # noqa: N818 (not an error: a reply given from deep in a handler)
    """Raised from deep inside a handler to answer at once with ``result`` (the vfs's
    path walk answers ``{"proc": rel}`` so when a path enters /proc)."""

    def __init__(self, result: Any):
        super().__init__(result)
        self.result = result


class Deferred:
    """A reply owed to a caller: keep it, answer it with Service.reply later."""

    __slots__ = ("msgid", "reply_fn", "op")

    def __init__(self, msgid: int, reply_fn: ReplyFn | None, op: str = ""):
        self.msgid, self.reply_fn, self.op = msgid, reply_fn, op  # (not the meta: a sleeper's reply needs none)


class Call:
    """The request being handled: its msgid, meta, and the way to defer it; its op, args
    and when its handler started, for a report on a handler that does not answer."""

    __slots__ = ("msgid", "meta", "_reply_fn", "deferred", "op", "args", "started", "coro", "touched")

    def __init__(self, msgid: int | None, meta: dict, reply_fn: ReplyFn | None, op: str = "", args: Any = None):
        self.msgid, self.meta, self._reply_fn = msgid, meta, reply_fn
        self.deferred: Deferred | None = None
        self.op, self.args, self.started = op, args, 0.0
        self.coro: Any = None  # the handler's coroutine while it runs: its stack, wherever it runs
        self.touched: list | None = None  # what the op touches (``touches``), when explore asked

    def defer(self) -> Deferred:
        self.deferred = Deferred(self.msgid or 0, self._reply_fn, self.op)
        return self.deferred


class HandlerStopped(BaseException):  # noqa: N818 (not an error of the handler's own)
    """Raised by a host signal handler inside a handler that spins (it did not answer within
    service_timeout, or Ctrl-C ended the run): a BaseException, so the handler's own
    ``except Exception`` cannot swallow it. ``kind`` is "timeout" or "interrupted"."""

    def __init__(self, kind: str, why: str, stack: list[traceback.FrameSummary]):
        super().__init__(why)
        self.kind, self.why, self.stack = kind, why, stack  # stack: where it ran, outermost first


class Service:
    """Base of the six services and of any a student writes.

    Subclasses set ``name``, ``calls`` (the services their handlers may call,
    DESIGN.md §3) and define ``@op`` methods ``async def x(self, req, **args)``.
    Every service answers ``accounting``: the counts check_invariants compares.
    """

    name: ClassVar[str] = "service"
    calls: ClassVar[frozenset[str]] = frozenset()
    takes: ClassVar[dict[str, str]] = {}  # Config field -> keyword of __init__ (services.build)
    #: True only if no handler ever waits (no calls out, no events; a deferred reply
    #: is fine): a node may then run a peer's request in the connection's reader
    #: (ipc/local.py HostedInbox), saving a task switch per message.
    never_waits: ClassVar[bool] = False
    OPS: ClassVar[dict[str, Callable]] = {}
    PARAMS: ClassVar[dict[str, Params]] = {}
    #: Each op's ``@changes`` declaration (None: it may change anything), from OPS.
    CHANGES: ClassVar[dict[str, Changes | None]] = {}
    #: Each op's ``@touches`` declaration, for the ops that have one (from OPS).
    TOUCHES: ClassVar[dict[str, Touches]] = {}
    #: Attributes sharing no object with the rest of the state: state_digest digests and caches
    #: each apart, so an op that changes only them (vfs's console write) keeps the rest's digest.
    DIGEST_APART: ClassVar[frozenset[str]] = frozenset()
    #: The router may run this service's handlers on its one-coroutine fast path (Router.call):
    #: true unless the class changes how a message is handled (it overrides one of FLAT_STEPS).
    flat: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """OPS and PARAMS, base classes first. A method that overrides an op is that op
        (marked ``@op`` or not: dispatch must call the override, not the base's), and an
        override taking ``**args`` is checked against the parameters of the op it overrides."""
        super().__init_subclass__(**kwargs)
        ops: dict[str, Callable] = {}
        params: dict[str, Params] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if getattr(value, "__ukernel_op__", False) or (key in ops and callable(value)):
                    ops[key] = value
                    if key not in params or not _takes_any_keyword(value):
                        params[key] = Params.of(cls, key, value)
                elif key in ops:  # overridden by something that is no method: no longer an op
                    del ops[key], params[key]
        cls.OPS, cls.PARAMS = ops, params
        cls.CHANGES = {k: getattr(fn, "__ukernel_changes__", () if k in _QUERIES else None) for k, fn in ops.items()}
        cls.TOUCHES = {k: fn.__ukernel_touches__ for k, fn in ops.items() if hasattr(fn, "__ukernel_touches__")}
        cls.flat = all(getattr(cls, step) is getattr(Service, step) for step in FLAT_STEPS)

    def __init__(self) -> None:
        self.router: Any = None  # set by Router.attach: the only way out
        self.faults: list[str] = []  # handler crashes: a bug, reported by check_invariants
        self._current: Call | None = None  # the request whose handler runs (or waits) now
        self.task: Any = None  # the trio task running a handler now (the loop's, or a caller's: the fast path)
        self.busy = False  # a handler runs (or waits): a new message queues, one at a time (DESIGN §3)
        self.queued = 0  # messages in the inbox not yet handled: the fast path must not overtake them
        self._loop_task: Any = None  # the inbox loop's trio task (serve)
        self._idle = trio.lowlevel.ParkingLot()  # the loop waits here while a caller runs a handler
        self._handles = itertools.count(1)
        self._digests: dict[str, int] = {}  # state_digest's part ("" the rest) -> its digest, until an op may change it

    @property
    def handling(self) -> Call | None:
        """The request whose handler runs (or awaits) now, if any."""
        return self._current

    def handler_stack(self) -> list[traceback.FrameSummary]:
        """Where the handler running now is, outermost first: from its own coroutine, as it
        may run in a caller's task (the fast path), whose chain the user side cuts."""
        cur = self._current
        return coroutine_stack(cur.coro if cur is not None else None)

    def new_handle(self, table: dict, obj: object) -> int:
        """Store ``obj`` under a fresh handle: what the service gives out instead of the object."""
        handle = next(self._handles)
        table[handle] = obj
        return handle

    def next_handle(self) -> int:
        """The handle new_handle gives next (RS reads it from a dead instance)."""
        self._handles = itertools.count(first := next(self._handles))
        return first

    def handles_from(self, first: int) -> None:
        """Number handles from ``first``: RS's fresh instance, past the dead one's (reincarnation.py)."""
        self._handles = itertools.count(first)

    # --- calling out --------------------------------------------------------
    async def call(self, dst: str, op_name: str, **args: Any) -> Any:
        """Ask another service (only one this service declared in ``calls``)."""
        cur = self._current
        meta = dict(cur.meta) if cur else {}
        if cur is not None:
            meta["cause"] = cur.msgid
        return await self.router.call(self.name, dst, op_name, args, meta)

    # --- reporting into the trace ---------------------------------------------
    @property
    def tracing(self) -> bool:
        """Whether the run keeps a trace: build an event's fields only then, so tracing
        off costs this one test."""
        router = self.router
        return router is not None and router.tracer.on

    def trace_event(self, type_: str, op_name: str, /, **fields: Any) -> None:
        """Report an event of this service's own (``fault``: mm's page faults) into the
        trace, through the router; its ``cause`` is the message being handled, its
        pid/tid and syscall that message's meta."""
        if not self.tracing:
            return
        cur = self._current
        meta = cur.meta if cur is not None else {}
        cause = cur.msgid if cur is not None and cur.msgid is not None else meta.get("cause")
        self.router.service_event(self.name, type_, op_name, cause, meta, fields)

    async def reply(self, deferred: Deferred, result: Any = None) -> None:
        """Answer a deferred request (a result msgpack cannot carry: EIO and a fault, as
        for an answer given at once, so the waiting caller is not left without one)."""
        if deferred.reply_fn is not None:
            await deferred.reply_fn(self._encode_reply(deferred.msgid, deferred.op, None, result))

    async def reply_error(self, deferred: Deferred, err: int, message: str = "") -> None:
        if deferred.reply_fn is not None:
            error = protocol.error_map(err, message or abi.strerror(err))
            await deferred.reply_fn(protocol.encode_response(deferred.msgid, error, None))

    # --- the inbox loop -----------------------------------------------------
    async def serve(self, inbox: trio.MemoryReceiveChannel) -> None:
        """One message at a time, in arrival order, whichever way it came: a message
        that queued behind a handler run in its caller's task (Router.call's fast path) waits for it."""
        self.task = self._loop_task = trio.lowlevel.current_task()
        async for item, reply_fn in inbox:
            if type(item) is Fatal:
                raise item.exc
            while self.busy:
                await self._idle.park()
            self.busy = True
            try:
                await self.handle(item, reply_fn)
            finally:
                self.busy = False
                self.queued -= 1

    async def handle(self, item: bytes | list, reply_fn: ReplyFn | None) -> None:
        """One message from an inbox: encoded, or decoded by a node (handle_request)."""
        if isinstance(item, bytes):
            await self.handle_frame(item, reply_fn)
        else:
            await self.handle_request(item, reply_fn)

    async def handle_frame(self, frame: bytes, reply_fn: ReplyFn | None) -> None:
        """Decode, dispatch, answer: never lets a bad message kill the loop."""
        try:
            obj = protocol.unpack(frame)
        except protocol.ProtocolError:
            return  # not msgpack: not even a msgid to answer
        await self.handle_request(obj, reply_fn)

    async def handle_request(self, obj: Any, reply_fn: ReplyFn | None) -> None:
        """handle_frame after the bytes are decoded; a node calls it directly: it decodes
        what peers send to route it, and encoding it again to be decoded here costs."""
        try:
            msg = protocol.decode_obj(obj)
        except protocol.ProtocolError as exc:
            msgid = protocol.request_msgid_of(obj)
            if msgid is not None and reply_fn is not None:
                error = protocol.error_map(abi.EBADMSG, f"{self.name}: malformed message: {exc}")
                await reply_fn(protocol.encode_response(msgid, error, None))
            return
        if isinstance(msg, protocol.Response):
            return  # a service receives no responses on its inbox
        msgid = msg.msgid if isinstance(msg, protocol.Request) else None
        req = Call(msgid, msg.meta, reply_fn if msgid is not None else None, msg.op, msg.args)
        error, result = await self._dispatch(req, msg.op, msg.args)
        if req.deferred is not None or msgid is None or reply_fn is None:
            return
        await reply_fn(self._encode_reply(msgid, msg.op, error, result, req.touched))

    def _encode_reply(
        self, msgid: int, op_name: str, error: dict | None, result: Any, touched: list | None = None
    ) -> bytes:
        """The response frame (with ``touched``, the reply meta explore asked for). A result
        msgpack cannot carry (a set, an int past 64 bits) is the handler's bug too: EIO and a
        fault, not a dead inbox loop."""
        try:
            if touched is not None:
                return protocol.encode_response(msgid, error, result, {"footprint": touched})
            return protocol.encode_response(msgid, error, result)
        except (TypeError, ValueError, OverflowError) as exc:
            message = f"{self.name}.{op_name} answered what msgpack cannot carry: {bounded(exc)}: {bounded(result)}"
            self.faults.append(message)
            handler = self.OPS.get(op_name)
            site = definition_site(handler) if handler is not None else "?"
            error = protocol.error_map(abi.EIO, message) | {"fault": {"kind": "reply", "site": site, "frames": []}}
            return protocol.encode_response(msgid, error, None)

    async def _dispatch(self, req: Call, op_name: str, args: dict) -> tuple[dict | None, Any]:
        error = self.start(req, op_name, args)
        if error is not None:
            return error, None
        try:
            result = await req.coro
        except BaseException as exc:
            return self.outcome(op_name, exc)
        finally:
            self._current = None
        return None, None if result is DEFERRED else result

    def start(self, req: Call, op_name: str, args: dict) -> dict | None:
        """Dispatch up to the await: the error reply for an unknown op or bad arguments, else
        None with ``req.coro`` the handler's coroutine, ``req`` the request handled now.
        (Split from the await so the router's one-coroutine fast path shares it, Router.call.)"""
        handler = self.OPS.get(op_name)
        if handler is None:
            return protocol.error_map(abi.ENOSYS, f"{self.name} has no op {op_name!r}")
        params = self.PARAMS[op_name]
        coro = None if params.stub is None else params.stub(handler, self, req, args)
        if coro is None:  # not the exact required arguments, or one of a wrong kind
            problem = params.problem(args)
            if problem is not None:
                return protocol.error_map(abi.EINVAL, f"{self.name}.{op_name}: {problem}")
            coro = handler(self, req, **args)
        if self._digests:  # (none cached until someone asks state_digest: ukernel explore)
            self._drop_digests(op_name, args)
        if "fp" in req.meta:  # explore asks what the op touches (as the state is before it)
            req.touched = self.touched(op_name, args)
        self._current, req.started = req, time.monotonic()
        req.coro = coro
        return None

    def touched(self, op_name: str, args: dict) -> list | None:
        """What the op's ``@touches`` answers for ``args``; None (the whole service) with no
        declaration or one that failed (a bad handle: the op will fail too)."""
        try:
            return self.TOUCHES[op_name](self, args)
        except Exception:  # noqa: BLE001 (the sound answer to any doubt is the whole service)
            return None

    def _drop_digests(self, op_name: str, args: dict) -> None:
        """Forget the cached digest of every part the op may change: state_digest walks them again."""
        declared = self.CHANGES.get(op_name)
        if callable(declared):
            declared = declared(self, args)
        if declared is None:
            self._digests.clear()
            return
        for name in declared:
            self._digests.pop(name if name in self.DIGEST_APART else "", None)

    def digest_part(self, part: str) -> int:
        """A fresh digest of one part of the state: an attribute of DIGEST_APART, or ""
        for all the others walked together (one memo: objects they share are links)."""
        if part:
            return hash(canonical(getattr(self, part, None)))
        apart = _PLUMBING | self.DIGEST_APART
        return hash(canonical({k: v for k, v in vars(self).items() if k not in apart}))

    def outcome(self, op_name: str, exc: BaseException) -> tuple[dict | None, Any]:
        """(error, result) of a handler that raised ``exc``; what no reply answers (a
        cancellation, a KeyboardInterrupt) is raised again."""
        if isinstance(exc, Answer):
            return None, exc.result
        if isinstance(exc, OSError):
            return protocol.error_from_exception(exc), None
        if isinstance(exc, trio.Cancelled):
            raise exc
        if isinstance(exc, Exception):  # a bug in the handler: answer EIO, keep serving, report it
            return self._fault(op_name, self.OPS[op_name], exc), None
        if isinstance(exc, HandlerStopped):  # it spun past service_timeout, or Ctrl-C: stopped where it ran
            return self._fault(op_name, self.OPS[op_name], exc, exc.kind), None
        raise exc

    def _fault(self, op_name: str, handler: Callable, exc: BaseException, kind: str = "crash") -> dict:
        """Record a handler's crash (check_invariants reports it) and make the EIO reply; the
        reply's ``fault`` carries the site and the frames, so the kernel's report can show them."""
        stack = exc.stack if isinstance(exc, HandlerStopped) else traceback.extract_tb(exc.__traceback__)
        frames = own_frames(stack)
        site = site_of(frames)
        if kind == "crash":
            message = f"{self.name}.{op_name} crashed at {site}: {bounded(exc)}"
        else:
            message = f"{self.name}.{op_name} {exc}: stopped at {site}"
        self.faults.append(f"{message}\n{''.join(traceback.format_exception(exc))}")
        fault = {"kind": kind, "site": site, "frames": format_frames(frames)}
        return protocol.error_map(abi.EIO, message) | {"fault": fault}

    # --- every service answers these ----------------------------------------
    @op
    async def accounting(self, req: Call) -> dict:
        """Counts of what this service owns; equal before and after a clean run."""
        return {"faults": len(self.faults)}

    @op
    async def ping(self, req: Call) -> str:
        return self.name

    @op
    async def handles_past(self, req: Call, first: int) -> dict:
        """RS's first request to a fresh remote instance: number handles from ``first`` on, past
        every handle the lost one gave, so a stale one never names a fresh object (never back);
        ``boot`` is where its construction had got to (below it: what it made again, / 's mount ns)."""
        boot = self.next_handle()
        self.handles_from(max(first, boot))
        return {"boot": boot}

    @op
    async def state_digest(self, req: Call, fields: bool = False) -> int | dict:
        """A number that is the same exactly when this service's state is (``ukernel explore``
        merges the runs that reach one state): a canonical walk of its attributes, less the
        plumbing every service has. A service whose state lives elsewhere overrides it.
        With ``fields``, the attributes digested, as plain values a person reads (explore --graph)."""
        if fields:
            return readable({k: v for k, v in vars(self).items() if k not in _PLUMBING})
        digests = self._digests
        for part in ("", *sorted(self.DIGEST_APART)):
            if part not in digests:
                digests[part] = self.digest_part(part)
        return hash(tuple(digests[part] for part in ("", *sorted(self.DIGEST_APART))))


#: What Router.call's fast path does in one coroutine: a class overriding any of them has
#: its own ``handle`` run there instead, as it asks.
FLAT_STEPS = (
    "handle",
    "handle_frame",
    "handle_request",
    "_dispatch",
    "start",
    "outcome",
    "_encode_reply",
)

_PLUMBING = frozenset(
    {"router", "faults", "_current", "task", "_handles", "rng", "_digests", "busy", "queued", "_loop_task", "_idle"}
)
_QUERIES = frozenset({"state_digest", "accounting", "ping", "runqueue", "now"})  # ops that change no state


READABLE_ITEMS = 16  # items of one list or map that ``readable`` shows; the rest are counted
READABLE_BYTES = 32  # bytes of a longer bytes value shown (a page frame is 4096)
READABLE_DEPTH = 8  # levels of nesting shown


def readable(value: Any) -> Any:
    """``value`` as msgpack's plain types for a person to read (``state_digest`` with
    ``fields``): maps with str keys, lists, numbers, str; an object is a map with its
    ``__class__``, and where it is met again (a dentry every fs_struct points at, a cycle)
    it says where it was shown; long bytes, long containers and deep nesting are cut."""
    return _Readable().walk(value, "", 0)


class _Readable:
    """One walk of ``readable``: where each object was first shown."""

    def __init__(self) -> None:
        self.shown: dict[int, str] = {}

    def walk(self, value: Any, where: str, depth: int) -> Any:
        if value is None or isinstance(value, bool | float | str):
            return value
        if isinstance(value, int):
            return value if INT_MIN <= value <= INT_MAX else str(value)
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            return repr(data) if len(data) <= READABLE_BYTES else f"{data[:READABLE_BYTES]!r}... ({len(data)} bytes)"
        fields = fields_of(value)
        container = isinstance(value, dict | set | frozenset | list | tuple) or type(value).__name__ == "deque"
        name = type(value).__qualname__
        if not container and (fields is None or callable(value) or type(value).__module__.startswith(OPAQUE_MODULES)):
            return f"<{name}>"
        if id(value) in self.shown:
            return f"<{name}: as at {self.shown[id(value)] or 'the top'}>"
        self.shown[id(value)] = where
        if depth >= READABLE_DEPTH:
            return f"<{name}: deeper than {READABLE_DEPTH}>"
        if not container:
            return {"__class__": name} | self.walk_map(fields, where, depth)
        if isinstance(value, dict):
            return self.walk_map(value, where, depth)
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else list(value)
        shown = [self.walk(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(items[:READABLE_ITEMS])]
        return shown + ([f"... {len(items) - READABLE_ITEMS} more"] if len(items) > READABLE_ITEMS else [])

    def walk_map(self, value: dict, where: str, depth: int) -> dict:
        keys = sorted(value, key=_key_order)
        out = {}
        for i, k in enumerate(keys[:READABLE_ITEMS]):
            key = k if isinstance(k, str) else repr(k) if _is_scalar(k) else f"<{type(k).__qualname__}> #{i}"
            out[key] = self.walk(value[k], f"{where}.{key}" if where else key, depth + 1)
        if len(keys) > READABLE_ITEMS:
            out["..."] = f"{len(keys) - READABLE_ITEMS} more"
        return out


def _is_scalar(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(map(_is_scalar, value))
    return value is None or isinstance(value, int | float | str | bytes)


def _key_order(key: Any) -> tuple:
    """Keys of one map in an order that is the same in every run (not an object's address)."""
    if isinstance(key, int | str):
        return (type(key).__name__, key)
    return (type(key).__name__, repr(canonical(key)))


def _takes_any_keyword(fn: Callable) -> bool:
    """True for ``async def alloc_pid(self, req, **args)``: a wrapper of the op it overrides."""
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


#: Python's own library and installed packages: not where a service's bug is.
LIBRARY_DIRS = tuple({sysconfig.get_path(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")})
#: The directory holding the ukernel, services and userland packages: sites are shown from it.
CHECKOUT = Path(__file__).resolve().parents[2]
#: ukernel's own code and the built-in services: a site in them comes after a student's frame.
BUILT_IN = (str(CHECKOUT / "ukernel") + "/", str(CHECKOUT / "services") + "/")
#: The message machinery between a sender and a handler: never where a bug is shown.
MACHINERY = str(Path(__file__).resolve().parent) + "/"
MAX_FRAMES = 12  # frames a fault carries in its reply, innermost kept


def own_frames(frames: traceback.StackSummary | list[traceback.FrameSummary]) -> list[traceback.FrameSummary]:
    """The frames of a handler's traceback or stack in the project's code and the student's,
    outermost first: what ran before dispatch called the handler (trio's loop, the inbox),
    Python's library, installed packages and ipc's own frames are left out."""
    frames = list(frames)
    start = next((i + 1 for i, f in enumerate(frames) if f.name == "_dispatch" and f.filename == __file__), 0)
    ours = [
        f for f in frames[start:] if not f.filename.startswith(LIBRARY_DIRS) and not f.filename.startswith(MACHINERY)
    ]
    return ours or frames


def shown(filename: str) -> str:
    """A file as a report names it: from the checkout when inside it, else as it was given."""
    path = Path(filename)
    return str(path.relative_to(CHECKOUT)) if path.is_relative_to(CHECKOUT) else filename


def site_of(frames: list[traceback.FrameSummary]) -> str:
    """file:line a student looks at first: the innermost frame of their own code (outside
    ukernel and the built-in services) if any, else the innermost frame of the project's."""
    if not frames:
        return "?"
    theirs = [f for f in frames if not f.filename.startswith(BUILT_IN)]
    frame = (theirs or frames)[-1]
    return f"{shown(frame.filename)}:{frame.lineno}"


def format_frames(frames: list[traceback.FrameSummary]) -> list[str]:
    """``file:line in function: source line``, outermost first, the innermost MAX_FRAMES kept."""
    return [f"{shown(f.filename)}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in frames[-MAX_FRAMES:]]


def fault_site(exc: BaseException) -> str:
    """file:line of an exception's traceback a student looks at first (site_of)."""
    return site_of(own_frames(traceback.extract_tb(exc.__traceback__)))


def definition_site(fn: Callable) -> str:
    """file:line of a function's ``def`` (past its decorators): the site of a wrong reply,
    which has no traceback."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        return "?"
    line = code.co_firstlineno
    while linecache.getline(code.co_filename, line).lstrip().startswith("@"):
        line += 1
    return f"{shown(code.co_filename)}:{line}"


def coroutine_stack(coro: Any) -> list[traceback.FrameSummary]:
    """The Python stack of a coroutine waiting in an await, outermost first (its chain:
    what a handler that never answers is doing now)."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(traceback.FrameSummary(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


def get(table: dict, handle: Any, what: str) -> Any:
    """Look up a handle this service gave out; EINVAL names a bad one. (Dispatch has
    checked its type already: an op declares ``handle: int``.)"""
    try:
        return table[handle]
    except KeyError:
        raise abi.kernel_error(abi.EINVAL, f"no {what} with handle {handle!r}") from None
