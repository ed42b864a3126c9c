"""int8 PFDN for CPUs and NPUs: post-training quantization with NNCF, written as an OpenVINO IR and a QDQ ONNX (the
form NPUs, TensorRT and ONNX Runtime take), each with a record of how it was made and what it loses.

What is quantized follows the sensitivity study in docs/int8.md: every convolution (weights per channel, activations
asymmetric, ranges from histograms of the calibration crops); the attention's gating multiply stays in float (the gate
in [0, 1] and the features it scales would share one quantizer there), and so do the residual additions (what each
costs and saves: docs/int8.md). Calibration uses crops of the images given, else of the built-in
photos; the loss is measured on held-out built-in photos (never calibration images): PSNR on Y against their HR,
int8 minus fp32.
"""
import json
import os
import tempfile
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np
import torch

from ....archs import spec_for
from ....archs.spec import SRNetwork
from ....errors import PFDNError, require
from ....files.atomic import write_bytes, write_text
from ....files.images import list_images, read_image
from ....layout.samples import sample_image
from ...runtime.model_file import file_runner
from ...runtime.onnx_graph import onnx_model_file
from .config import need, settings
from .qat import export_qdq, restored
from .record import state_record, versions

CHECK_PHOTOS = ('astronaut.png', 'chelsea.png')  # the loss is measured on these; never calibration images
CALIBRATION_PHOTOS = ('coffee.png', 'rocket.jpg', 'ihc.png', 'hubble_deep_field.jpg', 'motorcycle_left.png',
                      'retina.jpg')
TARGET_LOSS = 0.1  # dB: what "keeps the picture" means here


