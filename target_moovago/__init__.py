"""target-moovago: duplicate-safe upsert of Singer records into Moovago."""
