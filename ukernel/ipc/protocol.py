"""The message envelope: MessagePack-RPC, also between services in one process.

    request       [0, msgid, "service.op", [args, meta]]
    response      [1, msgid, error, result]
    notification  [2, "service.op", [args, meta]]

``args`` is a map of keyword arguments, ``meta`` a map with ``cause`` (the
msgid that led to this message), ``pid``/``tid`` of the acting task. An error
is ``{"errno": 22, "name": "EINVAL", "message": "..."}``. Encoding every
message, even in one process, is what keeps services from sharing objects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .. import abi
from ..reprs import bounded

REQUEST, RESPONSE, NOTIFY = 0, 1, 2


class ProtocolError(Exception):
    """A frame that is not a MessagePack-RPC message."""


@dataclass(slots=True)
class Request:
    msgid: int
    service: str
    op: str
    args: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Response:
    msgid: int
    error: dict[str, Any] | None
    result: Any


@dataclass(slots=True)
class Notification:
    service: str
    op: str
    args: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


Message = Request | Response | Notification


class _Packers(threading.local):
    """One msgpack Packer per thread: ``Packer.pack`` costs half of ``packb``, which makes a
    Packer per call; per thread, as a Packer's buffer is not shared safely (a kernel may run
    in any thread, api.py). A failed pack resets the buffer: the next one starts clean."""

    def __init__(self) -> None:
        self.pack = msgpack.Packer(use_bin_type=True).pack


_packers = _Packers()


def packer() -> Callable[[Any], bytes]:
    """This thread's ``Packer.pack`` (the router keeps its own: no thread-local per message)."""
    return _packers.pack


def encode_request(msgid: int, method: str, args: dict, meta: dict) -> bytes:
    return _packers.pack([REQUEST, msgid, method, [args, meta]])


def encode_response(msgid: int, error: dict | None, result: Any, meta: dict | None = None) -> bytes:
    """``meta``: the reply meta a request asked for (``footprint`` for explore), a fifth element."""
    if meta is not None:
        return _packers.pack([RESPONSE, msgid, error, result, meta])
    return _packers.pack([RESPONSE, msgid, error, result])


def encode_notification(method: str, args: dict, meta: dict) -> bytes:
    return _packers.pack([NOTIFY, method, [args, meta]])


def error_map(err: int, message: str) -> dict[str, Any]:
    return {"errno": err, "name": abi.errno_name(err), "message": message}


def error_from_exception(exc: OSError) -> dict[str, Any]:
    """What an OSError raised by a handler looks like on the wire."""
    err = exc.errno or abi.EIO
    message = exc.strerror or abi.strerror(err)
    return error_map(err, message)


def oserror_from_map(error: dict[str, Any]) -> OSError:
    """The OSError a caller sees for an error reply (the inverse of error_map)."""
    err = int(error.get("errno", abi.EIO))
    return OSError(err, abi.named(err, str(error.get("message") or "")))  # a foreign service's text too


def _split_method(method: Any) -> tuple[str, str]:
    if not isinstance(method, str) or "." not in method:
        raise ProtocolError(f"method must be 'service.op', got {bounded(method)}")
    service, op = method.split(".", 1)
    return service, op


def _split_params(params: Any) -> tuple[dict, dict]:
    """[args, meta]; a bare map or a positional list is accepted as args."""
    if isinstance(params, list) and len(params) == 2 and isinstance(params[0], dict):
        args, meta = params
        return args, meta if isinstance(meta, dict) else {}
    if isinstance(params, dict):
        return params, {}
    raise ProtocolError(f"params must be [args, meta] with args a map, got {bounded(params)}")


def decode(frame: bytes) -> Message:
    """Decode one frame; ProtocolError names what is wrong with it."""
    return decode_obj(unpack(frame))


def unpack(frame: bytes) -> Any:
    """The msgpack object of one frame; ProtocolError if it is not msgpack."""
    try:
        return msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"not msgpack: {exc}") from None


def decode_obj(obj: Any) -> Message:
    if not isinstance(obj, list) or not obj:
        raise ProtocolError(f"a message is a non-empty array, got {type(obj).__name__}")
    kind = obj[0]
    if kind == REQUEST and len(obj) == 4:
        if not isinstance(obj[1], int):
            raise ProtocolError("msgid must be an integer")
        service, op = _split_method(obj[2])
        args, meta = _split_params(obj[3])
        return Request(obj[1], service, op, args, meta)
    if kind == RESPONSE and len(obj) in (4, 5):  # (a fifth: the reply meta, Router.reply_meta)
        if obj[2] is not None and not isinstance(obj[2], dict):
            raise ProtocolError("error must be nil or a map")
        return Response(obj[1], obj[2], obj[3])
    if kind == NOTIFY and len(obj) == 3:
        service, op = _split_method(obj[1])
        args, meta = _split_params(obj[2])
        return Notification(service, op, args, meta)
    raise ProtocolError(f"unknown message type or length: {bounded(obj[:2])}")


def msgid_of(frame: bytes) -> int | None:
    """Best effort: the msgid of a request we could not fully decode."""
    try:
        obj = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception:
        return None
    return request_msgid_of(obj)


def request_msgid_of(obj: Any) -> int | None:
    """The msgid of a decoded object that looks like a request, else None."""
    if isinstance(obj, list) and len(obj) >= 2 and obj[0] == REQUEST and isinstance(obj[1], int):
        return obj[1]
    return None
