"""`moovago-schema`: the schema file tools, above the core, the tap and the target.

`deprecations`, `diff` and `check` read schema files, catalogs and configs offline; `doctor`
checks what the connectors assume against the live API, read-only.
"""
