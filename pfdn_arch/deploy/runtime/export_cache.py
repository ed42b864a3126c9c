"""The ONNX exports the runtimes start from, kept between runs: ``basicsr infer`` of the same weights starts without
exporting again, and without importing torch.

The export (PyTorch's TorchScript-based exporter) is most of a runtime's build, on every ``infer`` of a folder, a film
or one photo (docs/benchmarks.md, "Figures behind the code's choices"). A file here is named by
a digest of everything the graph is made from (the network's class, its structure and options, every weight's name,
shape and bytes, this package's and PyTorch's versions), so new weights or a new exporter never find an old graph.

Beside the graphs, a record per checkpoint file (``remember``; named by a digest of the file's bytes) says which
graph it makes and what a runner asks of the network (its scale, input channels, smallest input), so that the next
run of the same file finds its graph before torch is imported (``recall``, ``CachedGraph``; ``build``; what that
saves: docs/benchmarks.md, "Figures behind the code's choices").

Nothing here is believed: each graph has its content's SHA-256 beside it (``<graph>.sha256``), checked before
every use, and a graph that does not match (altered, cut short, its digest missing) is removed and exported afresh;
a record's graph is checked the same way, and what a record says of the network (its scale, channels, smallest
input) must agree with what the built graph does and with PFDN's own limits, else the record is removed and the run
goes the usual way.

Where: ``$PFDN_CACHE_DIR``, else ``$XDG_CACHE_HOME/pfdn``, else ``~/.cache/pfdn``; ``PFDN_CACHE_DIR=0`` (or empty)
turns the cache off. Files are written atomically, the newest ``KEEP`` of each kind are kept, and a folder that
cannot be written means an export into a temporary folder, as without the cache. ONNX files and records are data,
never code: reading one executes nothing.
"""
import contextlib
import hashlib
import json
import os
import re
import tempfile
from importlib import metadata
from typing import Any, Callable, Optional, TypeVar

from ...archs.pfdn.limits import MIN_INPUT_SIZE, SCALES, check_lr_input
from ...files.atomic import write_text
from ...version import __version__

KEEP = 16  # exports kept (about 1 MB each for the released PFDN), and records; older ones are removed
OURS = re.compile(r'pfdn-[0-9a-f]{32}\.onnx')  # the names this module gives its graphs
RECORDS = re.compile(r'pfdn-weights-[0-9a-f]{32}\.json')  # and its records of checkpoint files
DIGESTS = re.compile(r'pfdn-[0-9a-f]{32}\.onnx\.sha256')  # each graph's content digest, beside it
T = TypeVar('T')
VERSION = 1  # of what goes into the digest, the graph and the records: a change here leaves every old file unused


class CachedGraphUnusable(Exception):
    """A recalled graph the runtime could not build (removed): start over from the checkpoint."""


class CachedGraph:
    """A deployed network as the cache knows it from a checkpoint file run before (``recall``): its graph's path,
    and what its record says a runner asks of the network (``upscale``, ``num_in_ch``), which the runner checks
    against the built graph (``agrees``); inputs are checked against PFDN's own smallest input, never a record's;
    ``qat``: whether the checkpoint came from quantization-aware fine-tuning (its float weights are what the graph
    holds); ``record``: the record's path (removed when it proves wrong)."""
    deploy = True

    def __init__(self, graph_path: str, upscale: int, num_in_ch: int, qat: bool, record: str = ''):
        self.graph_path, self.upscale, self.num_in_ch = graph_path, upscale, num_in_ch
        self.qat, self.record = qat, record

    def check_input(self, x: Any) -> None:
        check_lr_input(x.shape, self.num_in_ch, MIN_INPUT_SIZE)

    def agrees(self, upscale: int, num_in_ch: int) -> None:
        """The built graph's own scale and channels against the record's: CachedGraphUnusable (the record removed)
        where they differ."""
        if (upscale, num_in_ch) != (self.upscale, self.num_in_ch):
            with contextlib.suppress(OSError):
                os.remove(self.record)
            raise CachedGraphUnusable(f'{self.record} says x{self.upscale}, {self.num_in_ch} channels; the graph '
                                      f'runs x{upscale}, {num_in_ch}')


def cache_dir() -> Optional[str]:
    """The cache's folder, or None where it is turned off."""
    chosen = os.environ.get('PFDN_CACHE_DIR')
    if chosen is not None:
        return None if chosen.strip() in ('', '0') else os.path.abspath(os.path.expanduser(chosen))
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'pfdn')


def _torch_version() -> str:
    """PyTorch's version as installed (read without importing it: the records compare it before torch loads)."""
    try:
        return metadata.version('torch')
    except metadata.PackageNotFoundError:
        return ''


def graph_digest(net: Any) -> str:
    """What the exported graph of ``net`` (an ``nn.Module``) is made from, as a hex digest."""
    import torch

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


