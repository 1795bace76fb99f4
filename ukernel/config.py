"""Settings: ``Config`` (every keyword of ``ukernel.run`` and ``ukernel.boot``) and the
TOML file that ``ukernel run --config FILE`` and ``ukernel.run(..., config=FILE)`` read:

    cpus = 2
    memory = "128M"
    rpc_timeout = 2.0
    secret_file = "/etc/ukernel/secret"   # the secret itself never goes in this file

    [remote]
    mm = "tcp://10.0.0.2:7001"
    vfs = "unix:/run/ukernel/vfs.sock"

    [fail]
    copy_mm = "ENOMEM"

    [files]
    "/etc/motd" = "hello\n"

Keys are the keywords of ``ukernel.run`` (``Config``'s fields); an unknown
key is an error naming it, so a typo does not pass silently. Text in
``stdin`` and ``[files]`` becomes bytes (UTF-8).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from services.sched.classes import load_class

from . import abi
from .kernel.fork import STEP_NAMES

THREAD_SIZE = 16 * 1024  # what one task costs in Linux's threads-max formula


def parse_size(size: int | str) -> int:
    """'64M' -> 67108864."""
    if isinstance(size, int):
        return size
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = size.strip().upper()
    if text[-1:] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def parse_errno(value: int | str) -> int:
    if isinstance(value, int):
        return value
    err = getattr(abi, value.upper(), None)
    if not isinstance(err, int):
        raise ValueError(f"unknown errno {value!r}")
    return err


@dataclass
class Config:
    """Everything ``ukernel.run`` and ``ukernel.boot`` accept as keywords."""

    cpus: int = 1
    memory: int | str = "64M"
    seed: int = 0  # orders tasks running at once on several CPUs (determinism.py); sched's CPU tie-breaks
    fail: dict[str, Any] = field(default_factory=dict)
    stdin: bytes = b""
    terminal: int | None = None  # a host fd read as the terminal: console reads wait for its lines
    files: dict[str, bytes] = field(default_factory=dict)
    pid_max: int = abi.PID_MAX_DEFAULT
    max_threads: int = 0  # 0: Linux's formula from the memory size
    nproc: int = 0  # 0: max_threads / 2, as fork_init sets RLIMIT_NPROC
    console: Any = None  # a callable that sees console output as it is written
    trace: bool = True
    remote: dict[str, str] = field(default_factory=dict)  # service name -> tcp://HOST:PORT or unix:/PATH
    sched: str = "rr"  # the class of SCHED_OTHER tasks: cfs, rr, or package.module:Class (docs/sched.md)
    sched_settings: dict[str, int] = field(default_factory=dict)  # sched_latency, sched_min_granularity, ... in ticks
    secret_file: str | None = None  # the shared secret for remote services; None: $UKERNEL_SECRET
    heartbeat: float = 1.0  # seconds between pings to each remote service
    rpc_timeout: float = 5.0  # seconds of silence after which a remote service is lost (its calls: EIO)
    parallel_copy: bool = False  # send copy_process's and do_exit's independent steps at once (clone.py, exit.py)
    cpu_limit: float = 10.0  # host CPU seconds a task may run Python without a syscall (docs/limits.md); 0: none

    def __post_init__(self) -> None:
        self.memory = parse_size(self.memory)
        load_class(self.sched)  # an unknown class is a ValueError now, not at boot
        if not self.max_threads:  # set_max_threads: RAM / (THREAD_SIZE * 8), at least 20
            self.max_threads = max(20, self.memory // (THREAD_SIZE * 8))
        if not self.nproc:
            self.nproc = self.max_threads // 2
        if not isinstance(self.cpu_limit, int | float) or not self.cpu_limit >= 0:
            raise ValueError(f"cpu_limit: seconds >= 0 (0: no limit), not {self.cpu_limit!r}")
        unknown = set(self.fail) - set(STEP_NAMES) - {k for k in self.fail if str(k).startswith("msg:")}
        if unknown:
            raise ValueError(f"fail: unknown step(s) {sorted(unknown)}; steps are {', '.join(STEP_NAMES)} or msg:N")


NOT_IN_FILES = {"console"}  # a callable: only from Python


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """The settings in ``path``, as keywords for ``ukernel.run``; ValueError if the file is wrong."""
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{os.fspath(path)}: not TOML: {exc}") from None
    known = {f.name for f in dataclasses.fields(Config)} - NOT_IN_FILES
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"{os.fspath(path)}: unknown setting(s) {', '.join(unknown)}; settings are {', '.join(sorted(known))}"
        )
    if isinstance(data.get("stdin"), str):
        data["stdin"] = data["stdin"].encode()
    if "files" in data:
        data["files"] = {k: v.encode() if isinstance(v, str) else v for k, v in data["files"].items()}
    return data
