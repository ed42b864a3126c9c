"""``basicsr infer -i PATH -o OUT``: upscale an image, a video or a folder with a deployed PFDN (``deploy/media/``:
``images.py``, ``video/``)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from . import add_command, error_line, in_range, whole

if TYPE_CHECKING:  # hints only (the runners load where they are used)
    from ..deploy.runtime.base import Runner


def seconds(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a number of seconds, got {text!r}') from None
    if not value >= 0 or value == float('inf'):
        raise argparse.ArgumentTypeError(f'must be 0 or more seconds, got {text}')
    return value


def add_parser(sub: 'argparse._SubParsersAction') -> argparse.ArgumentParser:
    from ..layout.locations import WEIGHTS

    p = add_command(sub, 'infer', 'upscale an image, a video or a folder (backends, batches, tiles, 16-bit, alpha)',
                    'Upscale images with a deployed PFDN (png, jpg, bmp, tiff, webp; grayscale, RGBA and 16-bit kept '
                    'as such) and videos (any FFmpeg reads; needs pip install "pfdn[video]"): frame timestamps, '
                    'colour matrix and range kept, audio and subtitles copied. A rerun keeps the results this '
                    'same work made (same input, weights, scale and settings) and makes again those that other '
                    'weights or settings made; --force replaces any.',
                    on_interrupt='rerun the same command to continue: finished images and video segments are kept')
    p.add_argument('-i', '--input', required=True, action='append',
                   help='an image, a video, or a folder of them (subfolders too); give -i again for more')
    p.add_argument('-o', '--output', required=True,
                   help='output folder (same file names); for one image or video, a file name may be given instead '
                        '(its extension chooses the format or container: .png, .jpg, .heic, .mp4, .mkv, .webm, ...)')
    p.add_argument('--weights', help=f'deployed or training-form PFDN checkpoint, or a model file from basicsr export '
                                     f'(.xml OpenVINO IR, .onnx, .param NCNN; e.g. the int8 ones) (None: {WEIGHTS})')
    p.add_argument('--backend', default='auto',
                   help='auto (the cheapest for this work by a cost model of each backend\'s build and per-pixel '
                        'time: one small photo runs torch, a folder on a CPU openvino when installed, tiles and '
                        'batches on CUDA compile; it says what it chose and why), torch (the plain eager '
                        'forward), compile, openvino or onnxruntime')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N; for NCNN files (.param) cpu or vulkan[:N]')
    p.add_argument('--dtype', default='auto',
                   help='auto (the fastest precision this device runs natively that keeps the picture: bf16 on CPUs '
                        'with AMX or AVX512-BF16, fp16 on CUDA, else fp32; the released weights\' Set5 moves by at '
                        'most 0.01 dB), fp32 (exact), fp16 (CUDA) or bf16; a precision the hardware lacks falls back '
                        'to fp32 with a note')
    p.add_argument('--batch', type=whole(0), default=0,
                   help='same-size images and tiles run this many at a time (0: 16 on CUDA, 1 on the CPU)')
    p.add_argument('--tile', type=whole(0), default=0, help='LR tile side for bounded memory (0: whole images)')
    p.add_argument('--tile-overlap', type=whole(0), default=16, help='LR pixels shared by neighbouring tiles')
    p.add_argument('--png-compression', type=in_range(0, 9), default=None,
                   help='zlib level of PNG results, 0 (none, largest) to 9 (smallest, slowest), encoded by '
                        "OpenCV; None: the fast encoder (ISA-L's level 1; OpenCV's default without python-isal)")
    p.add_argument('--codec', help='video encoder: h264, h265, av1, vp9, ffv1 (lossless), x264rgb (lossless at --crf '
                                   '0), prores, or any FFmpeg encoder name (None: the input\'s codec where it can be '
                                   'encoded and the container holds it, else h264)')
    p.add_argument('--crf', type=in_range(0, 63), default=None,
                   help='video constant quality, lower is better (None: h264 18, h265 20, vp9 24, av1 30)')
    p.add_argument('--segment', type=seconds, default=10.0,
                   help='videos are made in segments of this many seconds, so that a rerun after a kill continues '
                        'from the last finished one (0: one segment)')
    p.add_argument('--force', action='store_true', help='overwrite existing outputs')
    p.set_defaults(func=run)
    return p


def weights_or_default(weights: Optional[str]) -> str:
    """--weights, else the released weights at their usual place; the error says what to do."""
    from ..errors import OptionsError
    from ..layout.locations import default_weights, missing_weights_reason

    weights = weights or default_weights()
    if weights is None:
        raise OptionsError(f'not given, and {missing_weights_reason()}, or pass --weights', 'weights')
    return weights


def say_what_it_loses(path: str, note: Callable[[str], None]) -> None:
    """The loss an int8 model's record gives, said at every use (or that there is no record)."""
    from ..deploy.export.int8.record import file_record as record_of

    record = record_of(path)
    if record is None:
        note(f'note: {path} has no record beside it ({os.path.splitext(path)[0]}.json): its quality is unknown')
        return
    kind = 'openvino' if path.lower().endswith('.xml') else 'onnx'
    loss = record.get('psnr_loss_db', {}).get(kind)
    if loss is not None:
        note(f"note: {os.path.basename(path)} is {record.get('model', 'a quantized model')}: {loss:+.3f} dB against "
             f"fp32 on its check images (target within {record.get('target_loss_db', 0.1)} dB)")


