"""Shared core of the Moovago connectors: schema file, HTTP client, rate governor, errors.

No Singer code lives here: the tap, the target, the sandbox and the schema tools all build on it.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
