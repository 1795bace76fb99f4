"""Settings: ``Config`` (every keyword of ``ukernel.run`` and ``ukernel.boot``) and the
TOML file that ``ukernel run --config FILE`` and ``ukernel.run(..., config=FILE)`` read:

    cpus = 2
    memory = "128M"
    rpc_timeout = 2.0
    realtime = true                       # sleeps take wall time (docs/sched.md "Time")
    secret_file = "/etc/ukernel/secret"   # the secret itself never goes in this file
    tls = "keys"                          # TLS for tcp:// services: keys/ca.pem, keys/kernel.{pem,key}
    tls_name = "kernel"                   # whose keys/NAME.pem this end shows (serve: its --listen host)
    insecure = false                      # true: plain TCP allowed, on loopback only
    bin_dirs = ["progs"]                  # every progs/*.py as /bin/NAME
    host_files = ["notes.txt", "motd.txt:/etc/motd"]   # HOST[:GUEST]: /notes.txt, /etc/motd
    copy_process = "lab/fork.py:MyCopyProcess"          # the fork lab's walker

    [services]                            # a student's class in place of a built-in one
    pid = "student/pid.py:MyPid"          # or "package.module:Class"

    [remote]
    mm = "tcp://10.0.0.2:7001"
    vfs = "unix:/run/ukernel/vfs.sock"

    [fail]
    copy_mm = "ENOMEM"

    [files]
    "/etc/motd" = "hello\n"

Keys are the keywords of ``ukernel.run`` (``Config``'s fields); an unknown
key is an error naming it, so a typo does not pass silently. Text in
``stdin`` and ``[files]`` becomes bytes (UTF-8). Host paths (``bin_dirs``,
``host_files``, and the files in ``services``, ``sched`` and ``copy_process``)
are relative to the TOML file's directory, and so is ``tls``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services import SERVICES, replacement
from services.sched.classes import FAIR_CLASSES, load_class
from services.sched.service import DEFAULT_SETTINGS

from . import abi, plugin
from .kernel.choice import parse_schedule
from .kernel.fork import STEP_NAMES, CopyProcess
from .kernel.reincarnation import RESTORE, Policy
from .user.binfmt import userland_paths

if TYPE_CHECKING:
    from .ipc.tcp import Auth

THREAD_SIZE = 16 * 1024  # what one task costs in Linux's threads-max formula


NPROC_AT_LEAST_1 = "must be at least 1 (RLIMIT_NPROC: how many tasks may exist)"
MIN_MEMORY = 1 << 20  # room for init, a program and a tmpfs (half of it) that holds /bin's programs


def parse_size(size: int | str, name: str = "memory") -> int:
    """'64M' -> 67108864; ``name`` is the setting, for the message."""
    if isinstance(size, int) and not isinstance(size, bool):
        return size
    if not isinstance(size, str):
        raise ValueError(f"{name}: {size!r} is not a size (bytes, or a number with K, M or G: 64M)")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = size.strip().upper()
    number, scale = (text[:-1], units[text[-1]]) if text[-1:] in units else (text, 1)
    if not number.isdigit():
        raise ValueError(f"{name}: {size!r} is not a size (bytes, or a number with K, M or G: 64M)")
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
    terminal: int | None = None  # a host fd streamed into the console as its input comes (kernel/console.py)
    terminal_isatty: bool = False  # that fd is a terminal: read as keys come, its ~ escapes are ukernel's
    realtime: bool | None = None  # idle time follows the wall clock (docs/sched.md "Time"); None: at a terminal
    files: dict[str, bytes] = field(default_factory=dict)
    pid_max: int = abi.PID_MAX_DEFAULT
    max_threads: int = 0  # 0: Linux's formula from the memory size
    nproc: int = 0  # 0: max_threads / 2, as fork_init sets RLIMIT_NPROC
    console: Any = None  # a callable that sees console output as it is written
    trace: bool = True
    remote: dict[str, str] = field(default_factory=dict)  # service name -> tcp://HOST:PORT or unix:/PATH
    sched: str = "rr"  # the class of SCHED_OTHER tasks: cfs, rr, file.py:Class or package.module:Class (docs/sched.md)
    sched_settings: dict[str, int] = field(default_factory=dict)  # sched_latency, sched_min_granularity, ... in ticks
    secret_file: str | None = None  # the shared secret for remote services; None: $UKERNEL_SECRET
    tls: str | None = None  # a keys directory (ukernel keys): TLS 1.3 both ways for tcp:// services
    tls_name: str = ""  # whose certificate in ``tls`` this end shows; "": kernel (serve: its --listen host)
    insecure: bool = False  # allow plain TCP (the secret's handshake and MACs, no TLS) on loopback
    heartbeat: float = 1.0  # seconds between pings to each remote service
    restart: dict[str, Any] = field(
        default_factory=dict
    )  # service or "all" -> true or {limit, backoff_min, backoff_max}
    kill_service: str = ""  # SERVICE@N: the service dies after answering its Nth request (kernel/reincarnation.py)
    rpc_timeout: float = 5.0  # seconds of silence after which a remote service is lost (its calls: EIO)
    session_grace: float = 30.0  # ukernel serve: seconds a lost kernel's state waits for it (ipc/session.py)
    parallel_copy: bool = False  # send copy_process's and do_exit's independent steps at once (clone.py, exit.py)
    cpu_limit: float = 10.0  # host CPU seconds a task may run Python without a syscall (docs/limits.md); 0: none
    services: dict[str, Any] = field(default_factory=dict)  # slot -> a class, file.py:Class or module:Class
    copy_process: Any = None  # a CopyProcess subclass (or its spec) that copy_process walks COPY_STEPS with
    bin_dirs: list[str] = field(default_factory=list)  # host directories whose *.py go into /bin as /bin/NAME
    host_files: list[str] = field(default_factory=list)  # HOST[:GUEST] files to copy in (host_file says where)
    service_timeout: float = 0.0  # wall seconds a service's handler may take to answer (docs/limits.md); 0: any
    host_paths: dict[str, str] = field(default_factory=dict)  # guest path -> the host file it came from (messages)
    schedule: Any = (
        None  # a choice list (0,1,1 or a file of it) or a chooser: who runs at each choice point (kernel/choice.py)
    )

    def __post_init__(self) -> None:
        check_types(vars(self))
        self.memory = parse_size(self.memory)
        if self.memory < MIN_MEMORY:
            raise ValueError(f"memory: {format_size(self.memory)} is too small: at least {format_size(MIN_MEMORY)}")
        self.tmpfs_size = parse_size(self.tmpfs_size, "tmpfs_size") or self.memory // 2
        if self.cpus < 1:
            raise ValueError(f"cpus: must be at least 1 (a machine needs a CPU), not {self.cpus}")
        if self.pid_max < 2:
            raise ValueError(f"pid_max: must leave room for pid 1, not {self.pid_max}")
        try:
            load_class(self.sched)  # an unknown class is a ValueError now, not at boot
        except ValueError as exc:
            raise ValueError(f"sched: {exc}") from None
        unknown = sorted(set(self.sched_settings) - set(DEFAULT_SETTINGS))
        if unknown and self.sched in FAIR_CLASSES:  # (a class of one's own may take settings of its own)
            raise ValueError(
                f"sched_settings: {self.sched} takes no {', '.join(unknown)}; its settings: {', '.join(DEFAULT_SETTINGS)}"
            )
        if not self.max_threads:  # set_max_threads: RAM / (THREAD_SIZE * 8), at least 20
            self.max_threads = max(20, self.memory // (THREAD_SIZE * 8))
        if self.nproc < 0:
            raise ValueError(f"nproc: {NPROC_AT_LEAST_1}, not {self.nproc}")
        if not self.nproc:
            self.nproc = self.max_threads // 2
        if self.tls is not None and not isinstance(self.tls, str | os.PathLike):
            raise ValueError(f"tls: a keys directory (ukernel keys init DIR), not {self.tls!r}")
        elsewhere = sorted(set(self.remote) - set(SERVICES))
        if elsewhere:
            raise ValueError(f"remote: no service {', '.join(elsewhere)}; services are {' '.join(SERVICES)}")
        if not isinstance(self.cpu_limit, int | float) or not self.cpu_limit >= 0:
            raise ValueError(f"cpu_limit: seconds >= 0 (0: no limit), not {self.cpu_limit!r}")
        if not isinstance(self.service_timeout, int | float) or not self.service_timeout >= 0:
            raise ValueError(f"service_timeout: seconds >= 0 (0: no limit), not {self.service_timeout!r}")
        if not self.session_grace >= 0:
            raise ValueError(
                f"session_grace: seconds >= 0 (0: reclaim a lost kernel's state at once), not {self.session_grace!r}"
            )
        if self.realtime not in (None, True, False):
            raise ValueError(f"realtime: true, false or unset (on with a terminal), not {self.realtime!r}")
        self.schedule = parse_schedule(self.schedule)
        parse_fail(self.fail)  # a bad name or errno is a ValueError now, not at boot
        parse_restart(self.restart)
        parse_kill(self.kill_service)
        self.services = self._replacements()
        self.copy_process = copy_process_class(self.copy_process)
        self.files = install(self.bin_dirs, self.host_files) | self.files  # files= names its own paths: it wins
        self.host_paths = userland_paths() | host_names(self.bin_dirs, self.host_files) | self.host_paths

    def auth(self, urls: Mapping[str, str], name: str = "kernel") -> Auth:
        """The credentials for connections to or from ``urls`` (label -> address), loaded and
        checked (ipc/tcp.py Auth.load): ValueError, one line, for what they lack. ``name``:
        whose certificate in ``tls`` this end shows, unless tls_name says."""
        from .ipc.tcp import Auth

        return Auth.load(
            urls, secret_file=self.secret_file, tls_dir=self.tls, tls_name=self.tls_name or name, insecure=self.insecure
        )

    def remote_labels(self, prefix: str = "remote: ") -> dict[str, str]:
        """'remote: mm at tcp://...' -> its address: config.remote as ``auth`` takes it."""
        return {f"{prefix}{name} at {url}": url for name, url in self.remote.items()}

    @property
    def follows_wall(self) -> bool:
        """``realtime`` decided: unset, it is on when a person is at a terminal (a sleep there
        should take the time it says), off otherwise (a run is then the same for every seed)."""
        return self.terminal_isatty if self.realtime is None else self.realtime

    @property
    def student_code(self) -> bool:
        """True when the run plugs in code of the user's own (a service, the walker, a sched
        class from a file): its reports then show the messages before a fault (kernel/bug.py)."""
        return bool(self.services or self.copy_process or ":" in self.sched)

    def _replacements(self) -> dict[str, type]:
        """Config.services with each spec loaded and checked against its slot (services.replacement)."""
        if not isinstance(self.services, dict):
            raise ValueError(f"services: a table of service = class spec, not {self.services!r}")
        unknown = sorted(set(self.services) - set(SERVICES))
        if unknown:
            raise ValueError(f"services: no service {', '.join(unknown)}; services are {' '.join(SERVICES)}")
        classes = {slot: replacement(slot, spec) for slot, spec in self.services.items()}
        fields = {f.name for f in dataclasses.fields(self)}
        for slot, cls in classes.items():
            unknown = sorted(set(cls.takes) - fields)
            if unknown:
                raise ValueError(f"service {slot}: {cls.__name__}.takes names no setting {', '.join(unknown)}")
        return classes


#: The settings of one plain type, checked before use: a TOML file's ``cpus = "two"`` is a
#: one-line error, not a TypeError deep in a service. bool is refused where a number is meant.
TYPES: dict[str, tuple[type, ...]] = {
    "cpus": (int,),
    "seed": (int,),
    "pid_max": (int,),
    "max_threads": (int,),
    "nproc": (int,),
    "memory": (int, str),
    "tmpfs_size": (int, str),
    "heartbeat": (int, float),
    "rpc_timeout": (int, float),
    "session_grace": (int, float),
    "cpu_limit": (int, float),
    "service_timeout": (int, float),
    "trace": (bool,),
    "insecure": (bool,),
    "tls_name": (str,),
    "parallel_copy": (bool,),
    "sched": (str,),
    "fail": (dict,),
    "restart": (dict,),
    "kill_service": (str,),
    "files": (dict,),
    "remote": (dict,),
    "sched_settings": (dict,),
    "host_paths": (dict,),
}
TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a table"}


def check_types(settings: dict[str, Any]) -> None:
    """ValueError naming the first setting in ``settings`` whose value is not of its TYPES."""
    for name, value in settings.items():
        types = TYPES.get(name)
        if types is None or (isinstance(value, types) and (bool in types or not isinstance(value, bool))):
            continue
        wanted = " or ".join(TYPE_NAMES[t] for t in types)
        raise ValueError(f"{name}: must be {wanted}, not {value!r}")


def copy_process_class(spec: Any) -> type[CopyProcess] | None:
    """Config.copy_process loaded: None, or a subclass of kernel/fork.py's CopyProcess."""
    if spec is None:
        return None
    try:
        return plugin.load_subclass(spec, CopyProcess)
    except ValueError as exc:
        raise ValueError(f"copy_process: {exc}") from None


