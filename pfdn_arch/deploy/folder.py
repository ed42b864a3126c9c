"""Upscaling image files: a file or a folder (subfolders included) in, a folder of results out (the same relative
names), every result written atomically, as a viewer shows its input (orientation, colour profile, grey, alpha and
depth kept). Videos in a folder are collected with the images and run by ``video.py``.

A rerun keeps finished results (checked: complete, the x``scale`` result of its input) and reports an existing file
that is not one instead of replacing it; an input that cannot be read or run is reported and the rest go on. What
cannot go on (the output's disk is full) stops the run.
"""
import os
import queue
import threading

from ..errors import DataError, ImageError, NotEnoughMemory, OutputExists, PFDNError
from ..files.images import IMAGE_EXTS, REFUSED, read_image, read_picture, write_picture
from ..files.paths import disk_full, free_bytes, input_file, output_dir
from .queues import put_unless_stopped


def collect_inputs(path, out_dir=None, note=print):
    """[(image or video path, its path relative to the input folder)] named by ``path``: a file, or every image and
    video under a folder (subfolders included; ``out_dir`` left out when it lies inside). Other files are named in
    one note."""
    from .video import VIDEO_EXTS

    media = IMAGE_EXTS + VIDEO_EXTS
    if os.path.isfile(path) or (os.path.exists(path) and not os.path.isdir(path)):
        input_file(path)
        ext = os.path.splitext(path)[1].lower()
        if ext in REFUSED:
            raise DataError(REFUSED[ext], path)
        if not path.lower().endswith(media):
            raise DataError(f'{ext or "no extension"}: not a picture or video format this reads (pictures: '
                            f'{", ".join(IMAGE_EXTS)}; videos: {", ".join(VIDEO_EXTS)})', path)
        return [(path, os.path.basename(path))]
    if not os.path.isdir(path):
        input_file(path)  # says why: not found, a broken link, ...
    skip = os.path.realpath(out_dir) if out_dir else None
    found, others = [], []
    for folder, subfolders, files in os.walk(path):
        subfolders[:] = sorted(d for d in subfolders if os.path.realpath(os.path.join(folder, d)) != skip)
        for name in sorted(files):
            full = os.path.join(folder, name)
            (found if name.lower().endswith(media) else others).append(full)
    if not found:
        raise DataError(f'no images or videos ({", ".join(media)}) here or in its subfolders', path)
    if others:
        shown = ', '.join(os.path.relpath(p, path) for p in others[:3]) + (', ...' if len(others) > 3 else '')
        note(f'note: {len(others)} file(s) under {path} are not images or videos by their names and were left out '
             f'({shown})')
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


def folder_workload(paths, tile=0, overlap=16):
    """The ``backends.Workload`` of upscaling ``paths``: their LR sizes from the files' headers, a video's once per
    frame (tiles of one size where ``tile`` splits an image)."""
    from ..files.images import image_size
    from .backends import Workload
    from .tiles import window_starts
    from .video import is_video, video_frames_shapes

    shapes = []
    for path in paths:
        try:
            sizes = video_frames_shapes(path) if is_video(path) else [image_size(path)]
        except PFDNError:
            continue  # reported when it is read
        for h, w in sizes:
            if tile and (h > tile or w > tile):
                th, tw = min(tile, h), min(tile, w)
                shapes += [(th, tw)] * (len(window_starts(h, tile, tile - overlap))
                                        * len(window_starts(w, tile, tile - overlap)))
            else:
                shapes.append((h, w))
    return Workload.of(shapes)


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
    """What one run did: ``done`` (count), ``skipped`` (outputs kept), ``failed`` (PFDNError per file, in input
    order)."""

    def __init__(self):
        self.done, self.skipped, self.failed = 0, [], []


READ_AHEAD, WRITE_BEHIND = 4, 4  # images decoded ahead of the network, and results waiting to be encoded


