"""libc's ``plain`` methods: a replay answers them from their mark alone (replay.py
``answering``), so each mark must say exactly what the method's body does."""

from __future__ import annotations

import ast
import inspect

from ukernel.kernel.watchdog import Watchdog
from ukernel.user import libc
from ukernel.user.libc import Sys
from ukernel.user.replay import Replay, replaying


def _plain_form(method: ast.AsyncFunctionDef) -> tuple[str, str | None] | None:
    """(syscall, conversion's source) when the body is ``return [f(]await self._call(S, ...)[)]``
    or ``await self._call(S, ...)`` ("nothing"), with only names and constants as arguments
    (an argument that is computed could raise in the parent before the call): else None."""
    body = method.body[1:] if ast.get_docstring(method) else method.body
    if len(body) != 1:
        return None
    statement = body[0]

    def syscall(node: ast.AST) -> str | None:
        if not (isinstance(node, ast.Await) and isinstance(node.value, ast.Call)):
            return None
        call = node.value
        if ast.unparse(call.func) != "self._call" or not isinstance(call.args[0], ast.Constant):
            return None
        arguments = [*call.args[1:], *(k.value for k in call.keywords)]
        return call.args[0].value if all(isinstance(a, ast.Name | ast.Constant) for a in arguments) else None

    if isinstance(statement, ast.Expr):
        name = syscall(statement.value)
        return None if name is None else (name, "nothing")
    if not isinstance(statement, ast.Return) or statement.value is None:
        return None
    name = syscall(statement.value)
    if name is not None:
        return name, None
    value = statement.value
    if isinstance(value, ast.Call) and len(value.args) == 1 and not value.keywords:
        name = syscall(value.args[0])
        return None if name is None else (name, ast.unparse(value.func))
    return None


def test_every_plain_mark_is_its_methods_body_and_every_such_body_is_marked():
    tree = ast.parse(inspect.getsource(libc))
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Sys")
    checked = 0
    for method in cls.body:
        if not isinstance(method, ast.AsyncFunctionDef) or method.name.startswith("_"):
            continue
        form = _plain_form(method)
        mark = getattr(Sys, method.name).__wrapped__.__dict__.get("plain")
        if form is None:
            assert mark is None, method.name
            continue
        syscall, convert = form
        expected = None if convert is None else eval(convert, vars(libc))  # (a name of libc's)
        assert mark == (syscall, expected), method.name
        checked += 1
    assert checked > 60  # (most of libc: the form is found at all)


def test_a_plain_answer_moves_the_watchdog_on_counts_the_call_and_ends_the_replay():
    """The plain path is Replay.answer written out: the same stretch, count and end."""
    watchdog = Watchdog(limit=1.0)
    ended = []
    entries = [(1, "wait4", True, [5, 0, {}]), (1, "close", True, 0), (1, "fork", True, 0)]
    replay = Replay([(entries[:2], 2), ([entries[2]], 1)], watchdog, lambda: ended.append(True))
    sys = Sys(None)  # (no kernel: every call here is answered from the journal)
    token = replaying.set(replay)
    try:
        stretches = [watchdog.stretch]
        for call, expected in ((sys.waitpid(5, 0), (5, 0)), (sys.close(3), None), (sys.fork(), 0)):
            try:
                call.send(None)
            except StopIteration as stop:
                assert stop.value == expected
            stretches.append(watchdog.stretch)
    finally:
        replaying.reset(token)
    assert stretches == list(range(stretches[0], stretches[0] + 4)) and replay.calls == 3 and ended == [True]


async def test_calls_awaited_out_of_order_replay_in_the_order_they_were_awaited(run):
    """The journal is in await order: a child taking an answer when a call is made would
    swap these two reads' data."""
    result = await run(
        """
        async def main(sys, argv):
            r1, w1 = await sys.pipe()
            r2, w2 = await sys.pipe()
            await sys.write(w1, b"a")
            await sys.write(w2, b"b")
            first = sys.read(r1, 1)
            second = sys.read(r2, 1)
            got = [await second, await first]
            pid = await sys.fork()
            await sys.write(1, b"%s %r\\n" % (b"child" if pid == 0 else b"parent", got))
            if pid:
                await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert result.stdout == b"parent [b'b', b'a']\nchild [b'b', b'a']\n"


async def test_a_replayed_plain_call_returns_what_the_method_returned_live(run):
    result = await run(
        """
        from ukernel.abi import O_CREAT, O_WRONLY

        async def main(sys, argv):
            fd = await sys.open("/tmp/f", O_CREAT | O_WRONLY)
            seen = [
                await sys.pipe(),
                await sys.write(fd, b"xyz"),
                await sys.close(fd),
                (await sys.stat("/tmp/f")).st_size,
                await sys.sigprocmask(0, None),
                await sys.getpid(),
            ]
            pid = await sys.fork()
            if pid == 0:
                await sys.write(1, repr(seen).encode() + b"\\n")
                return 0
            await sys.write(1, repr(seen).encode() + b"\\n")
            got, status = await sys.waitpid(pid, 0)
            await sys.write(1, repr((got == pid, status)).encode() + b"\\n")
            return 0
        """
    )
    line = b"[(4, 5), 3, None, 3, set(), 2]\n"
    assert result.stdout == line * 2 + b"(True, 0)\n"


async def test_a_plain_call_whose_entry_is_another_syscall_is_a_divergence(run):
    result = await run(
        """
        async def main(sys, argv):
            import ukernel.abi as abi
            abi.__dict__.setdefault("_plain_test", 0)
            abi._plain_test += 1
            await (sys.getpid() if abi._plain_test == 1 else sys.umask(0o22))
            pid = await sys.fork()
            if pid == 0:
                return 0
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"child status {status >> 8}\\n".encode())
            return 0
        """
    )
    import ukernel.abi as abi_module

    del abi_module._plain_test
    assert result.stdout == (
        b"ReplayDiverged: at syscall 1: the parent called getpid(), the child calls umask()\nchild status 1\n"
    )