def file_digest(path: str) -> str:
    """A hex digest of a file's bytes (what a record is found by: the same weights under any name)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _prune(folder: str, ours: re.Pattern = OURS) -> None:
    """Remove all but the ``KEEP`` most recently used files of ours of one kind (other files are left), and the
    content digests of graphs that are gone."""
    used, names = [], os.listdir(folder)
    for name in names:
        if ours.fullmatch(name):
            with contextlib.suppress(OSError):  # another run may have removed it meanwhile
                used.append((os.stat(os.path.join(folder, name)).st_mtime, name))
    for _, name in sorted(used, reverse=True)[KEEP:]:
        _discard(os.path.join(folder, name))
    for name in names:
        if DIGESTS.fullmatch(name) and not os.path.exists(os.path.join(folder, name[:-len('.sha256')])):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))


def _discard(path: str) -> None:
    """A file of the cache and, for a graph, its content digest."""
    for name in (path, path + '.sha256'):
        with contextlib.suppress(OSError):
            os.remove(name)


def _seal(path: str) -> None:
    """Write the content digest of the graph at ``path`` beside it (after the graph: a graph without one is never
    used)."""
    write_text(path + '.sha256', file_digest(path) + '\n')


def intact(path: str) -> bool:
    """Whether the graph at ``path`` is what was exported: its bytes against the digest written beside it."""
    try:
        with open(path + '.sha256') as f:
            wanted = f.read().strip()
        return file_digest(path) == wanted
    except OSError:
        return False


def export_fp32(net: Any, path: str) -> None:
    """``onnx_graph.export_fp32``, imported when an export is made (it imports torch)."""
    from .onnx_graph import export_fp32 as export

    export(net, path)


def cached_export(net: Any) -> Optional[str]:
    """The path of ``net``'s ONNX export in the cache, exported there first if it is not yet; None where the
    cache is off or cannot be written."""
    folder = cache_dir()
    if folder is None:
        return None
    path = os.path.join(folder, f'pfdn-{graph_digest(net)[:32]}.onnx')
    try:
        if os.path.isfile(path):
            if intact(path):
                os.utime(path)  # most recently used: the last to be pruned
                return path
            _discard(path)  # altered or unsealed: never believed, exported afresh
        os.makedirs(folder, exist_ok=True)
        export_fp32(net, path)  # written atomically
        _seal(path)
        _prune(folder)
    except OSError:
        return None
    return path


def _record_path(folder: str, weights: str) -> str:
    return os.path.join(folder, f'pfdn-weights-{file_digest(weights)[:32]}.json')


def remember(weights: str, net: Any, qat: bool = False) -> None:
    """Record that the checkpoint file ``weights`` makes ``net`` (deployed; a PFDN), so that a later run of the same
    file finds its graph without torch (``recall``). Only where the cache already holds ``net``'s export (a runtime
    built from it); nothing where the cache is off or cannot be written."""
    from ...archs import spec_for

    folder, spec = cache_dir(), spec_for(net)
    if folder is None or spec is None:
        return
    graph = f'pfdn-{graph_digest(net)[:32]}.onnx'
    record = {'version': VERSION, 'pfdn': __version__, 'torch': _torch_version(), 'graph': graph,
              'upscale': int(net.upscale), 'num_in_ch': int(net.num_in_ch), 'min_input': int(spec.min_input),
              'qat': bool(qat)}
    if spec.min_input != MIN_INPUT_SIZE:  # the quick route runs PFDN's graphs only, checked against PFDN's limits
        return
    with contextlib.suppress(OSError):
        if not os.path.isfile(os.path.join(folder, graph)):
            return
        path = _record_path(folder, weights)
        with contextlib.suppress(OSError, ValueError), open(path) as f:
            if json.load(f) == record:
                return
        write_text(path, json.dumps(record, indent=1) + '\n')
        _prune(folder, RECORDS)


def recall(weights: str) -> Optional[CachedGraph]:
    """The graph the checkpoint file ``weights`` made in an earlier run (``remember``) with this package and this
    PyTorch, or None (cache off, never run, the graph gone, another version; a damaged record counts as none)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        path = _record_path(folder, weights)
        with open(path) as f:
            record = json.load(f)
        if (record.get('version'), record.get('pfdn'), record.get('torch')) != (VERSION, __version__,
                                                                                _torch_version()):
            return None
        graph = os.path.join(folder, record['graph'])
        if not OURS.fullmatch(record['graph']) or not os.path.isfile(graph):
            return None
        if not intact(graph):  # altered since it was exported: removed, and the usual route exports it again
            _discard(graph)
            return None
        if int(record['min_input']) != MIN_INPUT_SIZE or int(record['upscale']) not in SCALES:
            os.remove(path)  # a record that contradicts PFDN itself is not ours as written: never believed
            return None
        for used in (graph, path):
            os.utime(used)  # most recently used: the last to be pruned
        return CachedGraph(graph, int(record['upscale']), int(record['num_in_ch']), bool(record['qat']), path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def built_from_export(net: Any, build: Callable[[str], T], cache: bool = True) -> T:
    """``build(path)`` on the ONNX export of ``net`` (deployed; exported in fp32): the cache's file where ``cache``
    and the cache is usable, else one exported into a temporary folder. A cached file the runtime cannot build
    (damaged on disk) is removed and the export made afresh; for a ``CachedGraph`` (no network to export) that is
    ``CachedGraphUnusable``."""
    if isinstance(net, CachedGraph):
        try:
            return build(net.graph_path)
        except Exception as err:  # the runtime's own error types
            _discard(net.graph_path)
            raise CachedGraphUnusable(net.graph_path) from err
    path = cached_export(net) if cache else None
    if path is not None:
        try:
            return build(path)
        except Exception:  # the runtime's own error types: a damaged file; a fresh export says if it is more
            _discard(path)
    from .onnx_graph import onnx_model_file

    with tempfile.TemporaryDirectory() as folder:
        return build(onnx_model_file(net, folder))
