"""The ONNX exports the runtimes start from, kept between runs: ``basicsr infer`` of the same weights starts without
exporting again.

The export (PyTorch's TorchScript-based exporter) is most of a runtime's build: 1.85 s of OpenVINO's 2.1 s on a
2-core AMD EPYC (its compilation 0.19 s), on every ``infer`` of a folder, a film or one photo. A file here is named by
a digest of everything the graph is made from (the network's class, its structure and options, every weight's name,
shape and bytes, this package's and PyTorch's versions), so new weights or a new exporter never find an old graph.

Where: ``$PFDN_CACHE_DIR``, else ``$XDG_CACHE_HOME/pfdn``, else ``~/.cache/pfdn``; ``PFDN_CACHE_DIR=0`` (or empty)
turns the cache off. Files are written atomically, the newest ``KEEP`` are kept, and a folder that cannot be written
means an export into a temporary folder, as without the cache. ONNX files are data, never code: reading one executes
nothing.
"""
import contextlib
import hashlib
import os
import re
import tempfile
from typing import Callable, Optional, TypeVar

import torch
from torch import nn

from ...version import __version__
from .onnx_graph import export_fp32, onnx_model_file

KEEP = 16  # exports kept (about 1 MB each for the released PFDN); older ones are removed
OURS = re.compile(r'pfdn-[0-9a-f]{32}\.onnx')  # the names this module gives
T = TypeVar('T')
VERSION = 1  # of what goes into the digest and the graph: a change here leaves every old file unused


def cache_dir() -> Optional[str]:
    """The cache's folder, or None where it is turned off."""
    chosen = os.environ.get('PFDN_CACHE_DIR')
    if chosen is not None:
        return None if chosen.strip() in ('', '0') else os.path.abspath(os.path.expanduser(chosen))
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'pfdn')


def graph_digest(net: nn.Module) -> str:
    """What the exported graph of ``net`` is made from, as a hex digest."""
    h = hashlib.sha256(f'{VERSION} {__version__} {torch.__version__} {type(net).__module__}.'
                       f'{type(net).__qualname__}\n{net!r}\n'.encode())
    options = {k: v for k, v in vars(net).items()
               if not k.startswith('_') and k != 'training' and isinstance(v, (bool, int, float, str))}
    h.update(repr(sorted(options.items())).encode())
    for name, tensor in net.state_dict().items():
        t = tensor.detach().to('cpu', torch.float32).contiguous()
        h.update(f'{name} {tuple(t.shape)}\n'.encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _prune(folder: str) -> None:
    """Remove all but the ``KEEP`` most recently used exports of ours (other files in the folder are left)."""
    used = []
    for name in os.listdir(folder):
        if OURS.fullmatch(name):
            with contextlib.suppress(OSError):  # another run may have removed it meanwhile
                used.append((os.stat(os.path.join(folder, name)).st_mtime, name))
    for _, name in sorted(used, reverse=True)[KEEP:]:
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, name))


def cached_export(net: nn.Module) -> Optional[str]:
    """The path of ``net``'s ONNX export in the cache, exported there first if it is not yet; None where the
    cache is off or cannot be written."""
    folder = cache_dir()
    if folder is None:
        return None
    path = os.path.join(folder, f'pfdn-{graph_digest(net)[:32]}.onnx')
    try:
        if os.path.isfile(path):
            os.utime(path)  # most recently used: the last to be pruned
            return path
        os.makedirs(folder, exist_ok=True)
        export_fp32(net, path)  # written atomically
        _prune(folder)
    except OSError:
        return None
    return path


def built_from_export(net: nn.Module, build: Callable[[str], T], cache: bool = True) -> T:
    """``build(path)`` on the ONNX export of ``net`` (deployed; exported in fp32): the cache's file where ``cache``
    and the cache is usable, else one exported into a temporary folder. A cached file the runtime cannot build
    (damaged on disk) is removed and the export made afresh."""
    path = cached_export(net) if cache else None
    if path is not None:
        try:
            return build(path)
        except Exception:  # the runtime's own error types: a damaged file; a fresh export says if it is more
            with contextlib.suppress(OSError):
                os.remove(path)
    with tempfile.TemporaryDirectory() as folder:
        return build(onnx_model_file(net, folder))
