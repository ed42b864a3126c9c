"""Deployment, without basicsr: running the deployed network on inference runtimes (``runtime``), images and films
through it (``media``), and other tools' formats (``export``: .pth, .safetensors, ONNX, spandrel, int8). Needs
torch, numpy and OpenCV; the runtimes, PyAV and NNCF are optional."""
