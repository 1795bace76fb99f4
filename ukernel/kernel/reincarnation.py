"""The reincarnation server (MINIX 3's RS): a service that dies is started again, with backoff.

An embedded service dies when its inbox loop ends by an exception (a bug a
handler's own guard cannot catch) or by the ``kill_service`` fault
(``--kill-service pid@N``: it dies right after answering its Nth request of the
program). Then, in this order:

1. its *core* is read: the dead instance's own ``accounting`` op, asked once
   more, says what it held (RS reads a dead server's state the same way);
2. every request in flight to it, and every deferred reply it owed, is answered
   EIO (nothing waits for a dead server);
3. requests sent from now on wait (they are held, not failed) while RS sleeps
   the backoff, ``backoff_min * 2**(attempt-1)`` capped at ``backoff_max``;
4. a fresh instance is built under the same name, and its state is restored
   from the kernel's own copy before anyone else reaches it (SEF init with
   state transfer, done by RS, not by the service: ``RESTORE``);
5. the held requests go to the fresh instance; a ``restart`` event and one
   ``ukernel: ...`` line say what happened and what was lost.

The handle rule: a handle the kernel holds into the dead instance is either
restored (the fresh instance gives a new handle for the same object, and the
kernel's copy is rewritten) or gone; a task that held a handle that is gone is
killed with SIGKILL, as Linux kills a task whose mm is gone, and the run goes
on with the others. What each service gets back is restore.py's ``RESTORE``:
pid and sched are stateful (every task keeps its numbers, its place on a CPU,
its policy and timer: nothing is killed but a task of a nested pid namespace);
mm, vfs, signals and namespaces are stateless (their boot state only; every
holder but init is killed, init gets fresh handles). A fresh stateless instance
numbers its handles past the dead one's, and the Holding stays in front of it:
a request that still names a dead handle (a fork's undo, a put in flight) is
answered for it (restore.GONE), never by a fresh object with the same number.

A remote service lost (ipc/endpoint.py calls ``remote_lost``) is redialled,
not respawned (the kernel did not start its server); back on a new instance
it is restored the same way, from the kernel's own view (the lost one cannot
be asked): pid's and sched's calls in flight are sent again, a stateless one's
fail EIO, and a stateless one is first told to number past every handle the
kernel saw it give (``handles_past``), so the same Holding rule holds.

A service that dies more than ``limit`` times stays dead: its calls fail with
EIO, and one line says so. Without a policy for it, it is not restarted at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio
from trio._core import wait_all_tasks_blocked  # as core.py: not trio.testing (it imports pytest)

from services import build

from .. import abi
from ..determinism import outside
from ..ipc import protocol
from ..ipc.endpoint import BACKOFF_MIN
from ..ipc.local import open_local
from ..ipc.service import Service, fault_site
from ..reprs import bounded
from .restore import HANDLE_ARGS, RESTORE, RESTORE_STEP, STATELESS, ask, gone_reply

__all__ = ["RESTORE", "RESTORE_STEP", "Holding", "Policy", "Reincarnation", "ask"]

if TYPE_CHECKING:
    from .core import Kernel

log = logging.getLogger("ukernel.rs")


@dataclass(frozen=True)
class Policy:
    """How a service is restarted: at most ``limit`` times a run, after a doubling delay (seconds)."""

    limit: int = 5
    backoff_min: float = 0.05
    backoff_max: float = 2.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff_min * 2 ** (attempt - 1), self.backoff_max)


class Holding:
    """A dead service's endpoint while RS restarts it: requests wait until the fresh
    instance is in (RS's own restore requests go through at once), or fail EIO if it
    will not come back."""

    def __init__(self, name: str, rs_task: Any):
        self.name, self.rs_task = name, rs_task
        self.ready = trio.Event()
        self.through: Any = None  # the fresh instance's endpoint, once it serves
        self.why = ""  # set when it stays dead
        self.handles: dict[int, int] = {}  # old handle -> the fresh instance's, for requests held
        self.resend: list[Any] = []  # a remote one's requests in flight when it was lost (router Sent)
        self.waiting: set[int | None] = set()  # msgids held here: no instance has begun them
        self.dead: Service | None = None  # the dead instance: its core (state_digest) can still be read
        self.stateless = name in STATELESS  # nothing of the old state comes back: restore.gone_reply
        self.first = 0  # stateless: the fresh instance's first handle; those below died with the old ones,
        self.boot = 0  # but those below this one its construction made again (the initial mount namespace)

    async def send(self, frame: bytes, reply: Any) -> None:
        if trio.lowlevel.current_task() is not self.rs_task:
            msgid = _msgid(frame)
            self.waiting.add(msgid)
            try:
                await self.ready.wait()
            finally:
                self.waiting.discard(msgid)
            frame, answered = self.translate(frame)
            if answered is not None:
                if reply is not None:
                    await reply(answered)
                return
        if self.through is not None:
            await self.through.send(frame, reply)
            return
        msgid = _msgid(frame)
        if msgid is not None and reply is not None:
            error = protocol.error_map(abi.EIO, f"{self.name} is dead: {self.why}")
            await reply(protocol.encode_response(msgid, error, None))

    def translate(self, frame: bytes) -> tuple[bytes, bytes | None]:
        """A held request names a handle of the dead instance (sent before the restore, as
        release_task's free_pid): the fresh one's handle for it; a put of one that died with
        it is done already (answered 0: no holder is left); anything else is left as sent.
        After a stateless restart no handle comes back: restore.gone_reply answers for it."""
        msg = protocol.decode(frame)
        if self.stateless and isinstance(msg, protocol.Request):  # its handles name nothing the fresh one has
            return frame, gone_reply(self.name, msg, range(self.boot, self.first))
        if not isinstance(msg, protocol.Request) or not isinstance(msg.args.get("pid"), int):
            return frame, None
        old = msg.args["pid"]
        if old in self.handles:
            args = msg.args | {"pid": self.handles[old]}
            return protocol.encode_request(msg.msgid, f"{msg.service}.{msg.op}", args, msg.meta), None
        # the dead one's, not restored (a remote fresh one numbers as it likes: only held ones come here)
        if msg.op == "free_pid" and (self.boot <= old < self.first or not self.first):
            return frame, protocol.encode_response(msg.msgid, None, 0)
        return frame, None


def _msgid(frame: bytes) -> int | None:
    return protocol.request_msgid_of(protocol.unpack(frame))


class Reincarnation:
    """RS for one kernel: runs each embedded service under supervision."""

    def __init__(self, kernel: Kernel, policies: dict[str, Policy], kill_at: dict[str, int]):
        self.kernel, self.router = kernel, kernel.router
        self.policies, self.kill_at = policies, dict(kill_at)
        self.reports: list[str] = []  # one line per restart or give-up, as logged
        self.last_pid = 0  # the level-0 number alloc_pid last gave: the cursor a fresh pid gets back
        self._restoring = False
        self._restored = ""  # the line a restart of an embedded service begins with
        self.remotes: dict[str, Any] = {}  # remote service -> its RemoteEndpoint
        self.holding: dict[str, Holding] = {}  # remote services being redialled
        self.losses: dict[str, int] = {}
        self._heads: dict[str, str] = {}
        #: a remote stateless service RS restarts: the highest handle it gave (its fresh instance numbers past)
        self.seen: dict[str, int] = {}
        numbered = {name for name in kernel.config.remote if name in STATELESS and name in policies}
        inner = self.router.on_collect

        def on_collect(sent: Any, error: dict | None, result: Any) -> None:
            if sent.dst in numbered and isinstance(result, dict):
                self._note(sent.dst, result)
            if sent.dst == "pid" and sent.op == "alloc_pid" and not self._restoring and error is None:
                numbers = result.get("numbers") if isinstance(result, dict) else None
                if numbers and len(sent.args.get("set_tid") or ()) < len(numbers):
                    self.last_pid = numbers[0]
            if inner is not None and not (self._restoring and sent.dst == "pid"):  # RS asked for those numbers
                inner(sent, error, result)

        if policies:  # (nothing is restarted without one: every reply goes straight to the kernel's hook)
            self.router.on_collect = on_collect

    async def supervise(self, service: Service, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Attach ``service`` and keep it served: restart it by policy each time it dies."""
        name = service.name
        endpoint, inbox = open_local(service)
        if name in self.kill_at:  # the fault counts the requests its inbox loop answers: none inline
            endpoint.fastpath = False
        self.router.attach(name, endpoint, service.calls)
        task_status.started()
        holding: Holding | None = None
        attempt = 0
        while True:
            why = await self._run(service, inbox, holding)
            previous, holding = holding, Holding(name, trio.lowlevel.current_task())
            if previous is not None:  # it died again: what the last holding still passes on (a request
                previous.through = holding  # that waited there across the death) goes to the new one
                previous.ready.set()
            self.router.endpoints[name] = holding
            endpoint.moved = holding  # a request on its way into the dead inbox (past the drain) too
            unseen = _drain(inbox)  # requests the dead instance never began: the fresh one gets them
            held = await _core(service)
            holding.dead = service
            begun_by_none = {_msgid(frame) for frame, _ in unseen} | holding.waiting
            if previous is not None:
                begun_by_none |= previous.waiting
            failed = self._fail_in_flight(name, why, begun_by_none)
            self.kernel.nursery.start_soon(_redeliver, holding, unseen)
            attempt += 1
            policy = self.policies.get(name)
            if policy is None or attempt > policy.limit:
                holding.why = why if policy is None else f"restarted {policy.limit} times, not again"
                self._say(f"{name} died ({why}); {self._not_again(name, policy)}; its calls fail with EIO")
                self.kernel.lost.append(f"{name}: {holding.why}")  # gone for good, as a lost remote one
                holding.ready.set()
                return
            delay = policy.delay(attempt)
            self.kernel.tracer.emit(
                "restart", service=name, attempt=attempt, delay=delay, why=why, held=held, failed=failed
            )
            with outside():  # a wake-up at a wall-clock moment: no draw from the schedule's shuffle
                await trio.sleep(delay)
            # then until every task that can run has run up to a wait (most on the held service):
            # the restore starts at the same point of the run whatever the backoff's wall time was
            await wait_all_tasks_blocked()
            service = build(name, self.kernel.config)
            service.router = self.router
            # a stale handle must never name a fresh object: the fresh one numbers past the dead one's
            holding.boot = service.next_handle()
            holding.first = max(holding.dead.next_handle(), previous.first if previous else 0)
            service.handles_from(holding.first)
            self.kernel.local[name] = service
            self.kernel.watchdog.services = list(self.kernel.local.values())
            endpoint, inbox = open_local(service)
            holding.through = endpoint
            self._restored = (
                f"{name} died ({why}) and was restarted (attempt {attempt}, after {delay:g} s): the old instance "
                f"held {_held(held)}; {failed} call(s) in flight failed with EIO"
            )

    async def _run(self, service: Service, inbox: Any, holding: Holding | None) -> str:
        """Serve until the instance dies (why); after a restart, restore its state first."""
        died: list[str] = []
        async with trio.open_nursery() as nursery:

            async def serve() -> None:
                died.append(await self._serve(service, inbox))
                nursery.cancel_scope.cancel()  # a restore waiting on the dead instance: give up

            nursery.start_soon(serve)
            if holding is not None:
                await self._restore(service.name, holding, self._restored)
        return died[0]

    async def _restore(self, name: str, holding: Holding, head: str) -> None:
        """State transfer into the fresh instance, then let the held requests in; one line
        (``head``, then what was given back and who was killed)."""
        holding.rs_task = trio.lowlevel.current_task()
        self._restoring = True
        try:
            kept, killed = await RESTORE[name](self, holding)
        except Exception as exc:  # an errno, or a fresh instance that broke a contract: it stays out
            holding.through, holding.why = None, f"its state could not be restored: {bounded(exc)}"
            holding.ready.set()
            self._say(f"{head}; but {holding.why}; its calls fail with EIO")
            return
        finally:
            self._restoring = False
        # the holding stays in front, answering for (or translating) the dead handles still about
        self.router.endpoints[name] = holding if holding.first else holding.through
        holding.ready.set()
        self._say(f"{head}; {kept}; " + (f"killed with SIGKILL: {', '.join(killed)}" if killed else "no task killed"))

    async def settle(self) -> None:
        """Until no embedded service is being restarted: the requests it holds are not done yet
        (Kernel.quiesce waits for them before anyone counts)."""
        while waiting := [
            e for e in self.router.endpoints.values() if isinstance(e, Holding) and e.rs_task and not e.ready.is_set()
        ]:
            await waiting[0].ready.wait()

    # --- a remote service: lost, then redialled (ipc/endpoint.py calls these) ----------------
    def remote_lost(self, name: str, why: str) -> bool:
        """A remote service's connection is lost: with a policy, its calls are held while the
        endpoint redials (at most rpc_timeout), those in flight too (True: the endpoint does
        not fail them); without one, the run ends as before (kernel.lost)."""
        endpoint = self.remotes.setdefault(name, self.router.endpoints[name])
        self.losses[name] = attempt = self.losses.get(name, 0) + 1
        policy = self.policies.get(name)
        if policy is None or attempt > policy.limit:
            if policy is not None:
                self._say(f"{name} lost ({why}); {self._not_again(name, policy)}; its calls fail with EIO")
            self.kernel.lost.append(why)
            return False
        holding = self.holding[name] = Holding(name, None)
        holding.resend = [sent for sent in self.router.pending.values() if sent.dst == name and sent.response is None]
        self.router.endpoints[name] = holding
        held = dict(endpoint.last_accounting or {})
        failed = len(holding.resend) if holding.stateless else 0  # else sent again to a new instance
        self.kernel.tracer.emit(
            "restart", service=name, attempt=attempt, delay=BACKOFF_MIN, why=why, held=held, failed=failed
        )
        self._heads[name] = (
            f"{name} lost ({why}) and redialled (attempt {attempt}): at its last heartbeat the old instance "
            f"held {_held(held) if held else 'what is unknown (no heartbeat had answered)'}"
        )
        self.kernel.nursery.start_soon(self._give_up_after, name, holding, why)
        return True

    def remote_back(self, name: str, new: bool) -> None:
        """The endpoint got through again: restore a new instance (or none, the same one)."""
        holding = self.holding.pop(name, None)
        if holding is not None and not holding.ready.is_set():
            holding.through = self.remotes[name]
            self.kernel.nursery.start_soon(self._back, name, holding, new)

    async def _back(self, name: str, holding: Holding, new: bool) -> None:
        """A new instance: restored, then the calls that were in flight are sent to it again
        (pid, sched: what they did died with the old one, whose state is given back) or fail
        EIO (a stateless one: the old instance may have begun them, and its state is gone);
        the same instance: they may have been done, so they fail EIO, as without RS."""
        head = self._heads.pop(name)
        holding.rs_task = trio.lowlevel.current_task()
        # as after an embedded backoff: the restore starts once every task that can run waits
        # (most on the held service), whatever the redial's wall time; bounded, as a held call is
        with trio.move_on_after(self.kernel.config.rpc_timeout):
            await wait_all_tasks_blocked()
        resend = new and not holding.stateless
        if new:
            fate = "sent again" if resend else "in flight failed with EIO"
            await self._restore(name, holding, head + f"; a new instance; {len(holding.resend)} call(s) {fate}")
        else:
            self.router.endpoints[name] = holding.through
            holding.ready.set()
            self._say(f"{head}; the same instance: nothing to restore; {len(holding.resend)} call(s) failed with EIO")
        for sent in holding.resend:
            if resend and holding.through is not None:
                frame = protocol.encode_request(sent.msgid, f"{name}.{sent.op}", sent.args, sent.meta)
                frame, answered = holding.translate(frame)
                if answered is not None:
                    await self.router.on_reply(answered)
                else:
                    await holding.through.send(frame, self.router.on_reply)
            else:
                why = holding.why or (
                    "the old instance may have begun it; what it did died with it" if new else "it may have been done"
                )
                self.router.deliver(sent.msgid, protocol.error_map(abi.EIO, f"{name} lost: {why}"), None)

    def _note(self, name: str, result: dict) -> None:
        """The highest handle a remote stateless service gave, from a reply (restore.py's bound)."""
        for attr in HANDLE_ARGS[name]:
            handle = result.get(attr)
            if type(handle) is int and handle > self.seen.get(name, 0):
                self.seen[name] = handle

    async def _give_up_after(self, name: str, holding: Holding, why: str) -> None:
        """Held calls wait at most rpc_timeout for the service to come back, then fail EIO."""
        with outside():
            await trio.sleep(self.kernel.config.rpc_timeout)
        if holding.through is None and not holding.ready.is_set():
            self.holding.pop(name, None)
            holding.why = f"not back within rpc_timeout ({self.kernel.config.rpc_timeout:g} s)"
            self.router.endpoints[name] = self.remotes[name]
            holding.ready.set()
            self._say(f"{name} lost ({why}) and {holding.why}; its calls fail with EIO")
            for sent in holding.resend:
                self.router.deliver(sent.msgid, protocol.error_map(abi.EIO, f"{name} lost: {holding.why}"), None)
            self.kernel.lost.append(why)

    async def _serve(self, service: Service, inbox: Any) -> str:
        """The inbox loop of one instance; returns why it ended (it died)."""
        service.task = trio.lowlevel.current_task()
        kill_at = self.kill_at.pop(service.name, None)
        try:
            if kill_at is None:
                await service.serve(inbox)
                return "its inbox closed"
            handled = 0
            async for item, reply_fn in inbox:
                await service.handle(item, reply_fn)
                handled += self.router.counting
                if handled == kill_at:
                    return f"killed on purpose after its request {kill_at} (kill_service)"
            return "its inbox closed"
        except Exception as exc:  # its loop raised: the instance is dead, the kernel is not
            return f"crashed at {fault_site(exc)}: {bounded(exc)}"

    def _fail_in_flight(self, name: str, why: str, unseen: set[int | None]) -> int:
        """Answer EIO to every request the dead instance had begun (running, deferred): what it
        did of them is unknown; those no instance began (``unseen``: in its inbox, or held
        while RS restarted it) wait for the fresh one.
        How many of the run's failed (RS's own restore requests are not counted)."""
        lost = [
            sent
            for sent in self.router.pending.values()
            if sent.dst == name and sent.response is None and sent.msgid not in unseen
        ]
        for sent in lost:
            self.router.deliver(sent.msgid, protocol.error_map(abi.EIO, f"{name} died: {why}"), None)
        return sum(sent.meta.get("step") != RESTORE_STEP for sent in lost)  # RS's own are not the run's

    def _not_again(self, name: str, policy: Policy | None) -> str:
        if policy is None:
            return f"not restarted (no restart policy for {name}: --restart {name})"
        return f"not restarted again: it died {policy.limit + 1} times (limit {policy.limit})"

    def _say(self, line: str) -> None:
        self.reports.append(line)
        log.warning("ukernel: %s", line)


def _drain(inbox: Any) -> list[tuple[bytes, Any]]:
    """The requests left in a dead instance's inbox, in order (a fatal error's marker is not one)."""
    left = []
    while True:
        try:
            item, reply = inbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return left
        if isinstance(item, bytes):
            left.append((item, reply))


async def _redeliver(holding: Holding, unseen: list[tuple[bytes, Any]]) -> None:
    """Send the dead instance's unseen requests on, in order, once the fresh one is in (or EIO)."""
    for frame, reply in unseen:
        await holding.send(frame, reply)


def _held(counts: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if v and k != "faults") or "nothing"


async def _core(service: Service) -> dict:
    """The dead instance's accounting, asked through its own op (its last word)."""
    counts = await ask(service, "accounting", {})
    return counts if isinstance(counts, dict) else {}
