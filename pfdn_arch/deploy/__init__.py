"""Deployment, without basicsr: running the deployed network on inference runtimes (``runtime``), images and films
through it (``media``), and other tools' formats (``export``: .pth, .safetensors, ONNX, spandrel, int8). Needs
torch, numpy and OpenCV; the runtimes, PyAV and NNCF are optional.

Every use of OpenVINO and NNCF is below this package, so its import is where their usage telemetry is switched off
for the process (``telemetry``), before either can be imported.
"""
from . import telemetry

telemetry.off()
