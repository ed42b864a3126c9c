"""Upscaling image files into a folder of results (the same relative names, ``inputs.collect_inputs``), every
result written atomically, as a viewer shows its input (orientation, colour profile, grey, alpha and depth kept),
through the read -> run -> write ``pipeline.Pipeline``.

Each picture is one typed item as it goes through (``ToRun``, ``Kept``, ``Failed``), and each thread has one job:

- the reader thread (``_prepared``): decodes the next input and decides what it is: a result to make (``ToRun``), an
  existing output that already is its result (``Kept``), or an input that cannot be made (``Failed``);
- the worker threads (``work``, as many as the runtime's streams): run the network on a batch of ``ToRun`` items;
  a batch that runs out of memory is run again one picture at a time, then in ever smaller tiles, and only where
  even the smallest tile does not fit does the run stop, once, saying which ``--tile`` to pass;
- the calling thread (``write``): makes each result's pixels where the network ran elsewhere, encodes and writes
  them, in input order, and keeps the tally.

A rerun keeps finished results (checked: complete, the x``scale`` result of its input) and reports an existing file
that is not one instead of replacing it; an input that cannot be read or run is reported and the rest go on. What
cannot go on (the output's disk is full, memory that no tile size fits, a runtime that fails) stops the run.
"""
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import cv2
import numpy as np

from ...archs.pfdn.limits import MIN_INPUT_SIZE
from ...errors import ImageError, NotEnoughMemory, OutputExists, PFDNError
from ...files.images import Picture, image_header, read_picture, write_picture
from ...files.paths import PathError, disk_full, free_bytes, input_file, output_dir
from ...files.sources import digest
from ...files.made import SAME, UNKNOWN, Made, bytes_digest
from ..runtime.base import out_of_memory
from ..runtime.upscaler import Upscaler
from .pipeline import Pipeline

READ_AHEAD, WRITE_BEHIND = 4, 4  # images decoded ahead of the network, and results waiting to be encoded


@dataclass
class ToRun:
    """A picture read, whose result is to be made; ``tile``: the LR tile side it runs in (0: the run's setting);
    ``work``: what makes its result (``made``); ``again``: its output was another work's result, made again."""
    index: int
    path: str
    out_path: str
    picture: Picture
    tile: int = 0
    work: Dict[str, Any] = field(default_factory=dict)
    again: bool = False


@dataclass
class Kept:
    """An existing output that is already this input's complete result (a rerun keeps it)."""
    index: int
    path: str
    out_path: str


@dataclass
class Failed:
    """An input whose result cannot be made (``error`` says why); the others go on."""
    index: int
    path: str
    out_path: str
    error: PFDNError


Item = Union[ToRun, Kept, Failed]
Finish = Callable[[], np.ndarray]  # the call that gives a result's pixels (``Upscaler.run_images``)


@dataclass
class FolderRun:
    """What one run did: ``done`` (count), ``skipped`` (outputs kept: this same work's), ``again`` (outputs another
    work had made, made anew), ``failed`` (PFDNError per file, in input order)."""
    done: int = 0
    skipped: List[str] = field(default_factory=list)
    again: List[str] = field(default_factory=list)
    failed: List[PFDNError] = field(default_factory=list)


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


def _prepared(index: int, path: str, out_path: str, upscaler: Upscaler, force: bool, memory: Optional[int],
              note: Callable[[str], None], made_with: Dict[str, Any]) -> Item:
    """The item input ``index`` makes (the reader thread): kept where its output already is this same work's result
    (``made``; ``made_with``: the run's part of the work, the input's digest added here), refused from its header
    where its result could never be held, else decoded and given the tile side the memory there is allows
    (``fitting_tile``)."""
    if os.path.exists(out_path) and os.path.samefile(out_path, path):
        return Failed(index, path, out_path, PFDNError('the output would replace the input; choose another output '
                                                       'folder', path))
    try:
        input_file(path)  # a FIFO or a device is refused before its digest would read it without end
        work = dict(made_with, input=digest(path))
    except PathError as err:
        return Failed(index, path, out_path, ImageError(err.reason, path))
    except OSError as err:
        return Failed(index, path, out_path, ImageError(f'cannot be read ({err.strerror or err})', path))
    again = False
    if os.path.lexists(out_path) and not force:
        verdict = Made(out_path).verdict(work)
        if verdict == SAME:
            return Kept(index, path, out_path)
        if verdict == UNKNOWN:
            return Failed(index, path, out_path, OutputExists(out_path, 'exists and is not a result this command made '
                                                                        'of this input; it was left as it is'))
        again = True  # ours, made by other weights or settings: made anew, and said so
    try:
        too_large = _result_cannot_fit(path, upscaler.scale, memory)
        if too_large:
            return Failed(index, path, out_path, NotEnoughMemory(too_large, path))
        picture = read_picture(path)
    except ImageError as err:
        return Failed(index, path, out_path, err)
    if picture.frames > 1:
        note(f'note: {path}: {picture.frames} frames (an animation or pages); only the first is upscaled')
    pixels = picture.pixels
    try:
        tile = fitting_tile(upscaler, pixels, memory)
    except NotEnoughMemory as err:
        return Failed(index, path, out_path, NotEnoughMemory(err.reason, path))
    if tile != upscaler.tile:
        h, w = pixels.shape[:2]
        note(f'note: {path}: {w}x{h} does not fit in memory whole; upscaled in tiles of {tile} (the result of '
             f'--tile {tile})')
    return ToRun(index, path, out_path, picture, tile, work, again)


