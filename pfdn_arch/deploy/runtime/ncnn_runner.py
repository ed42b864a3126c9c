"""NCNN files (``basicsr export --ncnn``: ``<name>.param`` + ``<name>.bin``) run as a runner, on the CPU or on a
Vulkan device (any GPU; Mesa's lavapipe where there is none): what Upscayl and other NCNN apps run, checked here."""
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import numpy as np

from ...errors import CheckpointError, OptionsError, require
from .base import CPU, ModelFile, like_input, numpy_input
from .ncnn_param import bin_bytes, parse


def vulkan_index(device: Any) -> Optional[int]:
    """The Vulkan device index ``device`` names ('vulkan' is 0, 'vulkan:N' is N), or None for 'cpu'."""
    text = str(device)
    if text == 'cpu':
        return None
    found = re.fullmatch(r'vulkan(?::(\d+))?', text)
    if found is None:
        raise OptionsError(f"an NCNN model runs on cpu or vulkan[:N], not '{device}'", 'device')
    return int(found.group(1) or 0)


class NcnnRunner(ModelFile):
    """An NCNN model on the CPU (``threads`` threads) or Vulkan device ``gpu``; images one at a time (NCNN's
    extractor takes one). ``dtype``: fp32 or fp16 as asked (auto: fp32 on the CPU, fp16 on a Vulkan device, what
    NCNN apps run there); ``dtype_note`` says where a request could not be honoured. Its scale is read off its output
    for a small input. Before NCNN reads the files, the ``.bin`` is checked to hold exactly what the ``.param``'s
    layers read (another model's ``.bin`` would run, and one cut short fail inside NCNN); what NCNN prints while
    loading is kept off the terminal and said in the error when loading fails."""

    def __init__(self, param: str, threads: int, gpu: Optional[int] = None, dtype: str = 'auto'):
        ncnn = require('ncnn', 'running NCNN models', 'ncnn')
        self.name, self.path, self.threads, self.builds, self.streams = 'ncnn', param, threads, 1, 1
        self.num_in_ch = 3
        self.dtype_note: Optional[str] = None
        runs = {'auto': 'fp16' if gpu is not None else 'fp32', 'fp32': 'fp32', 'fp16': 'fp16'}.get(dtype)
        self.dtype = runs or ('fp16' if gpu is not None else 'fp32')
        if runs is None:
            self.dtype_note = f'note: NCNN runs fp32 or fp16, not {dtype}; running {self.dtype}'
        self.device = CPU  # where results are handed back
        weights = os.path.splitext(param)[0] + '.bin'
        if not os.path.isfile(weights):
            raise CheckpointError(f'its weights {os.path.basename(weights)} are not beside it (an NCNN model is a '
                                  '.param and a .bin of one name)', param)
        check_weights(param, weights)
        with quiet_stderr():  # NCNN lists the Vulkan devices as it first finds them
            count = ncnn.get_gpu_count() if gpu is not None else 0
        if gpu is not None and not gpu < count:
            raise OptionsError(f'there is no Vulkan device {gpu} here ({count} found); on Linux Mesa\'s lavapipe is '
                               'one without a GPU (Debian: mesa-vulkan-drivers), or use --device cpu', 'device')
        self.net = ncnn.Net()
        self.net.opt.num_threads = threads
        self.net.opt.use_vulkan_compute = gpu is not None
        half = self.dtype == 'fp16'  # NCNN's default stores and computes in fp16 where the device can
        self.net.opt.use_fp16_packed = self.net.opt.use_fp16_storage = self.net.opt.use_fp16_arithmetic = half
        self.where = f'vulkan:{gpu} {ncnn.get_gpu_info(gpu).device_name()}' if gpu is not None else 'cpu'
        with quiet_stderr() as said:
            if gpu is not None:
                self.net.set_vulkan_device(gpu)
            loaded = self.net.load_param(param) == 0 and self.net.load_model(weights) == 0
        if not loaded:
            ncnn_said = ' '.join(said().split())[:200]
            raise CheckpointError('cannot be loaded by NCNN' + (f' (NCNN: {ncnn_said})' if ncnn_said else '') +
                                  '; give the .param and .bin basicsr export --ncnn wrote', param)
        self._ncnn = ncnn
        self.upscale = self._run_one(np.zeros((3, 16, 16), np.float32)).shape[-1] // 16

    def __repr__(self):
        return f'{self.name} ({os.path.basename(self.path)}, {self.where}, {self.dtype})'

    def _run_one(self, chw: np.ndarray) -> np.ndarray:
        data = np.ascontiguousarray(chw, dtype=np.float32)  # held while NCNN reads it: its Mat does not copy
        mat = self._ncnn.Mat(data)
        extractor = self.net.create_extractor()
        extractor.input('data', mat)
        status, out = extractor.extract('output')
        if status != 0:
            raise RuntimeError(f'NCNN could not run {os.path.basename(self.path)} (status {status})')
        return np.array(out)

    def __call__(self, x):
        self.check_input(x)
        return like_input(np.stack([self._run_one(image) for image in numpy_input(x)]), x)


def check_weights(param: str, weights: str) -> None:
    """CheckpointError naming both files where ``weights`` (a .bin) does not hold exactly what ``param``'s layers
    read: another model's .bin (a size that fits no layer), or one cut short."""
    try:
        with open(param, encoding='utf-8', errors='replace') as f:
            layers = parse(f.read())
    except (OSError, ValueError) as err:
        raise CheckpointError(f'is not an NCNN .param ({err})', param) from None
    with open(weights, 'rb') as f:
        data = f.read()
    try:
        needed = bin_bytes(layers, data)
    except ValueError as err:
        raise CheckpointError(f'{os.path.basename(weights)} does not fit it: {err} ({len(data):,} bytes; cut short, '
                              'or the .bin of another model)', param) from None
    if needed is not None and needed != len(data):
        raise CheckpointError(f'{os.path.basename(weights)} does not fit it: its layers read {needed:,} bytes, the '
                              f'.bin holds {len(data):,} (the .bin of another model?); give the .param and .bin '
                              'basicsr export --ncnn wrote together', param)


@contextmanager
def quiet_stderr() -> Iterator[Callable[[], str]]:
    """What the process writes to stderr (file descriptor 2: NCNN's C++ prints) while the block runs, kept off the
    terminal; yields a function that returns it."""
    captured = tempfile.TemporaryFile()
    saved = os.dup(2)
    sys.stderr.flush()
    os.dup2(captured.fileno(), 2)
    try:
        yield lambda: (captured.seek(0), captured.read().decode(errors='replace'))[1]
    finally:
        os.dup2(saved, 2)
        os.close(saved)
