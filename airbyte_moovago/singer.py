"""Running tap-moovago and target-moovago as child processes, whose output the adapters map.

Each connector runs exactly as it does under Meltano (same code, same settings, same STATE
rules), so the adapters only translate messages and never re-implement a read or a write.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any

from airbyte_moovago.protocol import scrub

TAP = [sys.executable, "-c", "from tap_moovago.tap import TapMoovago; TapMoovago.cli()"]
TARGET = [
    sys.executable,
    "-c",
    "from target_moovago.target import TargetMoovago; TargetMoovago.cli()",
]


#: The SDK's closing line after the validation errors it names.
GENERIC_ERROR = "Config validation failed"


class StderrRelay(threading.Thread):
    """Copies a child's stderr to ours line by line and keeps its error lines."""

    def __init__(self, stream: IO[str], config: Mapping[str, Any]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.config = config
        self.errors: list[str] = []

    def run(self) -> None:
        for line in self.stream:
            sys.stderr.write(line)
            text = line.rstrip("\n")
            if " | ERROR " in text or ": error: " in text:
                # "time | ERROR | plugin | message": keep the message part.
                message = scrub(text.rsplit(" | ", 1)[-1].strip(), self.config)
                if message not in self.errors:
                    self.errors.append(message)
        sys.stderr.flush()

    @property
    def last_error(self) -> str | None:
        """The child's error lines in one (the SDK's closing summary only when alone)."""
        specific = [e for e in self.errors if e != GENERIC_ERROR] or self.errors
        return "; ".join(specific[-3:]) or None


def start(
    command: Sequence[str], args: Sequence[str], *, stdin: int | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*command, *args],
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        bufsize=1,
    )


def run_captured(
    command: Sequence[str], args: Sequence[str], config: Mapping[str, Any]
) -> tuple[int, str, str | None]:
    """Run to the end: exit code, stdout, last error line of stderr (stderr is relayed)."""
    proc = start(command, args)
    assert proc.stdout is not None  # Popen made both pipes
    assert proc.stderr is not None
    relay = StderrRelay(proc.stderr, config)
    relay.start()
    out = proc.stdout.read()
    code = proc.wait()
    relay.join()
    return code, out, relay.last_error
