"""moovago_sandbox: a local Moovago-compatible GraphQL server generated from a schema file.

It behaves the way Moovago's getting-started page says Moovago behaves, so the tap and the
target are tested against the same rules they meet in production, without a key or a network:

    moovago-sandbox serve --port 0 --companies 200 --api-key demo-key
    # first line: moovago-sandbox listening on http://127.0.0.1:PORT/graphql api_key=... team_id=...

- `POST /graphql`, the key in a header (`--api-key-header`, default X-API-KEY); several
  `--api-key KEY[:TEAM]`, each bound to a team that never sees another team's rows.
- Errors in a 200 with `errors` (a bad key gets the page's exact error), introspection refused,
  429 above `--rate-limit` requests in any rolling second per key (`--retry-after` optional).
- Seeded French data (Faker fr_FR): teams and members, companies, contacts, mandators,
  monthly turnovers; SQLite in memory or `--db FILE`.
- Faults for reliability tests (`--faults PROFILE` or `--fault-*` flags, seeded): 5xx, 429
  bursts, latency, dropped connections, partial errors, commit-then-fail.
- Control endpoints: `GET /_sandbox/stats`, `POST /_sandbox/reset`, `GET /_sandbox/export`,
  `GET /_sandbox/requests`.

Everything it serves comes from the SDL it is given (`--schema FILE`, the bundled one by
default): entities, paging shapes, filters, mutation layouts and payloads, seed values valid
for every field's type. Server modes imitate servers that differ (`--max-page-size`,
`--ignore-limit`, `--unstable-order`, `--fault-churn`, `--no-date-header`, `--clock-offset`,
`--latency-read/--latency-mutation/--latency-jitter`, `--max-body-bytes`).

Modules: `cli` (command line), `app` (HTTP server, auth, limits, faults, statistics),
`responses` (body decoding, JSON answers), `model` (what the SDL declares: entities, lists,
paging) and `writes` (its mutations), `engine` (schema built once, document cache),
`resolvers` (team, lists in every paging shape, mutations), `fastpath` (plain lists as JSON
printed by SQLite), `store` (SQLite, one transaction per write), `seed` and `values` (generated
data checked against the file's types), `scalars`, `faults` (faults, modes, churn),
`ratelimit`, `testing` (start it from tests).
"""
