"""What ``basicsr infer`` is given: the image and video files a path names (a file, or a folder and its
subfolders), and the workload they make for the backends' cost model."""
import os
from typing import Callable, List, Optional, Tuple

from ...errors import DataError, PFDNError
from ...files.images import IMAGE_EXTS, REFUSED, image_size
from ...files.paths import input_file
from ..runtime.costs import Workload
from ..runtime.tiles import window_starts
from .video import VIDEO_EXTS, is_video, video_frames_shapes


def collect_inputs(path: str, out_dir: Optional[str] = None,
                   note: Callable[[str], None] = print) -> List[Tuple[str, str]]:
    """[(image or video path, its path relative to the input folder)] named by ``path``: a file, or every image and
    video under a folder (subfolders included; hidden ones and ``out_dir`` left out). Other files are named in one
    note."""
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
    found: list = []
    others: list = []
    for folder, subfolders, files in os.walk(path):
        # hidden names are not the user's pictures: a Mac's ._IMG_1234.jpg and .DS_Store, .thumbnails/, a
        # prepared folder's .X4.pfdn-sources.json, a write in progress; left out without a word
        subfolders[:] = sorted(d for d in subfolders if not d.startswith('.')
                               and os.path.realpath(os.path.join(folder, d)) != skip)
        for name in sorted(f for f in files if not f.startswith('.')):
            full = os.path.join(folder, name)
            (found if name.lower().endswith(media) else others).append(full)
    if not found:
        raise DataError(f'no images or videos ({", ".join(media)}) here or in its subfolders', path)
    if others:
        shown = ', '.join(os.path.relpath(p, path) for p in others[:3]) + (', ...' if len(others) > 3 else '')
        note(f'note: {len(others)} file(s) under {path} are not images or videos by their names and were left out '
             f'({shown})')
    return [(p, os.path.relpath(p, path)) for p in found]


def folder_workload(paths: List[str], tile: int = 0, overlap: int = 16) -> Workload:
    """The ``costs.Workload`` of upscaling ``paths``: their LR sizes from the files' headers, a video's once per
    frame (tiles of one size where ``tile`` splits an image)."""
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
