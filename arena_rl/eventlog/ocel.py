"""Export one tournament's event log to the OCEL 2.0 standard: SQLite and JSON.

Process-mining tools that take OCEL 2.0 (pm4py, OCPA, Ocelot, commercial ones) read them. They are
written with pyarrow and sqlite3 only, column-wise: pm4py is AGPL and heavy, so the library
never imports it (the tests read the files back with pm4py's own readers).

What the standard needs that the Parquet tables do not say:

* ids are text: an event's number is written as its decimal digits;
* times are UTC without an offset in SQLite (``2026-01-03 12:01:00``, as the standard's own
  example database) and with ``Z`` in JSON (``2026-01-03T12:01:00Z``);
* an object's attributes are values from the start: OCEL 2.0 times them at the epoch
  (:data:`INITIAL_TIME`), with a null ``ocel_changed_field``;
* each event or object type declares only the attributes it uses (non-null somewhere).

Both writers write into a temporary file beside the target and rename it into place, so a
file at the target path is always complete.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TextIO, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from arena_rl.eventlog.files import read_log

LogSource: TypeAlias = Mapping[str, pa.Table] | str | os.PathLike[str]
"""A log's tables (as :meth:`EventLogRecorder.tables` returns them) or its folder."""

OCEL_TABLES = ("events", "objects", "event_objects", "object_objects")

INITIAL_TIME = datetime(1970, 1, 1)
"""OCEL 2.0's time for an object attribute's value from the start (not a later change)."""

BATCH_ROWS = 100_000
"""Rows converted and written at a time: bounds the memory a log of millions of events takes."""

SQLITE_TIME = "%Y-%m-%d %H:%M:%S"
JSON_TIME = "%Y-%m-%dT%H:%M:%SZ"


# ---- the log's tables ---------------------------------------------------------------------


def load_tables(source: LogSource) -> dict[str, pa.Table]:
    """The log's tables, from a mapping or a log folder; the four OCEL tables must be there."""
    tables = dict(source) if isinstance(source, Mapping) else read_log(Path(source))
    missing = [stem for stem in OCEL_TABLES if stem not in tables]
    if missing:
        raise ValueError(f"an OCEL export needs the tables {OCEL_TABLES}; missing {missing}")
    return tables