def guest_path(host: Path) -> str:
    """Where a host file goes when no GUEST is named: a program (.py) to /bin/NAME, where a
    bare name finds it; any other file to the root, /NAME."""
    return f"/bin/{host.stem}" if host.suffix == ".py" else f"/{host.name}"


def split_host_file(spec: str) -> tuple[str, str]:
    """'x.txt:/etc/x' -> ('x.txt', '/etc/x'); 'prog.py' -> ('prog.py', '/bin/prog') (guest_path)."""
    host, sep, guest = spec.rpartition(":")
    if not sep or not host or not guest.startswith("/"):
        host, guest = spec, guest_path(Path(spec))
    return host, guest


def host_file(spec: str) -> tuple[str, bytes]:
    """HOST[:GUEST] read from the host: (the guest path, the bytes); ValueError, one line, if it cannot be read."""
    host, guest = split_host_file(spec)
    return guest, read_host(Path(host))


def bin_dir(directory: str) -> dict[str, bytes]:
    """Every .py in ``directory`` as /bin/NAME (what ``ukernel run --bin DIR`` installs)."""
    path = Path(directory)
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        raise ValueError(_unreadable(path, exc)) from None
    return {guest_path(p): read_host(p) for p in entries if p.suffix == ".py" and p.is_file()}


