"""Upscaling image files: a file or a folder in, a folder of results out, every result written atomically.

A rerun keeps finished results (checked: complete, the x``scale`` result of its input) and reports an existing file
that is not one instead of replacing it; an input that cannot be read or run is reported and the rest go on.
"""
import os

import cv2

from ..errors import DataError, ImageError, OutputExists, PFDNError
from ..files.images import IMAGE_EXTS, list_images, read_image, write_image


def collect_inputs(path):
    """The image files named by ``path`` (a file, or a folder's images)."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        files = list_images(path)
        if not files:
            raise DataError(f'no images ({", ".join(IMAGE_EXTS)}) here', path)
        return files
    raise DataError('input not found', path)


def kept_output(out_path, src_shape, scale):
    """None when an existing output is a complete result for an input of ``src_shape`` (so a rerun keeps it);
    otherwise why it is not (a rerun reports it and leaves it alone: it may be the user's)."""
    try:
        out = read_image(out_path, cv2.IMREAD_UNCHANGED)
    except ImageError as err:
        return err.reason
    if out.shape[:2] != (src_shape[0] * scale, src_shape[1] * scale):
        return f'it is {out.shape[1]}x{out.shape[0]}, not the x{scale} result of this input'
    return None


class FolderRun:
    """What one run did: ``done`` (count), ``skipped`` (outputs kept), ``failed`` (PFDNError per file)."""

    def __init__(self):
        self.done, self.skipped, self.failed = 0, [], []


def upscale_files(inputs, out_dir, upscaler, force=False, progress=None):
    """Upscale ``inputs`` into ``out_dir`` (same file names) with an ``upscaler.Upscaler``; same-size images go
    through as one batch (up to ``upscaler.batch``). ``progress(n)`` is called as files are dealt with."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputExists(out_dir, 'is a file, not a folder for the results')
    os.makedirs(out_dir, exist_ok=True)
    run, pending = FolderRun(), []  # pending: (path, image) read but not yet upscaled
    step = progress or (lambda n: None)
    batch = 1 if upscaler.tile else upscaler.batch

    def flush():
        try:
            results = upscaler.upscale_images([img for _, img in pending])
        except (ValueError, RuntimeError) as err:
            run.failed.extend(PFDNError(str(err).splitlines()[0], path) for path, _ in pending)
            results = []
        for (path, _), result in zip(pending, results):
            write_image(os.path.join(out_dir, os.path.basename(path)), result)  # atomic: whole or absent
            run.done += 1
        step(len(pending))
        pending.clear()

    for path in inputs:
        out_path = os.path.join(out_dir, os.path.basename(path))
        if os.path.exists(out_path) and os.path.samefile(out_path, path):
            run.failed.append(PFDNError('the output would replace the input; choose another output folder', path))
            step(1)
            continue
        try:
            img = read_image(path, cv2.IMREAD_UNCHANGED)
        except ImageError as err:
            run.failed.append(err)
            step(1)
            continue
        if os.path.exists(out_path) and not force:
            why = kept_output(out_path, img.shape, upscaler.scale)
            if why is None:
                run.skipped.append(out_path)
            else:
                run.failed.append(OutputExists(out_path, f'exists but is not a complete result ({why}); it was left '
                                                         'as it is'))
            step(1)
            continue
        if pending and (pending[0][1].shape[:2] != img.shape[:2] or len(pending) >= batch):
            flush()
        pending.append((path, img))
    if pending:
        flush()
    return run
