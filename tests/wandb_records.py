"""Read the records of a W&B offline run file (``run-<id>.wandb``) to check what was logged.

The file is W&B's 7-byte header followed by a LevelDB-style log: 32 KiB blocks of chunks, each with a
4-byte checksum, 2-byte length and 1-byte type (full / first / middle / last), holding ``Record`` protos.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[pb.Record]:
    data = Path(path).read_bytes()
    if not data.startswith(b":W&B"):
        raise ValueError(f"{path} is not a W&B run file")
    records, pending, pos = [], b"", HEADER
    while pos + 7 <= len(data):
        space = BLOCK - pos % BLOCK
        if space < 7:  # block trailer padding
            pos += space
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            pending = chunk
        elif kind == FIRST:
            pending = chunk
            continue
        elif kind == MIDDLE:
            pending += chunk
            continue
        elif kind == LAST:
            pending += chunk
        else:
            break
        record = pb.Record()
        record.ParseFromString(pending)
        records.append(record)
        pending = b""
    return records


def offline_run_file(run_dir: Path) -> Path:
    files = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    if len(files) != 1:
        raise AssertionError(f"expected one offline W&B run under {run_dir}, found {files}")
    return files[0]


def _items(items) -> dict:
    """W&B key/value items (``key`` or ``nested_key`` with a JSON value) as a flat dict."""
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def history(records) -> list[dict]:
    return [_items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]


def summary(records) -> dict:
    out = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            out.update(_items(record.summary.update))
    return out


def config(records) -> dict:
    """The run's config: what wandb.init received and every later config update."""
    out = {}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out.update(_items(record.run.config.update))
        elif kind == "config":
            out.update(_items(record.config.update))
    return out


def artifacts(records) -> list:
    return [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
