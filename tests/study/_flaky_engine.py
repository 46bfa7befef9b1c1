"""A test engine whose first worker process dies (kept apart so spawned workers import little)."""

from __future__ import annotations

import os

from study.engines.onnxruntime import OnnxRuntimeEngine


class FlakyEngine(OnnxRuntimeEngine):
    """Dies on its first timed window in the first process that finds no file ``$FLAKY_FLAG``
    (creating it), like an engine that crashes once; every later process runs normally."""

    name = "flaky"

    def window(self, inputs, seconds):
        flag = os.environ["FLAKY_FLAG"]
        if not os.path.exists(flag):
            open(flag, "w").close()
            os._exit(1)
        return super().window(inputs, seconds)