def decoded(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """The column with dictionary-coded text as plain text (chunks may carry different
    dictionaries, which grouping and joining cannot mix)."""
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def as_text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """A column of ids, types or names as plain text, the way OCEL stores them (dictionaries
    decoded, an event's number as its digits)."""
    return decoded(column).cast(pa.string())


def attribute_names(table: pa.Table) -> list[str]:
    """The table's attribute columns: all but OCEL's own ``ocel_`` columns."""
    return [name for name in table.column_names if not name.startswith("ocel_")]


def types_in_order(table: pa.Table) -> list[str]:
    """The table's types, in the order they first appear."""
    return [str(t) for t in pc.unique(as_text(table["ocel_type"])).to_pylist()]


def attributes_used(table: pa.Table) -> dict[str, list[str]]:
    """Type -> the attribute columns non-null in at least one row of that type."""
    names = attribute_names(table)
    present = pa.table(
        {"type": as_text(table["ocel_type"]), **{n: pc.is_valid(table[n]) for n in names}}
    )
    rows = present.group_by("type", use_threads=False).aggregate([(n, "any") for n in names])
    used = {str(r["type"]): [n for n in names if r[f"{n}_any"]] for r in rows.to_pylist()}
    return {t: used[t] for t in types_in_order(table)}


def type_table_names(types: Sequence[str]) -> dict[str, str]:
    """Type -> a safe, distinct name for its table (``update requested`` -> ``UpdateRequested``,
    ``7-day streak`` -> ``7DayStreak``), as the standard's examples name theirs."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for kind in types:
        words = [w for w in re.split(r"[^0-9A-Za-z]+", kind) if w]
        base = "".join(w[0].upper() + w[1:] for w in words) or "Type"
        name, n = base, 2
        while name.casefold() in taken:  # SQLite's table names ignore case
            name, n = f"{base}_{n}", n + 1
        taken.add(name.casefold())
        names[kind] = name
    return names


def iso_times(times: pa.ChunkedArray, pattern: str) -> pa.ChunkedArray:
    """Times as text: to the second, or with the microseconds where some time has them."""
    try:
        times = times.cast(pa.timestamp("s"))  # refuses to drop a fraction of a second
    except pa.ArrowInvalid:
        times = times.cast(pa.timestamp("us"))  # %S then writes the fraction
    return pc.strftime(times, format=pattern)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary file beside ``path``, renamed onto it when the block ends without error and
    deleted when it fails, so a file at ``path`` is never half written."""
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {target}: its folder {target.parent} does not exist")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # umask applies
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


# ---- SQLite -------------------------------------------------------------------------------


def write_ocel_sqlite(source: LogSource, path: str | os.PathLike[str]) -> Path:
    """Write the log as an OCEL 2.0 SQLite database: ``event``/``object`` with each id's type,
    ``event_map_type``/``object_map_type`` naming each type's table, one ``event_<Type>`` and
    ``object_<Type>`` table per type with its attributes, and the ``event_object`` and
    ``object_object`` links, with the standard's primary and foreign keys."""
    tables = load_tables(source)
    with atomic_path(path) as temporary:
        connection = sqlite3.connect(temporary)
        try:
            connection.execute("PRAGMA journal_mode = OFF")  # the rename is the commit
            connection.execute("PRAGMA synchronous = OFF")
            _write_sqlite(connection, tables)
            connection.commit()
        finally:
            connection.close()
    return Path(path)


def _write_sqlite(connection: sqlite3.Connection, tables: Mapping[str, pa.Table]) -> None:
    events, objects = tables["events"], tables["objects"]
    _write_index(connection, "event", events)
    _write_index(connection, "object", objects)
    _write_event_types(connection, events)
    _write_object_types(connection, objects)
    _write_links(connection, "event_object", tables["event_objects"],
                 {"ocel_event_id": "event", "ocel_object_id": "object"})  # fmt: skip
    _write_links(connection, "object_object", tables["object_objects"],
                 {"ocel_source_id": "object", "ocel_target_id": "object"})  # fmt: skip


def _write_index(connection: sqlite3.Connection, kind: str, table: pa.Table) -> None:
    """``event``/``object`` (each id's type) and ``<kind>_map_type`` (each type's table)."""
    names = type_table_names(types_in_order(table))
    _create(connection, f"{kind}_map_type", ["ocel_type TEXT", "ocel_type_map TEXT"],
            ["PRIMARY KEY (ocel_type)"])  # fmt: skip
    types = pa.table({"ocel_type": list(names), "ocel_type_map": list(names.values())})
    _insert(connection, f"{kind}_map_type", types)
    _create(connection, kind, ["ocel_id TEXT", "ocel_type TEXT"],
            ["PRIMARY KEY (ocel_id)",
             f"FOREIGN KEY (ocel_type) REFERENCES {kind}_map_type (ocel_type)"])  # fmt: skip
    _insert(connection, kind, _text_columns(table.select(["ocel_id", "ocel_type"])))


def _write_links(
    connection: sqlite3.Connection, name: str, links: pa.Table, refers: Mapping[str, str]
) -> None:
    """A link table: its id columns (each a foreign key to ``event`` or ``object``) and the
    qualifier, all three the primary key."""
    keys = [f"PRIMARY KEY ({', '.join(links.column_names)})"]
    keys += [f"FOREIGN KEY ({column}) REFERENCES {to} (ocel_id)" for column, to in refers.items()]
    _create(connection, name, [f"{column} TEXT" for column in links.column_names], keys)
    _insert(connection, name, _text_columns(links))


def _write_event_types(connection: sqlite3.Connection, events: pa.Table) -> None:
    """One ``event_<Type>`` table per event type: id, time and the attributes it uses."""
    kinds = as_text(events["ocel_type"])
    names = type_table_names(types_in_order(events))
    for kind, used in attributes_used(events).items():
        rows = events.filter(pc.equal(kinds, kind))
        table = f"event_{names[kind]}"
        columns = ["ocel_id TEXT", "ocel_time TIMESTAMP"]
        columns += [f'"{a}" {_sqlite_type(events.schema.field(a).type)}' for a in used]
        keys = ["PRIMARY KEY (ocel_id)", "FOREIGN KEY (ocel_id) REFERENCES event (ocel_id)"]
        _create(connection, table, columns, keys)
        values = {
            "ocel_id": as_text(rows["ocel_id"]),
            "ocel_time": iso_times(rows["ocel_time"], SQLITE_TIME),
        }
        _insert(connection, table, pa.table(values | {a: _sql_values(rows[a]) for a in used}))


def _write_object_types(connection: sqlite3.Connection, objects: pa.Table) -> None:
    """One ``object_<Type>`` table per object type: each object's attributes from the start
    (at :data:`INITIAL_TIME`, no changed field); the log records no later changes."""
    kinds = as_text(objects["ocel_type"])
    names = type_table_names(types_in_order(objects))
    initial = INITIAL_TIME.strftime(SQLITE_TIME)
    for kind, used in attributes_used(objects).items():
        rows = objects.filter(pc.equal(kinds, kind))
        table = f"object_{names[kind]}"
        columns = ["ocel_id TEXT", "ocel_time TIMESTAMP", "ocel_changed_field TEXT"]
        columns += [f'"{a}" {_sqlite_type(objects.schema.field(a).type)}' for a in used]
        _create(connection, table, columns, ["FOREIGN KEY (ocel_id) REFERENCES object (ocel_id)"])
        n = rows.num_rows
        values = {
            "ocel_id": as_text(rows["ocel_id"]),
            "ocel_time": pa.repeat(pa.scalar(initial), n),
            "ocel_changed_field": pa.nulls(n, pa.string()),
        }
        _insert(connection, table, pa.table(values | {a: _sql_values(rows[a]) for a in used}))


def _create(
    connection: sqlite3.Connection, table: str, columns: list[str], keys: list[str]
) -> None:
    connection.execute(f'CREATE TABLE "{table}" ({", ".join(columns + keys)})')


def _insert(connection: sqlite3.Connection, table: str, values: pa.Table) -> None:
    """Insert a table's rows a batch at a time, each column converted to Python in one go."""
    marks = ", ".join("?" * values.num_columns)
    sql = f'INSERT INTO "{table}" VALUES ({marks})'
    for batch in values.to_batches(max_chunksize=BATCH_ROWS):
        columns = [column.to_pylist() for column in batch.columns]
        connection.executemany(sql, zip(*columns, strict=True))


def _text_columns(table: pa.Table) -> pa.Table:
    return pa.table({name: as_text(table[name]) for name in table.column_names})


def _sql_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as SQLite stores it: text for dictionaries and times, numbers as they are."""
    column = decoded(column)
    if pa.types.is_timestamp(column.type):
        return iso_times(column, SQLITE_TIME)
    return column


def _sqlite_type(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return "INTEGER"
    if pa.types.is_floating(kind):
        return "REAL"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP"
    return "TEXT"


# ---- JSON ---------------------------------------------------------------------------------


def write_ocel_json(source: LogSource, path: str | os.PathLike[str]) -> Path:
    """Write the log as OCEL 2.0 JSON: ``objectTypes`` and ``eventTypes`` with their attributes'
    names and types, ``objects`` with attributes (``name``, ``time``, ``value``) and
    relationships (``objectId``, ``qualifier``), and ``events`` with ``time``, attributes and
    relationships. Each object and event is one line, built as text column-wise."""
    tables = load_tables(source)
    events, objects = tables["events"], tables["objects"]
    with atomic_path(path) as temporary, temporary.open("w", encoding="utf-8") as out:
        out.write('{"objectTypes": ' + json.dumps(_declared_types(objects)))
        out.write(',\n"eventTypes": ' + json.dumps(_declared_types(events)))
        out.write(',\n"objects": [\n')
        _write_lines(out, _object_lines(objects, tables["object_objects"]))
        out.write('\n],\n"events": [\n')
        _write_lines(out, _event_lines(events, tables["event_objects"]))
        out.write("\n]}\n")
    return Path(path)


def _declared_types(table: pa.Table) -> list[dict[str, object]]:
    """Each type with the attributes it uses and their OCEL types."""
    return [
        {
            "name": kind,
            "attributes": [
                {"name": a, "type": _json_type(table.schema.field(a).type)} for a in used
            ],
        }
        for kind, used in attributes_used(table).items()
    ]


def _json_type(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_floating(kind):
        return "float"
    if pa.types.is_timestamp(kind):
        return "time"
    return "string"


def _object_lines(objects: pa.Table, links: pa.Table) -> pa.ChunkedArray:
    initial = INITIAL_TIME.strftime(JSON_TIME)
    attributes = [
        _joined(
            f',{{"name":{json.dumps(a)},"time":"{initial}","value":', _json_values(objects[a]), "}"
        )
        for a in attribute_names(objects)
    ]
    object_ids = as_text(objects["ocel_id"])
    relationships = _grouped(
        as_text(links["ocel_source_id"]),
        _joined(
            '{"objectId":',
            _quoted(links["ocel_target_id"]),
            ',"qualifier":',
            _quoted(links["ocel_qualifier"]),
            "}",
        ),
        object_ids,
    )
    return _joined(
        '{"id":',
        _quoted(object_ids),
        ',"type":',
        _quoted(objects["ocel_type"]),
        ',"attributes":[',
        _listed(attributes),
        '],"relationships":[',
        relationships,
        "]}",
    )


def _event_lines(events: pa.Table, links: pa.Table) -> pa.ChunkedArray:
    attributes = [
        _joined(f',{{"name":{json.dumps(a)},"value":', _json_values(events[a]), "}")
        for a in attribute_names(events)
    ]
    event_ids = as_text(events["ocel_id"])
    relationships = _grouped(
        as_text(links["ocel_event_id"]),
        _joined(
            '{"objectId":',
            _quoted(links["ocel_object_id"]),
            ',"qualifier":',
            _quoted(links["ocel_qualifier"]),
            "}",
        ),
        event_ids,
    )
    return _joined(
        '{"id":',
        _quoted(event_ids),
        ',"type":',
        _quoted(events["ocel_type"]),
        ',"time":"',
        iso_times(events["ocel_time"], JSON_TIME),
        '","attributes":[',
        _listed(attributes),
        '],"relationships":[',
        relationships,
        "]}",
    )


def _write_lines(out: TextIO, lines: pa.ChunkedArray) -> None:
    """Write the lines separated by ``,\\n``, a batch joined by Arrow at a time."""
    separator = pa.scalar(",\n", pa.large_string())
    for start in range(0, len(lines), BATCH_ROWS):
        batch = lines.slice(start, BATCH_ROWS).combine_chunks()
        offsets = pa.array([0, len(batch)], pa.int64())
        joined = pc.binary_join(pa.LargeListArray.from_arrays(offsets, batch), separator)
        out.write((",\n" if start else "") + joined[0].as_py())


Text: TypeAlias = str | pa.Array | pa.ChunkedArray


def _large(part: Text) -> pa.Scalar | pa.ChunkedArray:
    if isinstance(part, str):
        return pa.scalar(part, pa.large_string())
    if isinstance(part, pa.Array):
        part = pa.chunked_array([part])
    return part.cast(pa.large_string())


def _joined(*parts: Text) -> pa.ChunkedArray:
    """The parts concatenated row by row (null where any part is null)."""
    return pc.binary_join_element_wise(*map(_large, parts), pa.scalar("", pa.large_string()))


def _listed(fragments: list[pa.ChunkedArray]) -> pa.ChunkedArray:
    """Fragments that each start with a comma (or are null), as one comma-separated list."""
    if not fragments:
        return pa.chunked_array([], pa.large_string())
    filled = [pc.fill_null(f, pa.scalar("", pa.large_string())) for f in fragments]
    return pc.utf8_ltrim(_joined(*filled), characters=",")


def _grouped(keys: pa.ChunkedArray, fragments: pa.ChunkedArray, rows: pa.ChunkedArray) -> pa.Array:
    """For each row id in ``rows``, its fragments (those whose key is that id) joined by commas;
    empty text for a row with none."""
    empty = pa.scalar("", pa.large_string())
    if len(keys) == 0:
        return pc.fill_null(pa.nulls(len(rows), pa.large_string()), empty)
    order = pc.sort_indices(keys)
    runs = pc.run_end_encode(keys.take(order).combine_chunks())
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), runs.run_ends.cast(pa.int64())])
    members = fragments.take(order).combine_chunks().cast(pa.large_string())
    lists = pa.LargeListArray.from_arrays(offsets, members)
    joined = pc.binary_join(lists, pa.scalar(",", pa.large_string()))
    position = pc.index_in(rows, value_set=runs.values)
    return pc.fill_null(joined.take(position.combine_chunks()), empty)


def _quoted(column: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Text as JSON strings (quoted, escaped), null stays null; a dictionary column is quoted
    once per distinct value."""
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    if not pa.types.is_dictionary(column.type):
        return pa.chunked_array([_quote(chunk) for chunk in column.chunks], pa.large_string())
    chunks = [
        pa.DictionaryArray.from_arrays(chunk.indices, _quote(chunk.dictionary)).cast(
            pa.large_string()
        )
        for chunk in column.chunks
    ]
    return pa.chunked_array(chunks, pa.large_string())


def _quote(text: pa.Array) -> pa.Array:
    escaped = pc.replace_substring(text.cast(pa.large_string()), "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    if pc.any(pc.match_substring_regex(escaped, r"[\x00-\x1f]")).as_py():
        for code in range(0x20):
            escaped = pc.replace_substring(escaped, chr(code), f"\\u{code:04x}")
    quote = pa.scalar('"', pa.large_string())
    return pc.binary_join_element_wise(quote, escaped, quote, pa.scalar("", pa.large_string()))


def _json_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Attribute values as JSON text: numbers bare (null where not finite: JSON has no NaN),
    booleans as true/false, times and text quoted."""
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if pa.types.is_floating(kind):
        finite = pc.if_else(pc.is_finite(column), column, pa.scalar(None, column.type))
        return finite.cast(pa.large_string())
    if pa.types.is_integer(kind):
        return column.cast(pa.large_string())
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "true", "false").cast(pa.large_string())
    if pa.types.is_timestamp(kind):
        return _quoted(iso_times(column, JSON_TIME))
    return _quoted(column)
