"""Event logs of experiments: OCEL 2.0-shaped Parquet tables, decision points, exports.

A consumer of the experiment core's event stream (:class:`EventLogRecorder`) turns what happens
in one experiment into an object-centric event log (events, objects, event-to-object and
object-to-object links with qualifiers) and a table of the agents' decision points.
``docs/eventlog.md`` describes every table, type and qualifier.
"""
