"""Settings from a TOML file: ``ukernel run --config FILE`` and ``ukernel.run(..., config=FILE)``.

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
from typing import Any

NOT_IN_FILES = {"console"}  # a callable: only from Python


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """The settings in ``path``, as keywords for ``ukernel.run``; ValueError if the file is wrong."""
    from .kernel import Config

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
