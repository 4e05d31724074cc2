r"""LitData chunks whose rows are stored only as a trailing Arrow table.

When every sample is a dict of plain values (str, int, float, bool, bytes, nested dicts of
those) and pyarrow is installed at write time, recent litdata (0.2.76 here) writes no item bytes:
every item offset points at the end of the header, and the rows follow as an Arrow IPC
file (older writers: an IPC stream)::

    ┌───────────┬──────────────────────────────┬───────────────┬──────────────┬───────────┐
    │ num_items │ offsets[n + 1] (all = 4n+8)  │ Arrow IPC     │ ipc_len <u4  │ LDARW01\0 │
    └───────────┴──────────────────────────────┴───────────────┴──────────────┴───────────┘

Reading those rows needs pyarrow (imported only when such a chunk is met).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

ARROW_FOOTER_MAGIC = b"LDARW01\0"
"""The last 8 bytes of a chunk that carries an Arrow table of its rows."""

_IPC_FILE_MAGIC = b"ARROW1"


def rows_only_in_arrow(data: memoryview) -> bool:
    """Whether a chunk keeps its rows only in the Arrow footer (every item is empty)."""
    count = int(np.frombuffer(data, "<u4", count=1)[0])
    first, last = (int(v) for v in np.frombuffer(data, "<u4", count=count + 1, offset=4)[[0, -1]])
    return count > 0 and first == last and bytes(data[-8:]) == ARROW_FOOTER_MAGIC


def flatten_row(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": 2}`` -> ``{"a.b": 1, "c": 2}`` (litdata's leaf order)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten_row(value, name))
        else:
            out[name] = value
    return out


def arrow_rows(data: memoryview, chunk_name: str) -> list[dict[str, Any]]:
    """Decode a chunk's Arrow footer into flattened rows (see :func:`flatten_row`).

    Args:
        data: The whole chunk file.
        chunk_name: The chunk's name, for error messages.

    Raises:
        ImportError: pyarrow is not installed.
        ValueError: The footer is cut or not Arrow.
    """
    try:
        import pyarrow as pa
    except ImportError as exc:
        raise ImportError(
            f"chunk {chunk_name} stores its rows as an Arrow table (litdata does this for "
            f"dicts of plain values when pyarrow is installed); reading it needs pyarrow: "
            f"pip install pyarrow"
        ) from exc
    (ipc_len,) = struct.unpack_from("<I", data, len(data) - 12)
    start = len(data) - 12 - ipc_len
    if start < 0 or ipc_len == 0:
        raise ValueError(f"chunk {chunk_name}: Arrow footer of {ipc_len} bytes does not fit")
    ipc = data[start : start + ipc_len]
    source = pa.py_buffer(ipc)
    try:
        if bytes(ipc[:6]) == _IPC_FILE_MAGIC:
            table = pa.ipc.open_file(source).read_all()
        else:
            table = pa.ipc.open_stream(source).read_all()
    except pa.ArrowException as exc:
        raise ValueError(f"chunk {chunk_name}: unreadable Arrow footer ({exc})") from exc
    return [flatten_row(row) for row in table.to_pylist()]
