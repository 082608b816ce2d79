"""One tournament's event log on disk: a folder of Parquet files, written whole or not at all.

The tables travel from a Ray worker to the driver as Arrow tables; the driver, which mostly
waits on the workers, encodes them as Parquet (:func:`to_parquet`) and writes them
(:func:`write_log`) into a temporary folder renamed into place, so a folder that exists holds a
complete log. :func:`read_log` checks that before anyone trusts it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from arena_rl.eventlog.schema import TABLES

REPETITIVE = frozenset(
    {"ocel_type", "ocel_qualifier", "arm", "agent", "outcome", "code", "ocel_time"}
)
"""Columns with few distinct values (user events happen at one minute per kind and day)."""


def to_parquet(tables: Mapping[str, pa.Table]) -> dict[str, bytes]:
    """Each table as the bytes of a Parquet file, written for speed: columns with few values as
    a dictionary (columns already coded are written as they are; ids are unique, and trying
    costs time), other integer columns delta-encoded, and no column statistics (they took half
    the writing time, and these files are read whole)."""
    files = {}
    for stem, table in tables.items():
        coded = [
            f.name for f in table.schema if f.name in REPETITIVE or pa.types.is_dictionary(f.type)
        ]
        deltas = {
            f.name: "DELTA_BINARY_PACKED"
            for f in table.schema
            if pa.types.is_integer(f.type) and f.name not in coded
        }
        sink = pa.BufferOutputStream()
        pq.write_table(
            table, sink, compression="snappy", use_dictionary=coded, column_encoding=deltas,
            write_statistics=False,
        )  # fmt: skip
        files[f"{stem}.parquet"] = sink.getvalue().to_pybytes()
    return files


def write_log(folder: Path, files: Mapping[str, bytes]) -> Path:
    """Write a log's files into ``folder`` atomically (a crash leaves no partial folder): into a
    sibling temporary folder first, then renamed; an older log in ``folder`` is replaced."""
    missing = sorted(f"{stem}.parquet" for stem in TABLES if f"{stem}.parquet" not in files)
    if missing:
        raise ValueError(f"an event log needs every table; missing {', '.join(missing)}")
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def read_log(folder: str | Path, stems: Iterable[str] = TABLES) -> dict[str, pa.Table]:
    """A log folder's tables (all, or ``stems``), each checked against its schema; a missing
    or foreign file is an error that names it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no event log folder at {folder}")
    tables = {}
    for stem in stems:
        schema = TABLES[stem]
        path = folder / f"{stem}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{folder} is not a complete event log: {path.name} is missing")
        table = pq.read_table(path)
        head = pa.schema(list(table.schema)[: len(schema)])
        if not head.equals(schema) or (stem != "decisions" and len(table.schema) != len(schema)):
            wrong = [
                f"{f.name} ({table.schema.field(f.name).type}, not {f.type})"
                if f.name in table.schema.names
                else f"{f.name} (missing)"
                for f in schema
                if f.name not in table.schema.names or table.schema.field(f.name).type != f.type
            ]
            extra = [n for n in table.schema.names[len(schema) :] if stem != "decisions"]
            raise ValueError(
                f"{path} does not have the event log's {stem} columns: "
                + "; ".join(wrong + [f"{n} (not expected)" for n in extra])
                + " (written by another version of arena_rl?)"
            )
        tables[stem] = table
    return tables
