"""The engine against a plain bytearray model (see snapferry.testing.engine_machine)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from snapferry.testing.engine_machine import EngineMachine

EXAMPLES = int(os.environ.get("SNAPFERRY_MODEL_EXAMPLES", "40"))

TestEngineModel = EngineMachine.TestCase
TestEngineModel.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
