"""Shared core of the Moovago connectors: schema file, HTTP client, rate governor, errors.

No Singer code lives here: the tap, the target, the sandbox and the schema tools all build on it.
"""

from importlib.metadata import PackageNotFoundError, version

try:  # one place holds the version: pyproject.toml, read back from the installed distribution
    __version__ = version("moovago-connectors")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