def _downscale(hr, scale):
    """LR of an HR image for the check: BasicSR's MATLAB-style bicubic where installed (the benchmark protocol),
    else OpenCV's area resize. Both forms see the same LR, so the loss does not depend on it."""
    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    hr = hr[:h, :w]
    try:  # basicsr is the train extra; the deployment side does not need it
        from basicsr.utils.matlab_functions import imresize
    except ImportError:
        return hr, cv2.resize(hr, (w // scale, h // scale), interpolation=cv2.INTER_AREA)
    return hr, (np.clip(imresize(hr.astype(np.float32) / 255.0, 1 / scale), 0, 1) * 255.0).round().astype(np.uint8)


def _photo(name):
    require('skimage', 'int8 calibration and checking on the built-in photos', 'train', 'scikit-image')
    return sample_image(name)


def calibration_crops(folder: Optional[str] = None, scale: int = 4, count: int = 64, size: int = 64,
                      seed: int = 0) -> Tuple[List[np.ndarray], str]:
    """``count`` LR crops of ``size`` px, as 1 x 3 x size x size float RGB arrays: from the images of ``folder``
    (LR inputs as the user has them), else from the built-in calibration photos downscaled x``scale``."""
    if folder:
        images = [read_image(p) for p in list_images(folder)]
        if not images:
            raise PFDNError('no images here to calibrate on', folder)
        source = f'{len(images)} images of {folder}'
    else:
        images = [_downscale(_photo(n), scale)[1] for n in CALIBRATION_PHOTOS]
        source = f"the built-in photos {', '.join(CALIBRATION_PHOTOS)} (x{scale} LR)"
    images = [img for img in images if min(img.shape[:2]) >= size]
    if not images:
        raise PFDNError(f'no image is {size} px or larger on both sides, too small to calibrate on', folder)
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        img = images[i % len(images)]
        y, x = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        rgb = img[y:y + size, x:x + size, ::-1].astype(np.float32) / 255.0
        crops.append(np.ascontiguousarray(rgb.transpose(2, 0, 1))[None])
    return crops, source


def psnr_y(sr: np.ndarray, hr: np.ndarray, crop: int) -> float:
    """PSNR on the Y channel (ITU-R BT.601, as BasicSR's test_y_channel), ``crop`` border pixels left out."""
    def y(img):
        img = img.astype(np.float64) / 255.0
        return (16.0 + 65.481 * img[..., 2] + 128.553 * img[..., 1] + 24.966 * img[..., 0]) / 255.0
    a, b = y(sr)[crop:-crop, crop:-crop], y(hr)[crop:-crop, crop:-crop]
    mse = np.mean((a - b) ** 2)
    return float('inf') if mse == 0 else float(10 * np.log10(1.0 / mse))


def check_psnr(run: Callable[[np.ndarray], np.ndarray], scale: int = 4) -> float:
    """Mean PSNR (Y, crop ``scale``) of ``run`` (1x3xhxw float array -> 1x3xHxW array) on the check photos."""
    scores = []
    for name in CHECK_PHOTOS:
        hr, lr = _downscale(_photo(name), scale)
        x = np.ascontiguousarray(lr[:, :, ::-1].astype(np.float32).transpose(2, 0, 1) / 255.0)[None]
        sr = np.clip(run(x)[0].transpose(1, 2, 0)[:, :, ::-1], 0, 1)
        scores.append(psnr_y((sr * 255.0).round().astype(np.uint8), hr, scale))
    return float(np.mean(scores))


def quantize(net: SRNetwork, crops: List[np.ndarray], folder: str) -> tuple:
    """(OpenVINO int8 model, QDQ ONNX model path) of the deployed ``net``, calibrated on ``crops``; files in
    ``folder``."""
    for module in ('nncf', 'openvino', 'onnx'):
        need(module)
    import nncf
    import onnx
    import openvino as ov

    float_ops = spec_for(net).float_ops
    fp32_onnx = onnx_model_file(net, folder)
    data = nncf.Dataset(crops)
    ov_int8 = nncf.quantize(ov.Core().read_model(fp32_onnx), data, subset_size=len(crops),
                            ignored_scope=nncf.IgnoredScope(types=list(float_ops['openvino']), validate=False),
                            **settings())
    qdq = nncf.quantize(onnx.load(fp32_onnx), nncf.Dataset([{'lr': c} for c in crops]), subset_size=len(crops),
                        ignored_scope=nncf.IgnoredScope(types=list(float_ops['onnx']), validate=False), **settings())
    qdq_path = os.path.join(folder, 'qdq.onnx')
    onnx.save(qdq, qdq_path)
    return ov_int8, qdq_path


def write_int8(net: SRNetwork, out_dir: str, name: str, calibration: Optional[str] = None,
               threads: Optional[int] = None, crops: int = 64, qat: Optional[dict] = None) -> Tuple[dict, dict]:
    """Write ``<name>_int8.xml/.bin`` (OpenVINO IR), ``<name>_int8.onnx`` (QDQ) and ``<name>_int8.json`` (how they
    were made, what each loses), atomically. The int8 model is the deployed ``net`` quantized after training
    (calibrated on ``calibration``, else the built-in photos), or, with ``qat`` (a QAT checkpoint's ``'int8'``
    entry; ``net`` holds its float weights), the network quantization-aware fine-tuning trained. Returns the
    record and the paths."""
    for module in ('nncf', 'openvino', 'onnx'):
        need(module)
    import openvino as ov  # optional: checked by need() above

    threads = threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        if qat is None:
            images, source = calibration_crops(calibration, net.upscale, count=crops)
            ov_int8, qdq_path = quantize(net, images, tmp)
            made: dict = {'model': f'PFDN x{net.upscale}, int8 (NNCF post-training quantization)',
                    'calibration': {'source': source, 'crops': len(images), 'crop_size': 64}}
        else:
            qdq_path = os.path.join(tmp, 'qdq.onnx')
            export_qdq(restored(net, qat), qdq_path)
            ov_int8 = ov.Core().read_model(qdq_path)  # OpenVINO reads the QDQ pairs as int8
            made = {'model': f'PFDN x{net.upscale}, int8 (quantization-aware fine-tuning, NNCF)', **state_record(qat)}
        paths = {'openvino': os.path.join(out_dir, f'{name}_int8.xml'),
                 'onnx': os.path.join(out_dir, f'{name}_int8.onnx')}
        # the loss is int8's against fp32 weights: QAT's against the weights it started from (its record), not
        # against its own fine-tuned float weights
        fp32 = (made.get('reference') or {}).get('fp32_check_psnr')
        if fp32 is None:
            with torch.no_grad():
                fp32 = check_psnr(lambda x: net(torch.from_numpy(x)).numpy(), net.upscale)
        losses = {}
        # the float parts (gate, additions, biases) stay fp32 in the file, not OpenVINO's default fp16 compression
        ov.save_model(ov_int8, os.path.join(tmp, 'int8.xml'), compress_to_fp16=False)
        for kind, src in (('openvino', os.path.join(tmp, 'int8.xml')), ('onnx', qdq_path)):
            runner = file_runner(src, 'openvino' if kind == 'openvino' else 'onnxruntime', threads=threads,
                                 warn=lambda m: None)
            losses[kind] = check_psnr(lambda x: runner(torch.from_numpy(x)).numpy(), net.upscale) - fp32
        # each file atomically; the weights (.bin) before the graph that points into them (.xml)
        for ext in ('.bin', '.xml'):
            with open(os.path.join(tmp, 'int8' + ext), 'rb') as f:
                write_bytes(paths['openvino'][:-4] + ext, f.read())
        with open(qdq_path, 'rb') as f:
            write_bytes(paths['onnx'], f.read())
    record = {
        **made,
        'files': {kind: os.path.basename(p) for kind, p in paths.items()},
        'quantized': 'every convolution: weights int8 per channel (symmetric), activations uint8 per tensor '
                     '(asymmetric), ranges from histograms; the attention gate (Multiply) and the residual additions '
                     'in float',
        'check': {'images': [f'built-in {n}' for n in CHECK_PHOTOS], 'protocol': 'x4 LR, PSNR on Y, crop = scale',
                  'fp32_psnr': round(fp32, 4)},
        'psnr_loss_db': {kind: round(v, 4) for kind, v in losses.items()},
        'target_loss_db': TARGET_LOSS,
        'versions': versions(),
        'scale': net.upscale,
    }
    write_text(os.path.join(out_dir, f'{name}_int8.json'), json.dumps(record, indent=1))
    return record, paths