def install(bin_dirs: list[str], host_files: list[str]) -> dict[str, bytes]:
    """The guest files that ``bin_dirs`` and ``host_files`` name, in that order (a later one wins)."""
    for name, value in (("bin_dirs", bin_dirs), ("host_files", host_files)):
        if isinstance(value, str) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"{name}: a list of host paths, not {value!r}")
    files: dict[str, bytes] = {}
    try:
        for directory in bin_dirs:
            files |= bin_dir(directory)
    except ValueError as exc:
        raise ValueError(f"bin_dirs: {exc}") from None
    try:
        files |= dict(host_file(spec) for spec in host_files)
    except ValueError as exc:
        raise ValueError(f"host_files: {exc}") from None
    return files


def host_names(bin_dirs: list[str], host_files: list[str]) -> dict[str, str]:
    """Where each program ``install`` copies in came from on the host (guest -> host), so a
    syntax error or a forgotten await names the file the student edits."""
    names = {guest_path(p): str(p) for d in bin_dirs for p in sorted(Path(d).glob("*.py"))}
    return names | {guest: host for host, guest in map(split_host_file, host_files)}


def read_host(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(_unreadable(path, exc)) from None


def _unreadable(path: Path, exc: OSError) -> str:
    """'progs: ENOENT: No such file or directory': the host's error as a person reads it."""
    return f"{path}: {abi.errno_name(exc.errno) if exc.errno else 'error'}: {exc.strerror or exc}"


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
            messages[int(number)] = _fail_errno(name, value)
        elif name in STEP_NAMES:
            steps[name] = _fail_errno(name, value)
        else:
            raise ValueError(f"fail: unknown step {name!r}; steps are {', '.join(STEP_NAMES)} or msg:N (N >= 1)")
    return steps, messages


def parse_restart(restart: dict[str, Any]) -> dict[str, Policy]:
    """``restart`` as service -> Policy: ``all`` is every service RS can restart; a table
    sets the policy's limit, backoff_min and backoff_max (seconds)."""
    policies: dict[str, Policy] = {}
    for name, value in restart.items():
        if name != "all" and name not in SERVICES:
            raise ValueError(f"restart: no service {name!r}; services are {' '.join(SERVICES)} or all")
        if name != "all" and name not in RESTORE:
            raise ValueError(
                f"restart: ENOSYS: {name} cannot be restarted yet (every task holds its handles and RS cannot "
                f"give them back); restartable: {' '.join(RESTORE)}"
            )
        if value is False:
            continue
        if value is not True and not isinstance(value, dict):
            raise ValueError(f"restart: {name}: true or a table of limit, backoff_min, backoff_max, not {value!r}")
        try:
            policy = Policy(**value) if isinstance(value, dict) else Policy()
        except TypeError:
            raise ValueError(
                f"restart: {name}: a policy takes limit, backoff_min, backoff_max, not {value!r}"
            ) from None
        if not (isinstance(policy.limit, int) and policy.limit >= 0 and 0 <= policy.backoff_min <= policy.backoff_max):
            raise ValueError(f"restart: {name}: limit >= 0 and 0 <= backoff_min <= backoff_max, not {value!r}")
        for one in RESTORE if name == "all" else [name]:
            policies[one] = policy
    return policies


def parse_kill(spec: str) -> dict[str, int]:
    """``SERVICE@N`` as {service: N}; empty: none."""
    if not spec:
        return {}
    name, _, nth = spec.partition("@")
    if name not in SERVICES or not nth.isdigit() or int(nth) < 1:
        raise ValueError(f"kill_service: SERVICE@N (N >= 1, a service of {' '.join(SERVICES)}), not {spec!r}")
    return {name: int(nth)}


def _fail_errno(step: str, value: int | str) -> int:
    try:
        return parse_errno(value)
    except ValueError as exc:
        raise ValueError(f"fail: {step}: {exc}") from None


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
    try:
        check_types(data)
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: {exc}") from None
    if isinstance(data.get("stdin"), str):
        data["stdin"] = data["stdin"].encode()
    if "files" in data:
        data["files"] = {k: v.encode() if isinstance(v, str) else v for k, v in data["files"].items()}
    return _relative_to(data, Path(path).parent)


def _relative_to(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """A TOML file's host paths made relative to its directory, not to where ukernel runs."""
    if isinstance(data.get("bin_dirs"), list):
        data["bin_dirs"] = [str(base / d) if isinstance(d, str) else d for d in data["bin_dirs"]]
    if isinstance(data.get("host_files"), list):
        data["host_files"] = [
            _host_file_at(base, spec) if isinstance(spec, str) else spec for spec in data["host_files"]
        ]
    if isinstance(data.get("services"), dict):
        data["services"] = {slot: plugin.relative_to(spec, base) for slot, spec in data["services"].items()}
    if isinstance(data.get("tls"), str):
        data["tls"] = str(base / data["tls"])
    for key in ("sched", "copy_process"):
        if key in data:
            data[key] = plugin.relative_to(data[key], base)
    return data


def _host_file_at(base: Path, spec: str) -> str:
    host, guest = split_host_file(spec)
    return f"{base / host}:{guest}"


def mismatch(service: str, theirs: dict[str, Any], ours: dict[str, Any]) -> str | None:
    """Why a remote ``service`` that runs with ``theirs`` cannot serve a run that asks for
    ``ours`` (services.settings_of of both): one line naming the first setting that differs.
    ``class`` is there only for a replacement, so either side may be the one that has it."""
    for name in dict.fromkeys([*ours, *(["class"] if "class" in theirs else [])]):
        if theirs.get(name) != ours.get(name):
            how = "the same --service" if name == "class" else "the settings of the run"
            return (
                f"remote {service} runs {_setting(name, theirs.get(name))}, this run asks for "
                f"{_setting(name, ours.get(name))}: serve {service} with {how}"
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
    if name == "class":
        return f"the class {value}" if value else "the built-in class"
    return f"{name}={value}"
