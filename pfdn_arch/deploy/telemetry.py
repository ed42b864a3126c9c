"""No usage data leaves a process that runs this package's deployment side.

OpenVINO sends usage telemetry to Google Analytics from ``import openvino`` (its model converter, ``openvino.tools.ovc``,
counts a missing consent file as consent and starts a sender), and NNCF from its own import, both through the package
``openvino_telemetry``; CI=true in the environment quiets them, which no user's machine sets. Both ship a stub of their
own for when that package cannot be imported and then send nothing (OpenVINO's ``telemetry_stub``, NNCF's
``NNCFTelemetryStub``). ``off`` makes it so for this process, by Python's own rule that a ``None`` in ``sys.modules``
makes an import fail, before either is imported (``deploy/__init__.py``); the user's own consent file, and other
processes, are left as they are. docs/inference.md says so.
"""
import sys
from typing import Any, cast

PACKAGE = 'openvino_telemetry'


def off() -> None:
    """OpenVINO and NNCF find no telemetry package in this process (nothing done where one was already imported:
    what it sent was not on this package's behalf)."""
    sys.modules.setdefault(PACKAGE, cast(Any, None))  # typeshed types sys.modules' values as modules only
