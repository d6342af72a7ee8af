"""The Singer SDK's standard tap tests, against the shared sandbox."""

from __future__ import annotations

from singer_sdk.testing import get_tap_test_class

from moovago_sandbox.testing import shared_sandbox
from tap_moovago.tap import TapMoovago
from tests.tap.helpers import tap_config

# The class is built at import, so the sandbox starts here (once per test process).
TestTapMoovago = get_tap_test_class(TapMoovago, config=tap_config(shared_sandbox()))
