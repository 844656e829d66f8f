"""Errors of the rasd retrieval service."""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Error codes: below 256 they come from the server (docs/protocol.md), above from the client."""

    MALFORMED_FRAME = 1
    FRAME_TOO_LARGE = 2
    UNSUPPORTED_VERSION = 3
    HANDSHAKE_REQUIRED = 4
    TOO_MANY_CONNECTIONS = 5
    UNKNOWN_MESSAGE_TYPE = 16
    MALFORMED_REQUEST = 17
    UNKNOWN_DATASTORE = 18
    TOKEN_OUT_OF_RANGE = 19
    INVALID_PARAMETERS = 20
    INVALID_TREE = 21
    RELOAD_FAILED = 22
    SERVER_FAILURE = 23
    CANNOT_CONNECT = 256
    DISCONNECTED = 257
    TIMED_OUT = 258
    INVALID_REPLY = 259
    REQUEST_TOO_LARGE = 260

    @property
    def closes_connection(self) -> bool:
        """True when the server closes the connection after this error."""
        return 1 <= self.value < 16


_HINTS = {
    ErrorCode.FRAME_TOO_LARGE: "send smaller requests, or start the server with a larger --max-frame-bytes",
    ErrorCode.REQUEST_TOO_LARGE: "send smaller requests, or start the server with a larger --max-frame-bytes",
    ErrorCode.UNSUPPORTED_VERSION: "use a client and server of the same protocol major version",
    ErrorCode.TOO_MANY_CONNECTIONS: "close idle connections, or start the server with a larger --max-connections",
    ErrorCode.UNKNOWN_MESSAGE_TYPE: "this server is older than the client; upgrade the server",
    ErrorCode.UNKNOWN_DATASTORE: "list the open datastores with client.datastores() or `rasd-index stats --socket ...`",
    ErrorCode.TOKEN_OUT_OF_RANGE: "token ids must be below the datastore's vocabulary size; use the datastore's tokenizer",
    ErrorCode.INVALID_PARAMETERS: "see the limits in docs/protocol.md",
    ErrorCode.INVALID_TREE: "pass parents before children, probabilities in [0, 1], and a layout exactly as fuse() returned it",
    ErrorCode.RELOAD_FAILED: "the previous version keeps serving; fix or rebuild the datastore and reload again",
    ErrorCode.SERVER_FAILURE: "the server's log has details; `rasd-index verify` checks a datastore",
    ErrorCode.CANNOT_CONNECT: "start the daemon with `rasd-index serve --socket ...`; check the path and its permissions",
    ErrorCode.DISCONNECTED: "the server closed the connection (it stopped or dropped a slow client); make a new client",
    ErrorCode.TIMED_OUT: "the server is overloaded or stuck; retry, or raise the client's timeout",
}


class ServiceError(Exception):
    """An error reply from the daemon, or a failure to reach it.

    ``code`` is an :class:`ErrorCode` (or a plain int for codes newer than this client);
    ``message`` names the input at fault. ``str(error)`` adds what to do about it.
    """

    def __init__(self, code: int, message: str) -> None:
        try:
            self.code: int = ErrorCode(code)
        except ValueError:
            self.code = code
        self.message = message
        hint = _HINTS.get(self.code)  # type: ignore[call-overload]
        super().__init__(f"{message} ({hint})" if hint else message)

    @property
    def name(self) -> str:
        """The code's snake-case name, as in the server's stats (``"unknown_datastore"``)."""
        return self.code.name.lower() if isinstance(self.code, ErrorCode) else f"code_{self.code}"

    @property
    def closes_connection(self) -> bool:
        """True when the connection is unusable after this error."""
        return isinstance(self.code, ErrorCode) and (self.code.closes_connection or self.code >= 256)
