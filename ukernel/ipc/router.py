"""The router: delivers every message to its service and matches the replies.

It is the only path between the kernel and a service, or between two
services, so it is where the call order of DESIGN.md §3 is enforced, where
every message is traced, and where message-level faults are injected.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import msgpack
import trio

from .. import abi
from ..reprs import bounded
from ..trace import Tracer
from ..trace.records import ANSWERED, SENT
from . import protocol
from .local import LocalEndpoint
from .protocol import REQUEST, RESPONSE, Response
from .service import DEFERRED, Call

#: trio's run context (trio/_core/_run.py): current_task() reads its ``task``; the fast path reads it
#: without the call (a Python frame per message).
RUN_CONTEXT = trio._core._run.GLOBAL_RUN_CONTEXT
unpack = msgpack.unpackb
perf_counter = time.perf_counter


class Endpoint(Protocol):
    async def send(self, frame: bytes, reply: Any) -> None: ...


class BootError(Exception):
    """The services cannot be started as configured (for example a call cycle)."""


def check_call_order(calls: dict[str, frozenset[str]]) -> None:
    """Refuse a call graph with a cycle: a cycle could deadlock two services."""
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = path[path.index(node) :] + [node]
            raise BootError("service call order has a cycle: " + " -> ".join(cycle))
        state[node] = 1
        for nxt in sorted(calls.get(node, ())):
            visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(calls):
        visit(node, [])


#: Calls answered on the fast path between two trips through trio's scheduler: a task
#: whose every call is answered there must still let the others run (cond_resched).
#: With several CPUs it is every call: their tasks interleave at each message, as when
#: every message went through an inbox (a race shows as often as it did). A trip costs
#: about what a fast call does (≈ 32 k instructions, and an epoll_wait): one every 16 calls
#: was ≈ 4% of each, one every 64 (a few hundred µs of calls, well within a scheduler tick
#: for the others) is ≈ 1%. With one CPU, when the trips come changes no trace.
YIELD_EVERY = 64

#: What a request's meta carries when explore's reduction wants to know what the op touched
#: (the service answers it in the reply's meta: ipc/service.py ``touches``).
FOOTPRINT_META = {"fp": 1}


class Sent:
    """A request on its way: the reply lands in ``response`` and sets ``event``."""

    __slots__ = ("msgid", "src", "dst", "op", "args", "meta", "started", "_event", "response", "traced")

    def __init__(self, msgid: int, src: str, dst: str, op: str, meta: dict, args: Any):
        self.msgid = msgid
        self.src = src
        self.dst = dst
        self.op = op
        self.meta = meta
        self.args = args
        self.started = perf_counter()
        self._event: trio.Event | None = None
        self.response: protocol.Response | None = None
        self.traced: tuple | None = None  # (the request's trace record, the reply's frame): the fast path's

    @property
    def event(self) -> trio.Event:
        """Set when the reply is in. Made when first asked for: a reply the fast path gave
        before ``send`` returned needs none."""
        if self._event is None:
            self._event = trio.Event()
            if self.response is not None:
                self._event.set()
        return self._event

    @event.setter
    def event(self, event: trio.Event) -> None:
        """Another event of the same methods (the kernel's WaitEvent, which notes its sleeper)."""
        self._event = event
        if self.response is not None:
            event.set()

    def answer(self, response: protocol.Response) -> None:
        self.response = response
        if self._event is not None:
            self._event.set()


class Router:
    """Endpoints by service name, the allowed call edges, and replies in flight."""

    def __init__(self, tracer: Tracer, cpus: int = 1):
        self.tracer = tracer
        self.yield_every = YIELD_EVERY if cpus == 1 else 1
        self.endpoints: dict[str, Endpoint] = {}
        self.calls: dict[str, frozenset[str]] = {"kernel": frozenset()}
        self.pending: dict[int, Sent] = {}
        self._msgids = itertools.count(1)
        self.fail_nth: dict[int, int] = {}  # nth request -> errno (fault injection)
        self.on_reply = ReplyTo(self)
        self._spared = 0  # fast-path calls since the last trip through the scheduler (cond_resched)
        self.sent = 0  # requests counted for fail_nth
        self.counting = True  # a kernel counts only from its program's start (count_from_now)
        #: Looks at every reply before its caller gets it (the kernel's reply contracts and
        #: fault reports, kernel/bug.py); may raise instead of returning the result.
        self.on_collect: Callable[[Sent, dict | None, Any], None] | None = None
        #: ``ukernel explore``'s partial-order reduction: told of every request (explore/por.py).
        self.footprint: Any = None
        self._pack = protocol.packer()  # this thread's: a router lives in its kernel's thread
        #: How many messages each service took part in (sent to it, sent by it, a reply to it):
        #: a service's state changes only in its handlers, so while its count stands its state
        #: digest does too (explore asks again only then: kernel/choice.py ``state_digest``).
        self.moved: collections.defaultdict[str, int] = collections.defaultdict(int)

    def restart_numbering(self) -> None:
        """After boot: the first message of a run is #1 (and ``msg:N`` faults count from
        there), however many files boot wrote into the vfs."""
        assert not self.pending, "restart_numbering with messages in flight"
        self._msgids = itertools.count(1)
        self.sent = 0

    def count_from_now(self, on: bool = True) -> None:
        """``msg:N`` faults count the requests sent from now on (from 1), or none while off."""
        self.sent, self.counting = 0, on

    def resched_due(self) -> bool:
        """A frame's fast path asks before it runs a handler (LocalEndpoint.send; Router.call
        counts inline): True every ``yield_every`` of them, when the caller must pass through
        trio's scheduler (and may be cancelled: nothing is done yet)."""
        self._spared += 1
        if self._spared < self.yield_every:
            return False
        self._spared = 0
        return True

    def new_msgid(self) -> int:
        """Message ids are shared with syscalls, so ``cause`` links them all."""
        return next(self._msgids)

    def attach(self, name: str, endpoint: Endpoint, calls: frozenset[str]) -> None:
        self.endpoints[name] = endpoint
        self.moved[name] += 1  # a new instance: another state
        self.calls[name] = calls
        self.calls["kernel"] = self.calls["kernel"] | {name}
        check_call_order(self.calls)

    def service_event(self, src: str, type_: str, op: str, cause: int | None, meta: dict, fields: dict) -> None:
        """An event a service reports of its own (Service.trace_event) into the trace: a
        service has no tracer, the router is its only way out."""
        if self.tracer.on:
            self.tracer.service_event(type_, src, op, cause, meta, **fields)

    async def call(
        self, src: str, dst: str, op: str, args: dict, meta: dict, inject: int | None = None, *, wait: bool = True
    ) -> Any:
        """Send a request and wait for its reply; an error reply raises OSError. With
        ``wait`` false, only send it: the Sent, for ``collect`` (what ``send`` does).

        ``inject`` (or a ``fail_nth`` entry) answers with that errno instead of
        delivering: fault injection that still shows in the trace.

        A call to an idle local service takes the fast path, the only one, in this one
        coroutine (seL4's fastpath is one function too): the same steps as post, the
        inbox loop's handle_request and collect, with nothing awaited but the handler. A
        service that changes how a message is handled (``Service.flat`` false) has its own
        ``handle`` run here instead. docs/ipc.md says what it keeps and when it falls back.
        """
        moved = self.moved
        moved[dst] += 1
        moved[src] += 1
        endpoint = self.endpoints.get(dst)
        if type(endpoint) is not LocalEndpoint or inject is not None or type(args) is not dict:
            sent = await self.post(src, dst, op, args, meta, inject)
            return await self.collect(sent) if wait else sent
        service = endpoint.service
        if service.busy or service.queued or endpoint.moved is not None or not endpoint.fastpath:
            sent = await self.post(src, dst, op, args, meta, inject)  # (into the inbox, or to who takes
            return await self.collect(sent) if wait else sent  # a dead service's requests)
        if dst not in self.calls.get(src, ()):
            sent = await self.post(src, dst, op, args, meta, inject)  # (refused)
            return await self.collect(sent) if wait else sent
        msgid = next(self._msgids)
        if self.counting:
            self.sent += 1
            if self.fail_nth and (inject := self.fail_nth.pop(self.sent, None)) is not None:
                sent = self._injected(self._request(msgid, src, dst, op, args, meta), inject)
                return await self.collect(sent) if wait else sent
        tracer = self.tracer
        if self.footprint is not None and self.footprint.message(self.calls, dst, op, args, meta, msgid):
            meta = meta | FOOTPRINT_META  # explore asks the service what the op touches
        sent = Sent(msgid, src, dst, op, meta, args)
        pending = self.pending
        pending[msgid] = sent
        record = None  # the request's trace record, when it is kept as its frame
        answer = None  # the decoded reply, when only the caller looks at it
        try:
            try:
                frame = self._pack([REQUEST, msgid, f"{dst}.{op}", [args, meta]])
            except Exception:
                if tracer.on:  # what could not be encoded is traced as it was given
                    tracer.request(src, dst, op, msgid, meta, args)
                raise
            if tracer.on:
                keep = tracer.framed
                if keep is not None:  # kept as its frame: records.py's SENT, no tracer call
                    record = (SENT, next(tracer.seq), tracer.clock(), src, dst, op, frame)
                    keep(record)
                    if tracer.drawn:  # -v: the console's line, from the values at hand
                        for console in tracer.drawn:
                            console.message(src, dst, op, msgid, meta, args)
                else:
                    tracer.request(src, dst, op, msgid, meta, args)
            task = RUN_CONTEXT.task  # current_task()'s
            spared = self._spared + 1
            # cond_resched: let the others run, now and then; and a cancelled caller starts no
            # handler: checkpoint_if_cancelled's test, without its await (a tenth of its cost), on
            # trio's private fields (trio/_core/_run.py): the task is cancelled, or a Ctrl-C waits
            # (for the main task; any other passes). With nothing awaited, nothing else ran.
            if spared < self.yield_every and not (task._cancel_status.effectively_cancelled or task._runner.ki_pending):
                self._spared = spared
                idle = True
            else:
                self._spared = 0 if spared >= self.yield_every else spared
                await trio.lowlevel.checkpoint()
                idle = not (service.busy or service.queued or endpoint.moved is not None)
            if not idle:  # others ran meanwhile and left it busy (the inbox), or it died (to who
                await endpoint.queue(frame, self.on_reply)  # takes its requests)
            else:
                service.busy, service.task = True, task
                try:
                    if not service.flat:  # its own handle, as its inbox loop would run it (the reply
                        await service.handle(frame, self.on_reply)  # comes through on_reply: collect)
                    else:
                        obj = unpack(frame, strict_map_key=False)  # what the service sees: a copy
                        req_args, req_meta = obj[3]
                        req = Call(msgid, req_meta, self.on_reply, op, req_args)
                        error = service.start(req, op, req_args)
                        result = None
                        if error is None:
                            try:
                                result = await req.coro
                            except BaseException as exc:
                                error, result = service.outcome(op, exc)
                            else:
                                if result is DEFERRED:
                                    result = None
                            finally:
                                service._current = None
                        if req.deferred is None:
                            touched = req.touched  # the reply meta explore asked for, if it did
                            try:
                                if touched is None:
                                    reply = self._pack([RESPONSE, msgid, error, result])
                                else:
                                    reply = self._pack([RESPONSE, msgid, error, result, {"footprint": touched}])
                            except (TypeError, ValueError, OverflowError):  # what msgpack cannot carry: EIO
                                reply = service._encode_reply(msgid, op, error, result)  # (no meta)
                            obj = unpack(reply, strict_map_key=False)
                            if touched is not None and len(obj) == 5:
                                self.reply_meta(msgid, obj[4])
                            if wait and sent._event is None and (record is not None or not tracer.on):
                                answer = obj  # only the caller, on_collect and the trace (its frames, below)
                                # look at it: no Response
                            else:
                                if record is not None:  # finish traces the reply from its frame, as the request
                                    sent.traced = record, reply
                                sent.response = Response(msgid, obj[2], obj[3])
                                if sent._event is not None:  # someone looked while the handler ran
                                    sent._event.set()
                except trio.Cancelled:
                    raise
                except BaseException as exc:  # not the caller's: the service dies of it, in its loop
                    service.busy = False
                    await endpoint.fatal(exc)
                finally:
                    service.busy, service.task = False, service._loop_task
                    if service.queued:
                        service._idle.unpark()
        except BaseException:
            del pending[msgid]
            raise
        if answer is not None:  # finish's work, with no Response made
            del pending[msgid]
            error = answer[2]
            if record is not None:  # the reply's record, from its frame, as the request's (finish's)
                took = perf_counter() - sent.started  # (dur_us is made of it when the trace is read)
                keep = tracer.framed
                if keep is not None:
                    keep((ANSWERED, next(tracer.seq), tracer.clock(), record, reply, took))
                    if tracer.drawn:
                        for console in tracer.drawn:
                            console.answer(dst, src, op, msgid, error, answer[3])
                else:  # a sink that needs dicts came in meanwhile
                    tracer.answered(record, reply, took)
            if self.on_collect is not None:
                self.on_collect(sent, error, answer[3])
            if error is not None:
                raise protocol.oserror_from_map(error)
            return answer[3]
        response = sent.response
        if not wait:
            return sent
        if response is None:  # deferred, queued, or the service died of it: its reply comes later
            return await self.collect(sent)
        del pending[msgid]
        if tracer.on or self.on_collect is not None or response.error is not None:
            return self.finish(sent, response)
        return response.result  # (what finish does when nobody looks and it is no error)

    async def send(self, src: str, dst: str, op: str, args: dict, meta: dict, inject: int | None = None) -> Sent:
        """Send a request without waiting for the reply: ``sent.event`` is set when it
        comes (so a kernel task can sleep in sched meanwhile); ``collect`` takes it. (A
        reply the fast path gave is in already.)"""
        return await self.call(src, dst, op, args, meta, inject, wait=False)

    async def post(self, src: str, dst: str, op: str, args: dict, meta: dict, inject: int | None = None) -> Sent:
        """send's general path: to the endpoint, whichever it is (an inbox, a remote node,
        RS holding a dead service's messages), or answered here by fault injection."""
        if dst not in self.calls.get(src, ()):
            allowed = ", ".join(sorted(self.calls.get(src, ()))) or "nobody"
            raise abi.kernel_error(abi.EPERM, f"{src} may not call {dst} (it may call: {allowed})")
        endpoint = self.endpoints[dst]
        msgid = next(self._msgids)
        if self.counting:
            self.sent += 1
            if self.fail_nth:
                inject = inject or self.fail_nth.pop(self.sent, None)
        sent = self._request(msgid, src, dst, op, args, meta)
        if inject is not None:
            return self._injected(sent, inject)
        self.pending[msgid] = sent
        try:
            await endpoint.send(protocol.encode_request(msgid, f"{dst}.{op}", args, sent.meta), self.on_reply)
        except BaseException:
            del self.pending[msgid]
            raise
        return sent

    def _request(self, msgid: int, src: str, dst: str, op: str, args: Any, meta: dict) -> Sent:
        """A request as post sends it: traced, told to explore, and its Sent."""
        if self.tracer.on:
            self.tracer.request(src, dst, op, msgid, meta, args)
        if self.footprint is not None and self.footprint.message(self.calls, dst, op, args, meta, msgid):
            meta = meta | FOOTPRINT_META
        return Sent(msgid, src, dst, op, meta, args)

    def _injected(self, sent: Sent, inject: int) -> Sent:
        """A request fault injection answers (``fail=``, ``msg:N``): traced, never delivered."""
        where = sent.meta.get("step") or f"message {self.sent}"
        error = protocol.error_map(inject, f"{abi.strerror(inject)} (fault injected at {where})")
        sent.answer(protocol.Response(sent.msgid, error, None))
        return sent

    async def call_at_once(
        self, sends: Iterable[tuple[Any, Callable[[], Awaitable[Sent | None]]]], finish: Callable[[Any, Any], None]
    ) -> None:
        """Send every request first (``(key, send)`` pairs), then take the replies in
        order: ``finish(key, result)``.

        What runs at once then costs one wait, not one per message (with remote
        services, several round trips overlap). A send returning None sent nothing.
        Every request sent is collected, even after a failure or a cancellation (a
        reply in flight can be a handle given out); the first failure in order is
        raised after all are in.
        """
        sent: list[tuple[Any, Sent]] = []
        failure: Exception | None = None
        try:
            for key, send in sends:
                one = await send()
                if one is not None:
                    sent.append((key, one))
        finally:
            with trio.CancelScope(shield=True):
                for key, one in sent:
                    try:
                        result = await self.collect(one)
                    except Exception as exc:  # an errno, or a reply that broke its contract
                        failure = failure or exc
                        continue
                    finish(key, result)
        if failure is not None:
            raise failure

    async def collect(self, sent: Sent) -> Any:
        """Wait for the reply to ``sent`` (one the fast path gave is in already: no wait),
        trace it, and return its result or raise."""
        if sent.response is None:
            try:
                await sent.event.wait()
            finally:
                self.pending.pop(sent.msgid, None)
        else:
            self.pending.pop(sent.msgid, None)
        response = sent.response
        assert response is not None
        return self.finish(sent, response)

    def finish(self, sent: Sent, response: protocol.Response) -> Any:
        """A reply in: trace it, let on_collect look at it, and return its result or raise."""
        tracer = self.tracer
        if tracer.on:
            took = perf_counter() - sent.started
            traced = sent.traced
            if traced is not None:  # the fast path's: the request's record and the reply's frame
                keep = tracer.framed
                if keep is not None:  # records.py's ANSWERED
                    keep((ANSWERED, next(tracer.seq), tracer.clock(), traced[0], traced[1], took))
                    if tracer.drawn:
                        for console in tracer.drawn:
                            console.answer(sent.dst, sent.src, sent.op, sent.msgid, response.error, response.result)
                else:
                    tracer.answered(*traced, took)
            else:
                dur_us = int(took * 1e6)
                tracer.reply(
                    sent.dst, sent.src, sent.op, sent.msgid, sent.meta, response.result, response.error, dur_us
                )
        if self.on_collect is not None:
            self.on_collect(sent, response.error, response.result)
        if response.error is not None:
            raise protocol.oserror_from_map(response.error)
        return response.result

    def reply_meta(self, msgid: int, meta: Any) -> None:
        """A reply's meta (its fifth element): what the op touched, which explore asked for
        (``FOOTPRINT_META``); a reply without it leaves the whole service in the footprint."""
        if self.footprint is not None and type(meta) is dict:
            self.footprint.refine(msgid, meta.get("footprint"))

    def deliver(self, msgid: int, error: Any, result: Any) -> None:
        """A reply, decoded: wake its caller (if it was cancelled, the reply is dropped)."""
        slot = self.pending.get(msgid)
        if slot is None:
            return
        self.moved[slot.src] += 1  # a handler waiting for it goes on
        if error is not None and not isinstance(error, dict):
            error = protocol.error_map(abi.EBADMSG, f"{slot.dst}.{slot.op}: malformed error in reply: {bounded(error)}")
        slot.answer(protocol.Response(msgid, error, result))


class ReplyTo:
    """The reply function a router gives endpoints with each request.

    Called with an encoded response, as every ReplyFn is (a local service's reply).
    An endpoint that has decoded the response already (a remote one, to match its
    msgid) calls ``deliver`` instead: encoding it again to be decoded here would
    cost twice per message for nothing.
    """

    __slots__ = ("deliver", "reply_meta")

    def __init__(self, router: Router):
        self.deliver = router.deliver
        self.reply_meta = router.reply_meta

    async def __call__(self, frame: bytes) -> None:
        obj = protocol.unpack(frame)
        if type(obj) is list and len(obj) == 4 and obj[0] == protocol.RESPONSE:  # decode_obj's test, inline
            self.deliver(obj[1], obj[2], obj[3])
        elif type(obj) is list and len(obj) == 5 and obj[0] == protocol.RESPONSE:  # with its reply meta
            self.reply_meta(obj[1], obj[4])
            self.deliver(obj[1], obj[2], obj[3])
