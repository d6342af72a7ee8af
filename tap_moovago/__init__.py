"""tap-moovago: extract Moovago entities as Singer streams."""
