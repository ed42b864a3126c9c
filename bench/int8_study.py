"""Where int8 hurts PFDN: post-training quantization (NNCF, OpenVINO) of the released weights with one thing changed
at a time, scored on Set5 x4 (Y, crop 4). Prints the Markdown table docs/int8.md is made of (about 15 minutes on 2
cores). Needs `pip install 'pfdn[int8]'`.

    python bench/int8_study.py [--weights ...] [--set5 ...]
"""
import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
SHARED = os.path.join(HERE, '..', '..', 'shared')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--weights', default=os.path.join(SHARED, 'weights', 'team08_PFDN.pth'))
    p.add_argument('--set5', default=os.path.join(SHARED, 'data', 'benchmark', 'Set5', 'HR'))
    a = p.parse_args()
    import nncf
    import openvino as ov
    import torch
    from nncf import IgnoredScope
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters as Advanced, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet as Ranges

    from pfdn_arch.deploy.runtime.onnx_graph import onnx_model_file
    from pfdn_arch.deploy.export.int8.ptq import calibration_crops
    from pfdn_arch.files.checkpoints import build_from_checkpoint
    from pfdn_arch.evaluation.protocol import evaluate_folder

    torch.set_num_threads(2)
    net, _ = build_from_checkpoint(a.weights)
    net.eval()
    core = ov.Core()
    fp32 = core.read_model(onnx_model_file(net, tempfile.mkdtemp()))
    crops, source = calibration_crops(None, 4, count=84)
    data = nncf.Dataset(crops)
    convs = [op.get_friendly_name() for op in fp32.get_ordered_ops() if op.get_type_name() == 'Convolution']
    body = [n for n in convs if '/attn/' not in n]

    def score(model):
        request = core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'}).create_infer_request()

        def run(t):
            request.infer({0: np.ascontiguousarray(t.numpy())})
            return torch.from_numpy(request.get_output_tensor(0).data.copy())
        return evaluate_folder(run, a.set5)['psnr']

    mixed, perf = nncf.QuantizationPreset.MIXED, nncf.QuantizationPreset.PERFORMANCE
    no_mul = dict(types=['Multiply'])
    rows = [
        ('everything, NNCF defaults (symmetric activations)', dict(preset=perf)),
        ('everything, asymmetric activations (MIXED)', dict(preset=mixed)),
        ('only the attention (ESA)', dict(preset=mixed, ignored=dict(names=body))),
        ('everything but the attention', dict(preset=mixed, ignored=dict(patterns=['.*attn.*']))),
        ('only the attention, its gating Multiply in float', dict(preset=mixed, ignored=dict(names=body, **no_mul))),
        ('only the attention, Sigmoid in float', dict(preset=mixed, ignored=dict(names=body, types=['Sigmoid']))),
        ('only the attention, its conv1 in float', dict(preset=mixed, ignored=dict(names=body,
                                                                                 patterns=['.*/attn/conv1/.*']))),
        ('everything but the Multiply', dict(preset=mixed, ignored=no_mul)),
    ] + [(f'... and block{k} convolutions in float', dict(preset=mixed, ignored=dict(
        types=['Multiply'], patterns=[f'/block{k}/conv.*']))) for k in range(1, 5)] + [
        ('... and the attention convolutions in float', dict(preset=mixed, ignored=dict(types=['Multiply'],
                                                                                        patterns=['.*/attn/.*']))),
        ('... and conv_first / conv_last / tail in float', dict(preset=mixed, ignored=dict(
            types=['Multiply'], patterns=['/conv_first/.*', '/conv_last/.*', '/tail.*']))),
        ('... and the residual additions in float', dict(preset=mixed, ignored=dict(types=['Multiply', 'Add']))),
        ('everything but the Multiply, min/max ranges', dict(preset=mixed, ignored=no_mul, ranges=Ranges.MINMAX)),
        ('everything but the Multiply, histogram ranges', dict(preset=mixed, ignored=no_mul, ranges=Ranges.HISTOGRAM)),
        ('everything but the Multiply, overflow fix off', dict(preset=mixed, ignored=no_mul,
                                                               overflow=OverflowFix.DISABLE)),
        ('shipped: histogram ranges, Multiply and additions in float', dict(
            preset=mixed, ignored=dict(types=['Multiply', 'Add']), ranges=Ranges.HISTOGRAM)),
    ]
    base = score(fp32)
    print(f'calibration: {len(crops)} crops of {source}\n\n| what is quantized | Set5 dB | change |\n| --- | --- | --- |')
    print(f'| nothing (fp32) | {base:.4f} | - |', flush=True)
    for label, cfg in rows:
        advanced = {}
        if 'ranges' in cfg:
            advanced['activations_range_estimator_params'] = cfg['ranges']
        if 'overflow' in cfg:
            advanced['overflow_fix'] = cfg['overflow']
        model = nncf.quantize(fp32, data, subset_size=len(crops), preset=cfg['preset'],
                              ignored_scope=IgnoredScope(**cfg.get('ignored', {}), validate=False),
                              advanced_parameters=Advanced(**advanced))
        psnr = score(model)
        print(f'| {label} | {psnr:.4f} | {psnr - base:+.2f} |', flush=True)


if __name__ == '__main__':
    main()
