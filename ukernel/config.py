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

from services import SERVICES
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
    number, scale = (text[:-1], units[text[-1]]) if text[-1:] in units else (text, 1)
    if not number.isdigit():
        raise ValueError(f"memory: {size!r} is not a size (bytes, or a number with K, M or G: 64M)")
    return int(number) * scale


def format_size(size: int) -> str:
    """67108864 -> '64M': parse_size read backwards, for messages."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def parse_errno(value: int | str) -> int:
    if isinstance(value, int):
        return value
    err = getattr(abi, value.upper(), None)
    if not isinstance(err, int):
        raise ValueError(f"unknown errno {value!r} (a name like ENOMEM, or a number)")
    return err


@dataclass
class Config:
    """Everything ``ukernel.run`` and ``ukernel.boot`` accept as keywords."""

    cpus: int = 1
    memory: int | str = "64M"
    tmpfs_size: int | str = 0  # bytes the tmpfs may hold (ENOSPC past it); 0: half of memory, as tmpfs's default
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
    service_timeout: float = 0.0  # wall seconds a service's handler may take to answer (docs/limits.md); 0: any

    def __post_init__(self) -> None:
        self.memory = parse_size(self.memory)
        self.tmpfs_size = parse_size(self.tmpfs_size) or self.memory // 2
        if self.cpus < 1:
            raise ValueError(f"cpus: a machine needs at least one CPU, not {self.cpus}")
        if self.pid_max < 2:
            raise ValueError(f"pid_max: must leave room for pid 1, not {self.pid_max}")
        load_class(self.sched)  # an unknown class is a ValueError now, not at boot
        if not self.max_threads:  # set_max_threads: RAM / (THREAD_SIZE * 8), at least 20
            self.max_threads = max(20, self.memory // (THREAD_SIZE * 8))
        if not self.nproc:
            self.nproc = self.max_threads // 2
        elsewhere = sorted(set(self.remote) - set(SERVICES))
        if elsewhere:
            raise ValueError(f"remote: no service {', '.join(elsewhere)}; services are {' '.join(SERVICES)}")
        if not isinstance(self.cpu_limit, int | float) or not self.cpu_limit >= 0:
            raise ValueError(f"cpu_limit: seconds >= 0 (0: no limit), not {self.cpu_limit!r}")
        if not isinstance(self.service_timeout, int | float) or not self.service_timeout >= 0:
            raise ValueError(f"service_timeout: seconds >= 0 (0: no limit), not {self.service_timeout!r}")
        parse_fail(self.fail)  # a bad name or errno is a ValueError now, not at boot


def parse_fail(fail: dict[str, Any]) -> tuple[dict[str, int], dict[int, int]]:
    """``fail`` as (step -> errno, N -> errno): a step of COPY_STEPS (or settid,
    wake_up_new_task) fails every clone of the program there; ``msg:N`` fails the Nth
    message counted from the program's first CPU until it is reaped (init's own messages and the
    checks after the run are not counted)."""
    steps: dict[str, int] = {}
    messages: dict[int, int] = {}
    for key, value in fail.items():
        name = str(key)
        number = name.removeprefix("msg:")
        if name.startswith("msg:") and number.isdigit() and int(number) >= 1:
            messages[int(number)] = parse_errno(value)
        elif name in STEP_NAMES:
            steps[name] = parse_errno(value)
        else:
            raise ValueError(f"fail: unknown step {name!r}; steps are {', '.join(STEP_NAMES)} or msg:N (N >= 1)")
    return steps, messages


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


def mismatch(service: str, theirs: dict[str, Any], ours: dict[str, Any]) -> str | None:
    """Why a remote ``service`` that runs with ``theirs`` cannot serve a run that asks for
    ``ours`` (services.settings_of of both): one line naming the first setting that differs."""
    for name, wanted in ours.items():
        if theirs.get(name) != wanted:
            return (
                f"remote {service} runs {_setting(name, theirs.get(name))}, this run asks for "
                f"{_setting(name, wanted)}: serve {service} with the settings of the run"
            )
    return None


def _setting(name: str, value: Any) -> str:
    """'1 CPU', '64M of memory', 'sched=cfs': a setting as a person reads it."""
    if name == "cpus":
        return f"{value} CPU" if value == 1 else f"{value} CPUs"
    if name == "memory" and isinstance(value, int):
        return f"{format_size(value)} of memory"
    if name == "tmpfs_size" and isinstance(value, int):
        return f"a {format_size(value)} tmpfs"
    return f"{name}={value}"