def upscale_files(inputs, out_dir, upscaler, force=False, progress=None, note=print, png_compression=None):
    """Upscale ``inputs`` ([(path, relative path)]) into ``out_dir`` with an ``upscaler.Upscaler``; same-size
    images go through as one batch (up to ``upscaler.batch``). ``progress(n)`` is called as files are dealt with.

    Reading and writing overlap the network: a thread decodes the next images while it runs and another encodes
    and writes the results behind it (bounded queues, so memory stays a few images), each result still written
    atomically and every failure reported against its file, in input order. ``png_compression``: zlib level 0-9 of
    PNG results (None: OpenCV's default, the fastest that compresses)."""
    output_dir(out_dir)
    run, failures = FolderRun(), {}
    step = progress or (lambda n: None)
    memory = available_memory()
    params = None if png_compression is None else [cv2_png_level(), png_compression]
    to_run, to_write = queue.Queue(READ_AHEAD), queue.Queue(WRITE_BEHIND)
    stop, raised = threading.Event(), []

    def put(q, item):
        put_unless_stopped(q, item, stop)

    def read():
        try:
            for index, (path, rel) in enumerate(inputs):
                if stop.is_set():
                    break
                put(to_run, (index,) + _prepared(path, os.path.join(out_dir, rel), upscaler, force, memory, note))
        except BaseException as err:  # KeyboardInterrupt included: the main thread re-raises it
            raised.append(err)
            stop.set()
        finally:
            put(to_run, None)

    def write():
        try:
            while True:
                item = to_write.get()
                if item is None or stop.is_set():
                    break
                index, out_path, picture, finish = item
                try:
                    picture.pixels = finish()  # the result's pixels, made here rather than beside the network
                    os.makedirs(os.path.dirname(out_path) or '.', exist_ok=True)
                    write_picture(out_path, picture, note, params)  # atomic: whole or absent
                    run.done += 1
                except OSError as err:
                    if disk_full(err):  # nothing after this one could be written either: the run stops
                        raise PFDNError(f'the disk is full ({(free_bytes(out_dir) or 0) / 2**20:.0f} MB free); the '
                                        'results written before are kept, this one was not written', out_path) from None
                    failures[index] = PFDNError(f'cannot be written ({err.strerror})', out_path)
                except PFDNError as err:  # this file's result cannot be made or encoded: the others go on
                    failures[index] = err
                step(1)
        except BaseException as err:
            raised.append(err)
            stop.set()

    def flush(pending):
        try:
            results = upscaler.run_images([p.pixels for _, _, p in pending])
        except (ValueError, RuntimeError) as err:
            for index, out_path, _ in pending:
                failures[index] = PFDNError(str(err).splitlines()[0], inputs[index][0])
            step(len(pending))
            results = []
        for (index, out_path, picture), finish in zip(pending, results):
            put(to_write, (index, out_path, picture, finish))
        pending.clear()

    def run_network():
        """Take read images and run them: same-size ones as one batch (up to ``upscaler.batch``)."""
        pending = []  # (index, out path, picture) read and waiting for a batch
        try:
            while not stop.is_set():
                try:
                    item = to_run.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is None:
                    to_run.put(None)  # for the other network threads
                    break
                index, kind, out_path, value = item
                if kind == 'failed':
                    failures[index] = value
                    step(1)
                elif kind == 'kept':
                    run.skipped.append(out_path)
                    step(1)
                else:
                    shape = value.pixels.shape
                    if pending and (pending[0][2].pixels.shape != shape or len(pending) >= upscaler.batch
                                    or upscaler.tiled(*shape[:2])):
                        flush(pending)
                    pending.append((index, out_path, value))
            if pending and not stop.is_set():
                flush(pending)
        except BaseException as err:
            raised.append(err)
            stop.set()

    # the runtime may run several images at once (OpenVINO's streams): a network thread each; else this thread
    extra = [threading.Thread(target=run_network, daemon=True) for _ in range(upscaler.runner.streams - 1)]
    threads = [threading.Thread(target=read, daemon=True), threading.Thread(target=write, daemon=True)] + extra
    for thread in threads:
        thread.start()
    reader, writer = threads[:2]
    try:
        run_network()
        for thread in extra:
            thread.join()
        put(to_write, None)
        writer.join()
    finally:
        if writer.is_alive():  # stopped by an interrupt here: the results already computed are still written
            put(to_write, None)
            writer.join(timeout=60)
        stop.set()
        for thread in [reader] + extra:
            thread.join(timeout=60)
    if raised:
        raise raised[0]
    run.failed = [failures[i] for i in sorted(failures)]
    return run


def cv2_png_level():
    import cv2
    return cv2.IMWRITE_PNG_COMPRESSION


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
