"""Whose bug it was: reports on a service that crashed, broke a reply's contract or did not
answer, and the panic that ends a run the kernel cannot go on with (kernel/panic.c, BUG()).

Every reply the kernel collects passes ``Bugs.on_collect`` (the router's hook):
a fault a service reported with its reply (ipc/service.py: a crash, a handler
stopped after ``service_timeout``, a result msgpack cannot carry) and a reply
that breaks its op's contract (contracts.py) each become a ``Report``: the
student's file:line first, the message that caused it as the trace shows it
(``#42 kernel -> pid alloc_pid {ns: 1} (fork by pid 2)``) and the few messages
before it. A report is traced (a ``service_bug`` event), kept for
check_invariants and ``Result.bugs``, and printed once by the CLI.

A panic ends the run cleanly when the kernel cannot go on: a handler that
spins or never answers, an op Linux cannot fail that failed twice, init that
cannot be made. The tasks are cancelled where they are, the services stay up
for the report, and ``ukernel.run`` returns with ``error`` saying why.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from ..ipc.service import BUILT_IN, CHECKOUT, definition_site, fault_site, format_frames, own_frames, site_of
from ..reprs import bounded
from ..trace.events import MemorySink, format_event
from . import contracts
from .contracts import ServiceBug

if TYPE_CHECKING:
    from ..ipc.router import Sent
    from ..ipc.service import Service

BEFORE = 5  # messages shown before the one that caused a report
RECENT = 200  # trace events kept for reports (a ring: the whole trace may be off)
SUSPECTS = 3  # a student's ops shown when the fault's own site is built-in code
MESSAGE_TYPES = frozenset({"request", "reply", "syscall_enter", "syscall_exit"})


class KernelPanic(BaseException):  # noqa: N818 (Linux's word)
    """Unwinds a kernel path after ``panic``: the run is over (a BaseException: no
    syscall path takes it for an errno or an oops)."""


@dataclass
class Report:
    """One service bug, as a person reads it: ``headline`` is one line, ``text`` all of it."""

    kind: str  # crash, contract, timeout, interrupted, reply
    service: str
    op: str
    msgid: int
    headline: str
    details: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        head = self.headline if self.kind == "oops" else f"service bug: {self.headline}"  # an oops names itself
        return "\n".join([head, *(f"  {line}" for line in self.details)])


class Bugs:
    """Fault reports and the panic (mixed into Kernel: its tracer, router, config, tasks)."""

    def init_bugs(self) -> None:
        self.bugs: list[Report] = []
        self.panicked: Report | None = None  # the report that ended the run, if one did
        self.stuck: set[str] = set()  # services that never answered: the after-run calls skip them
        self.recent = MemorySink(maxlen=RECENT)  # a sink, when tracing is on
        self.local: dict[str, Service] = {}  # the services in this process: their code and their stacks
        self.run_scope: trio.CancelScope | None = None
        self.task_nursery: trio.Nursery | None = None

    # --- every reply -----------------------------------------------------------------------
    def on_collect(self, sent: Sent, error: dict | None, result: object) -> None:
        """The router's hook: a fault the reply carries is reported; a kernel's reply that
        breaks its contract is reported and raised (ServiceBug)."""
        if error is not None:
            fault = error.get("fault")
            if isinstance(fault, dict):
                self._fault_reported(sent, error, fault)
            return
        if sent.src == "kernel":  # its op's contract (ops without one pass): looked up here, a call less per reply
            ops = contracts.TABLE.get(sent.dst)
            contract = ops.get(sent.op) if ops is not None else None
            if contract is not None:
                why = contract.breach(self, sent, result)
                if why:
                    bug = ServiceBug(sent.dst, sent.op, sent.msgid, result, why)
                    self._contract_broken(sent, bug)
                    raise bug

    def _fault_reported(self, sent: Sent, error: dict, fault: dict) -> None:
        kind = str(fault.get("kind", "crash"))
        site = str(fault.get("site", "?"))
        frames = [str(f) for f in fault.get("frames", [])]
        lines = [f"at {site}" + ("" if kind == "reply" else " (the service's code, most recent call last):")]
        lines += [f"  {frame}" for frame in frames]
        report = self.report(kind, sent, str(error.get("message", "")), lines, suspects=not _is_theirs(site))
        if kind == "timeout":
            self.panic(report)

    def _contract_broken(self, sent: Sent, bug: ServiceBug) -> None:
        site = self.handler_site(sent.dst, sent.op)
        lines = [f"the reply: {bounded(bug.reply)}", f"what is wrong: {bug.why}", f"its handler: {site}"]
        self.report(
            "contract", sent, f"{sent.dst}.{sent.op} (#{sent.msgid}) broke its reply contract: {bug.why}", lines
        )

    def handler_site(self, service: str, op: str) -> str:
        """Where the op's handler is defined (a service in this process), else where it runs."""
        svc = self.local.get(service)
        handler = type(svc).OPS.get(op) if svc is not None else None
        if handler is None:
            return f"in the {service} service at {self.config.remote.get(service, '?')}"
        return f"{definition_site(handler)} ({getattr(handler, '__qualname__', op)})"

    # --- the report ------------------------------------------------------------------------
    def report(self, kind: str, sent: Sent, headline: str, lines: list[str], suspects: bool = False) -> Report:
        """Make, trace and keep a report on ``sent``'s service; the message and those before it
        come from the trace when it is on, else only the message itself."""
        request, before = self._context(sent)
        details = [*lines, f"the message: {_line(request)}"]
        if before:
            details += ["the messages before it:", *(f"  {_line(e)}" for e in before)]
        if suspects and (theirs := self._suspects(sent.dst)):
            details += ["your code that ran on this service before it:", *(f"  {s}: {_line(e)}" for s, e in theirs)]
            headline += f" (after your {theirs[0][1]['op']} at {theirs[0][0]})"
        report = Report(kind, sent.dst, sent.op, sent.msgid, headline, details)
        self.bugs.append(report)
        if self.tracer.on:
            meta = sent.meta
            self.tracer.emit(
                "service_bug",
                src=sent.dst,
                dst=sent.src,
                op=sent.op,
                msgid=sent.msgid,
                cause=meta.get("cause"),
                pid=meta.get("pid"),
                tid=meta.get("tid"),
                kind=kind,
                message=headline,
                report=report.text,
            )
        return report

    def _context(self, sent: Sent) -> tuple[dict, list[dict]]:
        """The request as a trace event, and the BEFORE message events before it."""
        events = [e for e in self.recent if e["type"] in MESSAGE_TYPES]
        at = next((i for i in range(len(events) - 1, -1, -1) if _is_request(events[i], sent.msgid)), None)
        if at is not None:
            return events[at], events[max(0, at - BEFORE) : at]
        meta = sent.meta
        request = {"type": "request", "src": sent.src, "dst": sent.dst, "op": sent.op, "msgid": sent.msgid}
        request |= {"args": sent.args, "pid": meta.get("pid"), "syscall": meta.get("syscall"), "flag": meta.get("flag")}
        return request, []

    def _suspects(self, service: str) -> list[tuple[str, dict]]:
        """The fault is in built-in code: the last ops of the student's own code that ran on
        that service (their handler's site and the request), newest first, from the trace:
        a refcount a student's op forgot shows up in a later op."""
        svc = self.local.get(service)
        seen: dict[str, tuple[str, dict]] = {}
        for event in reversed(self.recent if svc is not None else ()):
            if event["type"] == "request" and event["dst"] == service and event["op"] not in seen:
                handler = type(svc).OPS.get(event["op"])
                if handler is not None and _is_theirs(definition_site(handler)):
                    seen[event["op"]] = (definition_site(handler), event)
                    if len(seen) == SUSPECTS:
                        break
        return list(seen.values())

    # --- a handler that does not answer ---------------------------------------------------
    def overdue(self) -> Sent | None:
        """The request longest without a reply past service_timeout (a service's ``wait`` is
        a sleep, not a reply owed); a handler still running is preferred to what queues behind it."""
        limit = time.perf_counter() - self.config.service_timeout
        late = sorted(
            (s for s in self.router.pending.values() if s.op != "wait" and s.response is None and s.started < limit),
            key=_age,
        )  # response set: the reply came (a stopped handler's fault too) and waits to be collected
        for sent in late:
            svc = self.local.get(sent.dst)
            if svc is not None and svc.handling is not None and svc.handling.msgid == sent.msgid:
                return sent
        return late[0] if late else None

    def report_overdue(self, sent: Sent) -> Report:
        """No reply within service_timeout: where its handler waits now, or that it deferred its
        reply and never gave it; the run is then stopped."""
        svc, waited = self.local.get(sent.dst), time.perf_counter() - sent.started
        what = f"{sent.dst}.{sent.op} (#{sent.msgid}) did not answer within {self.config.service_timeout:g} s"
        lines = [f"its arguments: {bounded(sent.args)}"]
        if svc is not None and svc.handling is not None and svc.handling.msgid == sent.msgid:
            frames = own_frames(svc.handler_stack())
            headline = f"{what}: it waits at {site_of(frames)}"
            lines += [f"it waits at {site_of(frames)} (the handler's stack, most recent call last):"]
            lines += [f"  {frame}" for frame in format_frames(frames)]
        elif svc is not None and svc.handling is None:
            site = self.handler_site(sent.dst, sent.op)
            headline = f"{what}: its handler deferred the reply and never gave it"
            lines += [f"its handler: {site}, returned DEFERRED {waited:.1f} s ago; nothing answered since"]
        else:
            headline = f"{what} (waited {waited:.1f} s)"
        report = self.report("timeout", sent, headline, lines)
        self.stuck.add(sent.dst)
        return report

    # --- the end of a run ------------------------------------------------------------------
    def panic(self, report: Report) -> None:
        """The run cannot go on: stop every task where it is (the services stay, for the
        report and the after-run calls); ``Kernel.run`` returns once it is unwound."""
        if self.panicked is None:
            self.panicked = report
            if self.tracer.on:
                self.tracer.emit("panic", src="kernel", op=report.op, pid=None, tid=None, message=report.headline)
        if self.task_nursery is not None:
            self.task_nursery.cancel_scope.cancel()
        if self.run_scope is not None:
            self.run_scope.cancel()

    def oops_report(self, where: str, exc: Exception) -> Report:
        """A kernel path's bug where no task can take the oops (init is not made yet): reported
        like a service's, at the file:line a student looks at first."""
        report = Report("oops", "kernel", where, 0, f"oops while {where}: {bounded(exc)} at {fault_site(exc)}")
        self.bugs.append(report)
        return report

    def cannot_go_on(self, where: str, exc: BaseException, since: int = 0) -> KernelPanic:
        """What the kernel cannot do without failed again: the first service bug reported
        from ``since`` on (what led here, counted in ``bugs``), or ``exc`` itself, ends the
        run; raise what this returns."""
        if len(self.bugs) <= since:
            self.bugs.append(Report("oops", "kernel", where, 0, f"{where} failed twice: {bounded(exc)}"))
        self.panic(self.bugs[since])
        return KernelPanic(self.bugs[since].headline)


def _is_theirs(site: str) -> bool:
    """A site outside ukernel and the built-in services: a student's (or a test's) code."""
    path = site.rsplit(":", 1)[0].split(" ", 1)[0]
    full = path if path.startswith("/") else str(CHECKOUT / path)
    return path != "?" and not full.startswith(BUILT_IN)


def _is_request(event: dict, msgid: int) -> bool:
    return event["type"] == "request" and event.get("msgid") == msgid


def _age(sent: Sent) -> float:
    return sent.started


def _line(event: dict) -> str:
    """A trace event as the console shows it, without the column padding."""
    return re.sub(r" {2,}", " ", format_event(event) or "")