# the share of the available memory one picture may take: the pictures read ahead and written behind take theirs
MEMORY_SHARE = 0.6
# LR tile sides tried, largest first, where a picture does not fit whole: larger tiles run less overlap, but on a CPU
# tiles over 1024 ran slower (docs/benchmarks.md, "Figures behind the code's choices")
AUTO_TILES = (1024, 768, 512, 256, 128, 64)


def fitting_tile(upscaler: Upscaler, pixels: np.ndarray, memory: Optional[int]) -> int:
    """The tile side a picture runs in: the run's own (``--tile``, or 0: whole) where it fits in ``memory`` (bytes
    available; None: unknown), else the largest of ``AUTO_TILES`` that does, which ``--tile`` of that side would give
    too. NotEnoughMemory where a ``--tile`` given does not fit, naming one that does, or none fits."""
    h, w = pixels.shape[:2]
    channels, itemsize = 1 if pixels.ndim == 2 else pixels.shape[2], pixels.dtype.itemsize
    if memory is None:
        return upscaler.tile
    budget = memory * MEMORY_SHARE

    def need(tile: int) -> int:
        return upscaler.with_tile(tile).memory_needed(h, w, channels, itemsize)
    if need(upscaler.tile) <= budget:
        return upscaler.tile
    fits = next((t for t in AUTO_TILES if t < max(h, w) and need(t) <= budget), None)
    if fits is None:
        raise NotEnoughMemory(f'{w}x{h} needs about {_amount(need(AUTO_TILES[-1]))} to upscale even in tiles of '
                              f'{AUTO_TILES[-1]}, more than the {_amount(budget)} one picture may take of the '
                              f'{_amount(memory)} available')
    if upscaler.tile:
        raise NotEnoughMemory(f'{w}x{h} needs about {_amount(need(upscaler.tile))} to upscale in tiles of '
                              f'{upscaler.tile}, and {_amount(memory)} are available: leave --tile out (tiles are '
                              f'then sized to fit), or pass --tile {fits}')
    return fits


def _result_cannot_fit(path: str, scale: int, memory: Optional[int]) -> Optional[str]:
    """Why a picture's result could never be held in ``memory`` (bytes available), read from its header before it is
    decoded; None where it could (or the memory is unknown)."""
    h, w, channels, itemsize = image_header(path)
    result = h * scale * w * scale * channels * itemsize
    if memory is None or result <= memory:
        return None
    return (f'{w}x{h}: its x{scale} result, {w * scale}x{h * scale}, takes {_amount(result)} to hold, and '
            f'{_amount(memory)} of memory are available: no tile size changes that; upscale it in parts (crops), or '
            'on a machine with more memory')


def _amount(size: float) -> str:
    return f'{size / 2**30:.1f} GB' if size >= 2**30 else f'{size / 2**20:.0f} MB'


def smaller_tiles(h: int, w: int, tile: int) -> List[int]:
    """The tile sides to try after a picture of LR size h x w ran out of memory in tiles of ``tile`` (0: whole):
    halving from the largest side that splits it, down to the smallest PFDN runs."""
    side = tile // 2 if tile else 1 << (max(h, w) - 1).bit_length() - 1
    sides = []
    while side >= MIN_INPUT_SIZE:
        sides.append(side)
        side //= 2
    return sides or [MIN_INPUT_SIZE]


def run_in_smaller_pieces(upscaler: Upscaler, items: List[ToRun]) -> List[Finish]:
    """Pictures whose batch ran out of memory, again: one at a time, then each in smaller tiles. NotEnoughMemory,
    naming the tile to pass, where even the smallest tile does not fit."""
    finishes = []
    for item in items:
        pixels = item.picture.pixels
        h, w = pixels.shape[:2]
        tried = item.tile or upscaler.tile
        sides = ([tried] if len(items) > 1 else []) + smaller_tiles(h, w, tried)  # alone, then in smaller tiles
        finish = next((f for f in (_unless_out_of_memory(upscaler.with_tile(side), pixels) for side in sides)
                       if f is not None), None)
        if finish is None:
            raise NotEnoughMemory(f'{w}x{h} ran out of memory on {upscaler.runner} whole and in tiles down to '
                                  f'{MIN_INPUT_SIZE} px; close what else uses the device, or pass --tile '
                                  f'{MIN_INPUT_SIZE} with --batch 1', item.path)
        finishes.append(finish)
    return finishes


