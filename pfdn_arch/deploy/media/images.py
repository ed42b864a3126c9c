"""Upscaling image files into a folder of results (the same relative names, ``inputs.collect_inputs``), every
result written atomically, as a viewer shows its input (orientation, colour profile, grey, alpha and depth kept),
through the read -> run -> write ``pipeline.Pipeline``.

A rerun keeps finished results (checked: complete, the x``scale`` result of its input) and reports an existing file
that is not one instead of replacing it; an input that cannot be read or run is reported and the rest go on. What
cannot go on (the output's disk is full) stops the run.
"""
import os
from typing import List, Optional, Tuple

import cv2

from ...errors import ImageError, NotEnoughMemory, OutputExists, PFDNError
from ...files.images import read_image, read_picture, write_picture
from ...files.paths import disk_full, free_bytes, output_dir
from .pipeline import Pipeline


def kept_output(out_path: str, src_shape: tuple, scale: int) -> Optional[str]:
    """None when an existing output is a complete result for an input of ``src_shape`` (so a rerun keeps it);
    otherwise why it is not (a rerun reports it and leaves it alone: it may be the user's)."""
    try:
        out = read_image(out_path, cv2.IMREAD_UNCHANGED)
    except ImageError as err:
        return err.reason
    if out.shape[:2] != (src_shape[0] * scale, src_shape[1] * scale):
        return f'it is {out.shape[1]}x{out.shape[0]}, not the x{scale} result of this input'
    return None


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), or None where unknown."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class FolderRun:
    """What one run did: ``done`` (count), ``skipped`` (outputs kept), ``failed`` (PFDNError per file, in input
    order)."""

    def __init__(self):
        self.done, self.skipped, self.failed = 0, [], []


READ_AHEAD, WRITE_BEHIND = 4, 4  # images decoded ahead of the network, and results waiting to be encoded


def upscale_files(inputs: List[Tuple[str, str]], out_dir: str, upscaler, force: bool = False, progress=None, note=print,
                  png_compression: int = None) -> FolderRun:
    """Upscale ``inputs`` ([(path, relative path)]) into ``out_dir`` with an ``upscaler.Upscaler``; same-size
    images go through as one batch (up to ``upscaler.batch``). ``progress(n)`` is called as files are dealt with.

    Reading and writing overlap the network (``pipeline.Pipeline``): a thread decodes the next images while it
    runs, and the results are encoded and written in input order, each atomically, every failure reported against
    its file. ``png_compression``: zlib level 0-9 of PNG results, by OpenCV (None: the fast encoder,
    ``files.png_writer``)."""
    output_dir(out_dir)
    run, failures = FolderRun(), {}
    step = progress or (lambda n: None)
    memory = available_memory()
    params = None if png_compression is None else [cv2.IMWRITE_PNG_COMPRESSION, png_compression]

    def read():
        for index, (path, rel) in enumerate(inputs):
            yield (index,) + _prepared(path, os.path.join(out_dir, rel), upscaler, force, memory, note)

    def batch_key(item):
        _, kind, _, picture = item
        if kind != 'image' or upscaler.tiled(*picture.pixels.shape[:2]):
            return None  # not run, or run alone in tiles
        return picture.pixels.shape

    def work(items):
        images = [item for item in items if item[1] == 'image']
        if not images:  # kept or failed already: nothing to run
            return [None] * len(items)
        try:
            finishes = iter(upscaler.run_images([picture.pixels for _, _, _, picture in images]))
        except (ValueError, RuntimeError) as err:  # the network refused them (their size, their values)
            reason = str(err).splitlines()[0]
            return [PFDNError(reason, inputs[index][0]) if kind == 'image' else None for index, kind, _, _ in items]
        return [next(finishes) if kind == 'image' else None for _, kind, _, _ in items]

    def write(item, finish):
        index, kind, out_path, value = item
        if kind == 'failed':
            failures[index] = value
        elif kind == 'kept':
            run.skipped.append(out_path)
        elif isinstance(finish, PFDNError):
            failures[index] = finish
        else:
            try:
                value.pixels = finish()  # made here on a GPU run, beside the network on a CPU (Upscaler)
                os.makedirs(os.path.dirname(out_path) or '.', exist_ok=True)
                write_picture(out_path, value, note, params)  # atomic: whole or absent
                run.done += 1
            except OSError as err:
                if disk_full(err):  # nothing after this one could be written either: the run stops
                    raise PFDNError(f'the disk is full ({(free_bytes(out_dir) or 0) / 2**20:.0f} MB free); the '
                                    'results written before are kept, this one was not written', out_path) from None
                failures[index] = PFDNError(f'cannot be written ({err.strerror})', out_path)
            except PFDNError as err:  # this file's result cannot be made or encoded: the others go on
                failures[index] = err
        step(1)

    # the runtime may run several images at once (OpenVINO's streams): a worker thread each
    Pipeline(work, workers=upscaler.runner.streams, batch=upscaler.batch, batch_key=batch_key,
             ahead=READ_AHEAD, behind=WRITE_BEHIND).run(read(), write)
    run.failed = [failures[i] for i in sorted(failures)]
    return run


def _prepared(path, out_path, upscaler, force, memory, note):
    """('image', out path, Picture) for an input to run, or ('kept', out path, None) / ('failed', out path, error)."""
    if os.path.exists(out_path) and os.path.samefile(out_path, path):
        return 'failed', out_path, PFDNError('the output would replace the input; choose another output folder', path)
    try:
        picture = read_picture(path)
    except ImageError as err:
        return 'failed', out_path, err
    if picture.frames > 1:
        note(f'note: {path}: {picture.frames} frames (an animation or pages); only the first is upscaled')
    pixels = picture.pixels
    if os.path.exists(out_path) and not force:
        why = kept_output(out_path, pixels.shape, upscaler.scale)
        if why is None:
            return 'kept', out_path, None
        return 'failed', out_path, OutputExists(out_path, f'exists but is not a complete result ({why}); it was left '
                                                          'as it is')
    need = upscaler.memory_needed(pixels.shape[0], pixels.shape[1], 1 if pixels.ndim == 2 else pixels.shape[2],
                                  pixels.dtype.itemsize)
    if memory is not None and need > memory:
        return 'failed', out_path, NotEnoughMemory(
            f'{pixels.shape[1]}x{pixels.shape[0]} needs about {need / 2**30:.1f} GB to upscale'
            + (' in tiles of this size' if upscaler.tiled(*pixels.shape[:2]) else ' whole')
            + f', and {memory / 2**30:.1f} GB are available', path)
    return 'image', out_path, picture
