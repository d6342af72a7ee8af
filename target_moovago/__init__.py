"""target-moovago: duplicate-safe upsert of Singer records into Moovago.

The modules, in the order a row passes through them:

- `target.py`: the Singer target; every setting (declared once), the field-policy check at
  start, STATE (emitted only after the rows it covers settle), the order of drains, signals.
- `reader.py`: the Singer input, line by line; a broken line is one fatal error naming it.
- `sinks.py`: one stream's sink, wiring the SDK to the row's path below, and the `Run` every
  sink shares (settings parsed once, stop and finish).
- `index.py`: a row and a record as data (pure): values, warehouse row to mutation input,
  match keys, the remote records by id and key.
- `decide.py`: pure decisions of create/update/delete/unchanged/reject, input validation, pending
  ids.
- `remote.py`: the remote side of a run (schema, client, entities, match keys, index reads) and
  the schema file's checks at start.
- `runlock.py`: one run per account on this machine, and the business-hours gate.
- `writer.py`: one stream's batches: aliased requests, several in flight, the request-size
  rule, splitting, reconciliation after an ambiguous failure or a kill, confirm or undo each row.
- `ledger.py`: the run's accounting (rejects, summary, progress, the change log and its
  journal) and the errors that end it.
- `revert.py`: `moovago-revert`, putting a change log back through a run of the target.
"""
