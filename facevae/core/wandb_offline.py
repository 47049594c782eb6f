"""Reading an offline W&B run's `.wandb` file without syncing it: which metrics and config it recorded.

W&B stores an offline run as a LevelDB-style log of protobuf `Record`s: a 7-byte file header, then 32 KiB blocks
of chunks, each with a 7-byte header (crc32, little-endian length, chunk type). Newer wandb releases dropped their
Python reader, so this is a small one for checks and sweep reports that need no network.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def iter_records(path: Path) -> Iterator:
    data = Path(path).read_bytes()
    if not data.startswith(b":W&B"):
        raise ValueError(f"{path}: not a W&B run file")
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # the tail of a block too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            break
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def run_contents(run_dir: Path) -> dict:
    """What an offline run directory recorded: {"history_keys": set, "summary": {key: value}, "config": {key: value},
    "run": {"id", "name", "group", "tags", "job_type"}, "exit_code": int or None (None: the run was never finished)}.
    """
    files = list(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb file")
    history, summary, config, run, exit_code = set(), {}, {}, {}, None
    for record in iter_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = _json(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                config[item.key or "/".join(item.nested_key)] = _json(item.value_json)
        elif kind == "run":
            r = record.run
            run = {"id": r.run_id, "name": r.display_name, "group": r.run_group, "tags": list(r.tags)}
            run["job_type"] = r.job_type
        elif kind == "exit":
            exit_code = record.exit.exit_code
    return {"history_keys": history, "summary": summary, "config": config, "run": run, "exit_code": exit_code}


def _json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text
