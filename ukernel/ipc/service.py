"""The Service base: an inbox loop that handles one message at a time.

A service is a MINIX-style server: a table of handlers (``OPS``, built from
the methods marked ``@op``), its own state, and nothing shared. Because only
one message is handled at a time, the state needs no locks. A handler that
must wait (a pipe read on an empty pipe, a futex wait) calls ``req.defer()``
and answers later with ``self.reply`` (MINIX's SUSPEND), so the loop goes on
serving others.
"""

from __future__ import annotations

import inspect
import itertools
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import trio

from .. import abi
from . import protocol

ReplyFn = Callable[[bytes], Awaitable[None]]
#: What an inbox carries: an encoded message, or one a node decoded already to route it.
Delivery = tuple[bytes | list, ReplyFn | None]

#: What a deferring handler returns: "I will answer later".
DEFERRED = object()


def op(fn: Callable) -> Callable:
    """Mark a method as a message handler; its name is the op's name."""
    fn.__ukernel_op__ = True
    return fn


class Answer(Exception):  # noqa: N818 (not an error: a reply given from deep in a handler)
    """Raised from deep inside a handler to answer at once with ``result`` (the vfs's
    path walk answers ``{"proc": rel}`` so when a path enters /proc)."""

    def __init__(self, result: Any):
        super().__init__(result)
        self.result = result


class Deferred:
    """A reply owed to a caller: keep it, answer it with Service.reply later."""

    __slots__ = ("msgid", "reply_fn", "meta")

    def __init__(self, msgid: int, reply_fn: ReplyFn | None, meta: dict):
        self.msgid, self.reply_fn, self.meta = msgid, reply_fn, meta


class Call:
    """The request being handled: its msgid, meta, and the way to defer it."""

    __slots__ = ("msgid", "meta", "_reply_fn", "deferred")

    def __init__(self, msgid: int | None, meta: dict, reply_fn: ReplyFn | None):
        self.msgid, self.meta, self._reply_fn = msgid, meta, reply_fn
        self.deferred: Deferred | None = None

    def defer(self) -> Deferred:
        self.deferred = Deferred(self.msgid or 0, self._reply_fn, self.meta)
        return self.deferred


class Service:
    """Base of the six services and of any a student writes.

    Subclasses set ``name``, ``calls`` (the services their handlers may call,
    DESIGN.md §3) and define ``@op`` methods ``async def x(self, req, **args)``.
    Every service answers ``accounting``: the counts check_invariants compares.
    """

    name: ClassVar[str] = "service"
    calls: ClassVar[frozenset[str]] = frozenset()
    #: True only if no handler ever waits (no calls out, no events; a deferred reply
    #: is fine): a node may then run a peer's request in the connection's reader
    #: (ipc/local.py HostedInbox), saving a task switch per message.
    never_waits: ClassVar[bool] = False
    OPS: ClassVar[dict[str, Callable]] = {}
    PARAMS: ClassVar[dict[str, tuple[frozenset[str], frozenset[str]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ops: dict[str, Callable] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if getattr(value, "__ukernel_op__", False):
                    ops[key] = value
        cls.OPS = ops
        cls.PARAMS = {name: _params(fn) for name, fn in ops.items()}

    def __init__(self) -> None:
        self.router: Any = None  # set by Router.attach: the only way out
        self.faults: list[str] = []  # handler crashes: a bug, reported by check_invariants
        self._current: Call | None = None
        self._handles = itertools.count(1)

    def new_handle(self, table: dict, obj: object) -> int:
        """Store ``obj`` under a fresh handle: what the service gives out instead of the object."""
        handle = next(self._handles)
        table[handle] = obj
        return handle

    # --- calling out --------------------------------------------------------
    async def call(self, dst: str, op_name: str, **args: Any) -> Any:
        """Ask another service (only one this service declared in ``calls``)."""
        cur = self._current
        meta = dict(cur.meta) if cur else {}
        if cur is not None:
            meta["cause"] = cur.msgid
        return await self.router.call(self.name, dst, op_name, args, meta)

    async def reply(self, deferred: Deferred, result: Any = None) -> None:
        """Answer a deferred request."""
        if deferred.reply_fn is not None:
            await deferred.reply_fn(protocol.encode_response(deferred.msgid, None, result))

    async def reply_error(self, deferred: Deferred, err: int, message: str = "") -> None:
        if deferred.reply_fn is not None:
            error = protocol.error_map(err, message or abi.strerror(err))
            await deferred.reply_fn(protocol.encode_response(deferred.msgid, error, None))

    # --- the inbox loop -----------------------------------------------------
    async def serve(self, inbox: trio.MemoryReceiveChannel) -> None:
        """One message at a time, in arrival order, whichever way it came."""
        async for item, reply_fn in inbox:
            await self.handle(item, reply_fn)

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
        req = Call(msgid, msg.meta, reply_fn if msgid is not None else None)
        error, result = await self._dispatch(req, msg.op, msg.args)
        if req.deferred is not None or msgid is None or reply_fn is None:
            return
        await reply_fn(protocol.encode_response(msgid, error, result))

    async def _dispatch(self, req: Call, op_name: str, args: dict) -> tuple[dict | None, Any]:
        handler = self.OPS.get(op_name)
        if handler is None:
            return protocol.error_map(abi.ENOSYS, f"{self.name} has no op {op_name!r}"), None
        allowed, required = self.PARAMS[op_name]
        if not (args.keys() <= allowed and required <= args.keys()):
            want = ", ".join(sorted(allowed)) or "none"
            message = f"{self.name}.{op_name}: bad arguments {sorted(args, key=repr)}; takes {want}"
            return protocol.error_map(abi.EINVAL, message), None
        self._current = req
        try:
            result = await handler(self, req, **args)
        except Answer as answer:
            return None, answer.result
        except OSError as exc:
            return protocol.error_from_exception(exc), None
        except (TypeError, ValueError, KeyError) as exc:
            return protocol.error_map(abi.EINVAL, f"{self.name}.{op_name}: bad argument: {exc!r}"), None
        except trio.Cancelled:
            raise
        except Exception as exc:  # a bug in the handler: answer EIO, keep serving, report it
            self.faults.append(f"{op_name}: {''.join(traceback.format_exception(exc))}")
            return protocol.error_map(abi.EIO, f"{self.name}.{op_name} crashed: {exc!r}"), None
        finally:
            self._current = None
        if result is DEFERRED:
            return None, None
        return None, result

    # --- every service answers these ----------------------------------------
    @op
    async def accounting(self, req: Call) -> dict:
        """Counts of what this service owns; equal before and after a clean run."""
        return {"faults": len(self.faults)}

    @op
    async def ping(self, req: Call) -> str:
        return self.name


def _params(fn: Callable) -> tuple[frozenset[str], frozenset[str]]:
    """The keyword arguments an op takes, and those it requires."""
    params = list(inspect.signature(fn).parameters.values())[2:]  # after self, req
    allowed = frozenset(p.name for p in params)
    required = frozenset(p.name for p in params if p.default is inspect.Parameter.empty)
    return allowed, required


def get(table: dict, handle: Any, what: str) -> Any:
    """Look up a handle this service gave out; EINVAL names a bad one."""
    try:
        return table[handle]
    except (KeyError, TypeError):
        raise abi.kernel_error(abi.EINVAL, f"no {what} with handle {handle!r}") from None
