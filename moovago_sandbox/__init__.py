"""moovago_sandbox: a local Moovago-compatible GraphQL server built from the bundled schema."""
