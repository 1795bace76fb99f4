"""The host side of /dev/console: where its input comes from, and ssh's ``~`` escapes.

A *terminal* (``config.terminal_isatty``) is read as the keys come, whether or not
a program reads: its ^C must reach the line discipline while nobody reads, and its
escapes reach ukernel itself (``Escapes``). A *pipe or a file* is read one chunk at a
time, when a guest read waits for console input (``Kernel.want_console_input``):
the rest stays in the host's pipe, so a writer that never stops (``yes``) is held
back by the host kernel's pipe buffer, as Linux's pipe_write holds it back, and a
program that never reads stdin never waits for its writer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from .hung import report_tasks

if TYPE_CHECKING:
    from .core import Kernel

log = logging.getLogger("ukernel")

CHUNK = 4096  # bytes read from the host at a time (N_TTY_BUF_SIZE)
ESCAPE = ord("~")
LINE_ENDS = b"\r\n"  # raw mode sends Enter as \r (no ICRNL); a pipe's lines end in \n
END_STATUS = 130  # ``~.`` ends a run as Ctrl-C did before the terminal was raw (README)

#: The escapes after ``~`` at the start of a line (ssh's clientloop.c process_escapes):
#: byte -> the command ``Escapes.feed`` returns, and its line in the ``~?`` help.
COMMANDS = {
    ord("."): ("end", f"end the run (exit status {END_STATUS}, as Ctrl-C)"),
    ord("t"): ("tasks", "print every task and what it waits for (the hang dump)"),
    ord("?"): ("help", "this message"),
}
HELP = "\n".join(
    [
        "ukernel: supported escape sequences:",
        *(f" ~{chr(byte)}  - {text}" for byte, (_, text) in COMMANDS.items()),
        " ~~  - send one ~",
        "(escapes are recognized only at the start of a line)",
    ]
)


@dataclass
class Escapes:
    """ssh's escape state, kept across reads (a ``~`` and its letter may come apart):
    ``~`` right after a line end (or first) is held; the next byte is a command, a
    second ``~`` (sent once), or anything else (the ``~`` is sent before it)."""

    at_line_start: bool = True
    pending: bool = False

    def feed(self, data: bytes) -> tuple[bytes, list[str]]:
        """The bytes for the guest, and the commands typed, in order."""
        out, commands = bytearray(), []
        for byte in data:
            if self.pending:
                self.pending = False
                if byte in COMMANDS:
                    commands.append(COMMANDS[byte][0])
                    continue  # still at the start of a line: ~?~. works
                if byte != ESCAPE:
                    out.append(ESCAPE)
            elif self.at_line_start and byte == ESCAPE:
                self.pending = True
                continue
            self.at_line_start = byte in LINE_ENDS
            out.append(byte)
        return bytes(out), commands


class HostInput:
    """The console's source: a host fd as a trio stream, and a terminal's escapes."""

    def __init__(self, k: Kernel, stream: trio.lowlevel.FdStream):
        self.k, self.stream = k, stream
        self.escapes = Escapes() if k.config.terminal_isatty else None

    async def receive(self) -> bytes:
        """The next bytes for the console; b"" at the end of the input."""
        while True:
            if self.escapes is None:  # a pipe or a file: only when a reader waits
                await self.k.console_wanted.wait()
                self.k.console_wanted = trio.Event()
                return await self.stream.receive_some(CHUNK)
            data = await self.stream.receive_some(CHUNK)
            if not data:
                return data
            data, commands = self.escapes.feed(data)
            for command in commands:
                self.run(command)
            if data:
                return data

    def run(self, command: str) -> None:
        """An escape's command: ukernel's, not the guest's."""
        if command == "end":
            self.k.interrupt("~.")
        elif command == "tasks":
            report_tasks(self.k, "~t")
        else:
            log.warning("%s", HELP)