def _unless_out_of_memory(upscaler: Upscaler, pixels: np.ndarray) -> Optional[Finish]:
    """The picture run by ``upscaler``, or None where its device ran out of memory."""
    try:
        return upscaler.run_images([pixels])[0]
    except Exception as err:
        if not out_of_memory(err):
            raise
        return None


def upscale_files(inputs: List[Tuple[str, str]], out_dir: str, upscaler: Upscaler, force: bool = False,
                  progress: Optional[Callable[[int], object]] = None, note: Callable[[str], None] = print,
                  png_compression: Optional[int] = None, made_with: Optional[Dict[str, Any]] = None) -> FolderRun:
    """Upscale ``inputs`` ([(path, relative path)]) into ``out_dir`` with an ``upscaler.Upscaler``; same-size
    images go through as one batch (up to ``upscaler.batch``). ``progress(n)`` is called as files are dealt with.
    The threads and what each does: the module's docstring. ``png_compression``: zlib level 0-9 of PNG results, by
    OpenCV (None: the fast encoder, ``files.png_writer``). ``made_with``: what else makes the results (the weights'
    digest, what runs in which precision), recorded beside each result (``made``)."""
    output_dir(out_dir)
    run, failures = FolderRun(), {}  # failures: {input index: error}, reported in input order
    step = progress or (lambda n: None)
    memory = available_memory()
    params = None if png_compression is None else [cv2.IMWRITE_PNG_COMPRESSION, png_compression]

    def reader():
        for index, (path, rel) in enumerate(inputs):
            yield _prepared(index, path, os.path.join(out_dir, rel), upscaler, force, memory, note, made_with or {})

    def batch_key(item: object) -> Optional[tuple]:
        if not isinstance(item, ToRun) or item.tile or upscaler.tiled(*item.picture.pixels.shape[:2]):
            return None  # not run, or run alone in tiles
        return item.picture.pixels.shape

    def work(items: List[Item]) -> List[object]:
        """A worker thread: the network on the batch's pictures; a finish per ``ToRun``, None for the others, or
        the error that fails them all."""
        pictures = [item for item in items if isinstance(item, ToRun)]
        if not pictures:
            return [None] * len(items)
        finishes: List[object]
        try:
            finishes = list(upscaler.with_tile(pictures[0].tile or upscaler.tile).run_images(
                [item.picture.pixels for item in pictures]))
        except ValueError as err:  # the network refused them (their size, its values): each fails, the rest go on
            finishes = [PFDNError(str(err).splitlines()[0], item.path) for item in pictures]
        except PFDNError:
            raise
        except Exception as err:
            if not out_of_memory(err):
                raise PFDNError(f'{upscaler.runner} failed ({str(err).splitlines()[0][:200]}); the results written '
                                'before are kept', pictures[0].path) from None
            finishes = list(run_in_smaller_pieces(upscaler, pictures))
        by_index = {item.index: finish for item, finish in zip(pictures, finishes)}
        return [by_index.get(item.index) for item in items]

    def write(item: object, result: object) -> None:
        """The calling thread: each result written, in input order."""
        if isinstance(item, Failed):
            failures[item.index] = item.error
        elif isinstance(item, Kept):
            run.skipped.append(item.out_path)
        elif isinstance(item, ToRun) and isinstance(result, PFDNError):
            failures[item.index] = result
        elif isinstance(item, ToRun) and callable(result):
            _write_result(item, result, out_dir, note, params, run, failures)
        step(1)

    # the runtime may run several images at once (OpenVINO's streams): a worker thread each
    Pipeline(work, workers=upscaler.runner.streams, batch=upscaler.batch, batch_key=batch_key,
             ahead=READ_AHEAD, behind=WRITE_BEHIND).run(reader(), write)
    run.failed = [failures[i] for i in sorted(failures)]
    return run


def _write_result(item: ToRun, finish: Finish, out_dir: str, note: Callable[[str], None], params: Optional[list],
                  run: FolderRun, failures: Dict[int, PFDNError]) -> None:
    try:
        item.picture.pixels = finish()  # made here on a GPU run, beside the network on a CPU (Upscaler)
        os.makedirs(os.path.dirname(item.out_path) or '.', exist_ok=True)
        made = Made(item.out_path)
        # atomic, whole or absent; its record first, so that a result of ours at that name is always in it
        write_picture(item.out_path, item.picture, note, params,
                      before=lambda data: made.record(bytes_digest(data), item.work))
        run.done += 1
        if item.again:
            run.again.append(item.out_path)
    except OSError as err:
        Made(item.out_path).drop_if_unwritten()
        if disk_full(err):  # nothing after this one could be written either: the run stops
            raise PFDNError(f'the disk is full ({(free_bytes(out_dir) or 0) / 2**20:.0f} MB free); the results '
                            'written before are kept, this one was not written', item.out_path) from None
        failures[item.index] = PFDNError(f'cannot be written ({err.strerror})', item.out_path)
    except PFDNError as err:  # this file's result cannot be made or encoded: the others go on
        failures[item.index] = err
