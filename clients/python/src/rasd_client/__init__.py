"""Python client of the rasd retrieval daemon (``rasd-index serve``).

Standard library only. See ``RetrievalClient`` and the README in ``clients/python``.
"""

from .client import PROTOCOL_MAJOR, PROTOCOL_MINOR, RetrievalClient
from .errors import ErrorCode, ServiceError
from .types import (
    SOURCE_CONTEXT,
    SOURCE_DATASTORE,
    SOURCE_DRAFT,
    Acceptance,
    DatastoreInfo,
    FusedTree,
    RetrievalResult,
    ServerInfo,
    TreeLayout,
)

__all__ = [
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "RetrievalClient",
    "ErrorCode",
    "ServiceError",
    "Acceptance",
    "DatastoreInfo",
    "FusedTree",
    "RetrievalResult",
    "ServerInfo",
    "TreeLayout",
    "SOURCE_DRAFT",
    "SOURCE_DATASTORE",
    "SOURCE_CONTEXT",
]

__version__ = "0.1.0"