def run(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..deploy.media.images import upscale_files
    from ..files.made import model_digest
    from ..deploy.media.inputs import folder_workload
    from ..deploy.media.video import is_video, upscale_video
    from ..deploy.runtime.base import default_threads
    from ..deploy.runtime.tiles import check_tiles
    from ..deploy.runtime.build import build_runner, is_model_file
    from ..deploy.runtime.upscaler import Upscaler
    from ..errors import PFDNError

    def note(line):
        print(line, file=sys.stderr)

    inputs, out_dir, out_file = inputs_and_output(a.input, a.output, note)
    videos = [(p, rel) for p, rel in inputs if is_video(p)]
    images = [(p, rel) for p, rel in inputs if not is_video(p)]
    weights = weights_or_default(a.weights)
    paths = [p for p, _ in inputs]
    check_tiles(a.tile, a.tile_overlap)  # before the workload is sized from them
    workload = folder_workload(paths, a.tile, a.tile_overlap)
    runner = build_runner(weights, a.backend, a.device, a.dtype, workload=workload, warn=note,
                          streams=1 if len(paths) == 1 and not videos else default_threads(),
                          tiny_on_one_thread=not videos)
    if is_model_file(weights) and not weights.lower().endswith('.param'):
        say_what_it_loses(weights, note)  # int8 files carry a record of their loss; NCNN ones do not
    up = Upscaler(runner, a.tile, a.tile_overlap, a.batch or (16 if runner.device.type == 'cuda' else 1))
    from ..layout.locations import describe_weights
    print(f'weights: {describe_weights(weights)}', file=sys.stderr)
    print(f'backend: {chosen(runner, a.dtype)}', file=sys.stderr)
    # what the results depend on besides their input: a kept result is one this same work made (files/made.py)
    made_with = {'weights': model_digest(weights), 'scale': runner.upscale, 'ran': str(runner), 'tile': a.tile,
                 'tile_overlap': a.tile_overlap}
    done, skipped, again, failed = 0, [], [], []
    if images:
        with tqdm(total=len(images), desc='upscaling', unit='img') as bar:
            run = upscale_files(images, out_dir, up, a.force, bar.update,
                                lambda line: bar.write(line, file=sys.stderr), a.png_compression, made_with)
        done, skipped, again, failed = run.done, run.skipped, run.again, run.failed
    for path, rel in videos:
        out_path = out_file or _video_output(os.path.join(out_dir, rel), note)
        with tqdm(desc=os.path.basename(path), unit='frame', dynamic_ncols=True) as bar:
            def step(n, total=None, bar=bar):
                if total:
                    bar.total = total
                    bar.refresh()
                bar.update(n)
            try:
                os.makedirs(os.path.dirname(out_path) or '.', exist_ok=True)
                outcome = upscale_video(path, out_path, up, a.codec, a.crf, a.segment, a.force, made_with, step,
                                        lambda line: bar.write(line, file=sys.stderr))
            except PFDNError as err:
                failed.append(err)
                continue
        if outcome == 'kept':
            skipped.append(out_path)
        else:
            done += 1
            if outcome == 'again':
                again.append(out_path)
    if again:
        print(f'note: made again, with these weights and settings: {_listed(again)} (other weights or settings had '
              'made them)', file=sys.stderr)
    where = out_file or a.output
    print(f'{done} upscaled x{runner.upscale} into {where}' + (
        f'; {len(skipped)} kept: already made by this same work (--force makes them again)' if skipped else ''))
    flags = {'force': '--force', 'tile': '--tile', 'codec': '--codec', 'crf': '--crf', 'output': '-o'}
    for failure in failed:
        print(error_line(failure, flags), file=sys.stderr)
    return 1 if failed else 0


def inputs_and_output(sources: List[str], output: str, note: Callable[[str], None]) -> Tuple[List[Tuple[str, str]], str,
                      Optional[str]]:
    """([(input path, its output's relative name)], output folder, output file or None) for ``-i`` (one or more) and
    ``-o``: ``-o`` with a picture or video extension names the one result's file (one input file only: several are
    one error line), else it is a folder; two inputs whose results would take one name are one error line. The
    output is checked before anything is read or loaded."""
    from ..deploy.media.inputs import collect_inputs
    from ..deploy.media.video import MUXERS, VIDEO_EXTS, is_video
    from ..errors import OptionsError
    from ..files.images import IMAGE_EXTS, REFUSED
    from ..files.paths import input_file, output_dir, output_file

    for source in sources:  # an input that is not there is the first thing to say
        if not os.path.exists(source):
            input_file(source)  # not found, or a broken link
    ext = os.path.splitext(output)[1].lower()
    names_file = ext in IMAGE_EXTS + VIDEO_EXTS + tuple(REFUSED) and not os.path.isdir(output)
    if names_file:
        if len(sources) > 1 or not os.path.isfile(sources[0]):
            what = f'{len(sources)} inputs' if len(sources) > 1 else f'{sources[0]} is not one file'
            raise OptionsError(f'{output} names one file, but {what}: give a folder to write the results into',
                               'output')
        source = sources[0]
        if is_video(source) and ext not in MUXERS:
            raise OptionsError(f'{ext} is not a video container this writes ({", ".join(MUXERS)})', 'output')
        if not is_video(source) and ext not in IMAGE_EXTS:
            raise OptionsError(f'{ext} is not a picture format this writes ({", ".join(IMAGE_EXTS)})'
                               + (f': {REFUSED[ext]}' if ext in REFUSED else ''), 'output')
        output_file(output)
        out_dir = os.path.dirname(output) or '.'
        output_dir(out_dir)
        found = collect_inputs(source, None, note)
        return [(found[0][0], os.path.basename(output))], out_dir, output if is_video(source) else None
    output_dir(output)  # before anything is read or loaded
    inputs: List[Tuple[str, str]] = []
    taken: Dict[str, str] = {}
    for source in sources:
        for path, rel in collect_inputs(source, output, note):
            if rel in taken and os.path.realpath(taken[rel]) != os.path.realpath(path):
                raise OptionsError(f'{taken[rel]} and {path} would both be written as {rel} in {output}: run them one '
                                   'by one, or into different folders', 'input')
            if rel not in taken:
                taken[rel] = path
                inputs.append((path, rel))
    return inputs, output, None


def chosen(runner: Runner, asked: str) -> str:
    """What runs, said once: with ``--dtype auto`` the backend and precision it chose, and how to get exact results."""
    from ..deploy.runtime.base import ModelFile

    if asked != 'auto' or isinstance(runner, ModelFile):
        return str(runner)  # asked for, or a model file's own precision (int8, NCNN)
    if runner.dtype == 'fp32':
        from ..deploy.runtime.base import cached_precisions
        from ..deploy.runtime.costs import AUTO_DTYPES  # neither imports torch (the quick route has none)

        native = cached_precisions(type(runner), runner.device)  # type: ignore[arg-type]  # mypy: a class is hashable
        faster = [p for p in AUTO_DTYPES[runner.device.type] if p != 'fp32' and p in native]
        if faster:  # the cost model's choice: the faster precision's build costs more than it saves here
            return (f'{runner.name} fp32 (auto: for this work fp32 costs less than {faster[0]}, whose build would '
                    f'take longer than it saves; --dtype {faster[0]} runs it)')
        return f'{runner.name} fp32 (auto: {runner.name} runs no faster precision on {runner.device} here)'
    return f'{runner.name} {runner.dtype} (auto; --dtype fp32 for exact)'


def _listed(paths: List[str], most: int = 3) -> str:
    """Up to ``most`` names, then how many more."""
    shown = ', '.join(paths[:most])
    return shown + (f' and {len(paths) - most} more' if len(paths) > most else '')


def _video_output(path, note):
    """A video's output in a folder keeps its name; a container this cannot write becomes .mkv (with a note)."""
    from ..deploy.media.video import MUXERS

    stem, ext = os.path.splitext(path)
    if ext.lower() in MUXERS:
        return path
    note(f'note: {os.path.basename(path)}: {ext} cannot be written here; its result is {os.path.basename(stem)}.mkv')
    return stem + '.mkv'
