"""Upscaling image files: a file or a folder (subfolders included) in, a folder of results out (the same relative
names), every result written atomically, as a viewer shows its input (orientation, colour profile, grey, alpha and
depth kept).

A rerun keeps finished results (checked: complete, the x``scale`` result of its input) and reports an existing file
that is not one instead of replacing it; an input that cannot be read or run is reported and the rest go on. What
cannot go on (the output's disk is full) stops the run.
"""
import os

from ..errors import DataError, ImageError, NotEnoughMemory, OutputExists, PFDNError
from ..files.images import IMAGE_EXTS, read_image, read_picture, write_picture
from ..files.paths import disk_full, free_bytes, input_file, output_dir


def collect_inputs(path, out_dir=None, note=print):
    """[(image path, its path relative to the input folder)] named by ``path``: a file, or every image under a
    folder (subfolders included; ``out_dir`` left out when it lies inside). Other files are named in one note."""
    if os.path.isfile(path) or (os.path.exists(path) and not os.path.isdir(path)):
        input_file(path)
        if not path.lower().endswith(IMAGE_EXTS):
            raise DataError(f'{os.path.splitext(path)[1] or "no extension"} is not an image file name; results take '
                            f'the name and format of their input ({", ".join(IMAGE_EXTS)}): rename it', path)
        return [(path, os.path.basename(path))]
    if not os.path.isdir(path):
        input_file(path)  # says why: not found, a broken link, ...
    skip = os.path.realpath(out_dir) if out_dir else None
    found, others = [], []
    for folder, subfolders, files in os.walk(path):
        subfolders[:] = sorted(d for d in subfolders if os.path.realpath(os.path.join(folder, d)) != skip)
        for name in sorted(files):
            full = os.path.join(folder, name)
            (found if name.lower().endswith(IMAGE_EXTS) else others).append(full)
    if not found:
        raise DataError(f'no images ({", ".join(IMAGE_EXTS)}) here or in its subfolders', path)
    if others:
        shown = ', '.join(os.path.relpath(p, path) for p in others[:3]) + (', ...' if len(others) > 3 else '')
        note(f'note: {len(others)} file(s) under {path} are not images by their names and were left out ({shown})')
    return [(p, os.path.relpath(p, path)) for p in found]


def kept_output(out_path, src_shape, scale):
    """None when an existing output is a complete result for an input of ``src_shape`` (so a rerun keeps it);
    otherwise why it is not (a rerun reports it and leaves it alone: it may be the user's)."""
    import cv2

    try:
        out = read_image(out_path, cv2.IMREAD_UNCHANGED)
    except ImageError as err:
        return err.reason
    if out.shape[:2] != (src_shape[0] * scale, src_shape[1] * scale):
        return f'it is {out.shape[1]}x{out.shape[0]}, not the x{scale} result of this input'
    return None


def available_memory():
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
    """What one run did: ``done`` (count), ``skipped`` (outputs kept), ``failed`` (PFDNError per file)."""

    def __init__(self):
        self.done, self.skipped, self.failed = 0, [], []


def upscale_files(inputs, out_dir, upscaler, force=False, progress=None, note=print):
    """Upscale ``inputs`` ([(path, relative path)]) into ``out_dir`` with an ``upscaler.Upscaler``; same-size
    images go through as one batch (up to ``upscaler.batch``). ``progress(n)`` is called as files are dealt with."""
    output_dir(out_dir)
    run, pending = FolderRun(), []  # pending: (path, out path, picture) read but not yet upscaled
    step = progress or (lambda n: None)
    memory = available_memory()

    def flush():
        try:
            results = upscaler.upscale_images([p.pixels for _, _, p in pending])
        except (ValueError, RuntimeError) as err:
            run.failed.extend(PFDNError(str(err).splitlines()[0], path) for path, _, _ in pending)
            results = []
        for (path, out_path, picture), result in zip(pending, results):
            picture.pixels = result
            os.makedirs(os.path.dirname(out_path) or '.', exist_ok=True)
            try:
                write_picture(out_path, picture, note)  # atomic: whole or absent
            except OSError as err:
                if disk_full(err):
                    raise PFDNError(f'the disk is full ({(free_bytes(out_dir) or 0) / 2**20:.0f} MB free); the results '
                                    'written before are kept, this one was not written', out_path) from None
                raise PFDNError(f'cannot be written ({err.strerror})', out_path) from None
            run.done += 1
        step(len(pending))
        pending.clear()

    for path, rel in inputs:
        out_path = os.path.join(out_dir, rel)
        if os.path.exists(out_path) and os.path.samefile(out_path, path):
            run.failed.append(PFDNError('the output would replace the input; choose another output folder', path))
            step(1)
            continue
        try:
            picture = read_picture(path)
        except ImageError as err:
            run.failed.append(err)
            step(1)
            continue
        if picture.frames > 1:
            note(f'note: {path}: {picture.frames} frames (an animation or pages); only the first is upscaled')
        pixels = picture.pixels
        if os.path.exists(out_path) and not force:
            why = kept_output(out_path, pixels.shape, upscaler.scale)
            if why is None:
                run.skipped.append(out_path)
            else:
                run.failed.append(OutputExists(out_path, f'exists but is not a complete result ({why}); it was left '
                                                         'as it is'))
            step(1)
            continue
        need = upscaler.memory_needed(pixels.shape[0], pixels.shape[1], 1 if pixels.ndim == 2 else pixels.shape[2],
                                      pixels.dtype.itemsize)
        if memory is not None and need > memory:
            run.failed.append(NotEnoughMemory(
                f'{pixels.shape[1]}x{pixels.shape[0]} needs about {need / 2**30:.1f} GB to upscale'
                + (' in tiles of this size' if upscaler.tiled(*pixels.shape[:2]) else ' whole')
                + f', and {memory / 2**30:.1f} GB are available', path))
            step(1)
            continue
        if pending and (pending[0][2].pixels.shape != pixels.shape or len(pending) >= upscaler.batch
                        or upscaler.tiled(*pixels.shape[:2])):
            flush()
        pending.append((path, out_path, picture))
    if pending:
        flush()
    return run
