"""The record of how an int8 model was made and what it loses: read from the JSON written beside a model file, or
from a QAT checkpoint's ``'int8'`` entry; and the versions of the packages that made it."""
import importlib.metadata
import json
import os
from typing import Optional

from ....files.atomic import read_json

PACKAGES = ('nncf', 'openvino', 'onnx', 'onnxruntime', 'torch', 'pfdn')


def file_record(model_path: str) -> Optional[dict]:
    """The record written beside an int8 model (``<name>.json``), or None."""
    path = os.path.splitext(model_path)[0] + '.json'
    return read_json(path) if os.path.isfile(path) else None


def state_record(state: dict) -> dict:
    """The record a QAT checkpoint's ``'int8'`` entry holds (JSON text)."""
    return json.loads(state.get('record') or '{}')


def versions() -> dict:
    """{distribution: version} of the packages an int8 model depends on, those installed."""
    out = {}
    for dist in PACKAGES:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out
