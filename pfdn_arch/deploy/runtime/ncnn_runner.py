"""NCNN files (``basicsr export --ncnn``: ``<name>.param`` + ``<name>.bin``) run as a runner, on the CPU or on a
Vulkan device (any GPU; Mesa's lavapipe where there is none): what Upscayl and other NCNN apps run, checked here."""
import os
import re
from typing import Optional

import numpy as np

from ...errors import CheckpointError, OptionsError, require
from .base import CPU, ModelFile, like_input, numpy_input


def vulkan_index(device) -> Optional[int]:
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
    extractor takes one). Its scale is read off its output for a small input."""

    def __init__(self, param: str, threads: int, gpu: Optional[int] = None):
        ncnn = require('ncnn', 'running NCNN models', 'ncnn')
        self.name, self.path, self.threads, self.builds, self.streams = 'ncnn', param, threads, 1, 1
        self.dtype, self.num_in_ch = 'fp16' if gpu is not None else 'fp32', 3
        self.device = CPU  # where results are handed back
        weights = os.path.splitext(param)[0] + '.bin'
        if not os.path.isfile(weights):
            raise CheckpointError(f'its weights {os.path.basename(weights)} are not beside it (an NCNN model is a '
                                  '.param and a .bin of one name)', param)
        if gpu is not None and not gpu < ncnn.get_gpu_count():
            raise OptionsError(f'there is no Vulkan device {gpu} here ({ncnn.get_gpu_count()} found); on Linux '
                               "Mesa's lavapipe is one without a GPU (Debian: mesa-vulkan-drivers), or use --device "
                               'cpu', 'device')
        self.net = ncnn.Net()
        self.net.opt.num_threads = threads
        self.net.opt.use_vulkan_compute = gpu is not None
        if gpu is not None:
            self.net.set_vulkan_device(gpu)
            self.where = f'vulkan:{gpu} {ncnn.get_gpu_info(gpu).device_name()}'
        else:
            self.where = 'cpu'
        if self.net.load_param(param) != 0 or self.net.load_model(weights) != 0:
            raise CheckpointError('cannot be loaded by NCNN; give the .param basicsr export --ncnn wrote', param)
        self._ncnn = ncnn
        self.upscale = self._run_one(np.zeros((3, 16, 16), np.float32)).shape[-1] // 16

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
