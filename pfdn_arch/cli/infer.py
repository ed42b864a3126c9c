"""``basicsr infer -i PATH -o DIR``: upscale a file or a folder with a deployed PFDN (``deploy/folder.py``)."""
import os
import sys

from . import add_command, in_range, whole


def add_parser(sub):
    from ..files.locations import WEIGHTS

    p = add_command(sub, 'infer', 'upscale an image or a folder (backends, batches, tiles, 16-bit, alpha)',
                    'Upscale images with a deployed PFDN (png, jpg, bmp, tiff, webp; grayscale, RGBA and 16-bit kept '
                    'as such). Finished outputs are kept on a rerun; --force replaces them.',
                    on_interrupt='rerun the same command to continue: finished images are kept')
    p.add_argument('-i', '--input', required=True, help='an image or a folder of images')
    p.add_argument('-o', '--output', required=True, help='output folder (same file names)')
    p.add_argument('--weights', help=f'deployed or training-form PFDN checkpoint, or a model file from basicsr export '
                                     f'(.xml OpenVINO IR, .onnx; e.g. the int8 ones) (None: {WEIGHTS})')
    p.add_argument('--backend', default='auto',
                   help='auto (the fastest for the device: CPU openvino, else onnxruntime, else torch; CUDA compile), '
                        'torch (the plain eager forward), compile, openvino or onnxruntime')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    p.add_argument('--dtype', default='fp32',
                   help='fp32, fp16 (CUDA) or bf16 (a CPU with AVX512-BF16/AMX, or a GPU with bf16); a precision the '
                        'hardware lacks falls back to fp32 with a note')
    p.add_argument('--batch', type=whole(0), default=0,
                   help='same-size images and tiles run this many at a time (0: 16 on CUDA, 1 on the CPU)')
    p.add_argument('--tile', type=whole(0), default=0, help='LR tile side for bounded memory (0: whole images)')
    p.add_argument('--tile-overlap', type=whole(0), default=16, help='LR pixels shared by neighbouring tiles')
    p.add_argument('--png-compression', type=in_range(0, 9), default=None,
                   help="zlib level of PNG results, 0 (none, largest) to 9 (smallest, slowest); None: OpenCV's "
                        'default, the fastest that compresses')
    p.add_argument('--force', action='store_true', help='overwrite existing outputs')
    p.set_defaults(func=run)
    return p


def weights_or_default(weights):
    """--weights, else the released weights at their usual place; the error says what to do."""
    from ..errors import OptionsError
    from ..files.locations import default_weights, missing_weights_reason

    weights = weights or default_weights()
    if weights is None:
        raise OptionsError(f'not given, and {missing_weights_reason()}, or pass --weights', 'weights')
    return weights


def say_what_it_loses(path, note):
    """The loss an int8 model's record gives, said at every use (or that there is no record)."""
    from ..deploy.int8 import record_of

    record = record_of(path)
    if record is None:
        note(f'note: {path} has no record beside it ({os.path.splitext(path)[0]}.json): its quality is unknown')
        return
    kind = 'openvino' if path.lower().endswith('.xml') else 'onnx'
    loss = record.get('psnr_loss_db', {}).get(kind)
    if loss is not None:
        note(f"note: {os.path.basename(path)} is {record.get('model', 'a quantized model')}: {loss:+.3f} dB against "
             f"fp32 on its check images (target within {record.get('target_loss_db', 0.1)} dB)")


def run(a):
    import torch
    from tqdm import tqdm

    from ..deploy.backends import MODEL_FILES, file_runner, make_runner
    from ..deploy.folder import collect_inputs, folder_workload, upscale_files
    from ..deploy.upscaler import Upscaler
    from ..errors import CheckpointError
    from ..files.checkpoints import build_pfdn_from_checkpoint, qat_state
    from ..files.paths import input_file, output_dir
    from .main import error_line

    def note(line):
        print(line, file=sys.stderr)

    output_dir(a.output)  # before anything is read or loaded
    inputs = collect_inputs(a.input, a.output, note)
    weights = weights_or_default(a.weights)
    if weights.lower().endswith(MODEL_FILES):
        runner = file_runner(input_file(weights), a.backend, a.device, warn=note)
        say_what_it_loses(weights, note)
    else:
        net, _ = build_pfdn_from_checkpoint(weights)
        if qat_state(weights) is not None:
            note(f'note: {weights} is a checkpoint of quantization-aware fine-tuning; this runs its float weights. '
                 f'For its int8: basicsr export --int8 --weights {weights}, then --weights <out>/pfdn_x4_int8.xml')
        if net.num_in_ch != 3:
            raise CheckpointError(f'this PFDN takes {net.num_in_ch}-channel input; basicsr infer runs RGB networks',
                                  a.weights)
        if not net.deploy:
            net.reparameterize()
        workload = folder_workload([p for p, _ in inputs], a.tile, a.tile_overlap)
        runner = make_runner(net, a.backend, a.device, a.dtype, warn=note, workload=workload,
                             streams=1 if len(inputs) == 1 else torch.get_num_threads())
    up = Upscaler(runner, a.tile, a.tile_overlap, a.batch or (16 if runner.device.type == 'cuda' else 1))
    print(f'backend: {runner}', file=sys.stderr)
    with tqdm(total=len(inputs), desc='upscaling', unit='img') as bar:
        run = upscale_files(inputs, a.output, up, a.force, bar.update, lambda line: bar.write(line, file=sys.stderr),
                            a.png_compression)
    print(f'{run.done} upscaled x{runner.upscale} into {a.output}' + (
        f'; {len(run.skipped)} skipped because the output exists (--force overwrites)' if run.skipped else ''))
    flags = {'force': '--force', 'tile': '--tile'}
    for err in run.failed:
        print(error_line(err, flags), file=sys.stderr)
    return 1 if run.failed else 0
