"""Image files: every image this package reads or writes goes through here.

``read_image`` refuses what would otherwise become a silent wrong result or a traceback: a file that is cut short
(OpenCV decodes a truncated JPEG into an image with a grey bottom and says nothing), one whose header claims more
pixels than OpenCV decodes, one that does not decode at all. ``write_image`` writes atomically.
"""
import glob
import os

import cv2

from ..errors import ImageError, PFDNError
from .atomic import write_bytes

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
MAX_PIXELS = 1 << 30  # OpenCV's decoding limit (CV_IO_MAX_IMAGE_PIXELS)


def list_images(folder):
    """The image files of a folder (by extension), sorted."""
    return sorted(p for p in glob.glob(os.path.join(glob.escape(folder), '*')) if p.lower().endswith(IMAGE_EXTS))


def read_image(path, flags=cv2.IMREAD_COLOR):
    """``cv2.imread`` that raises ImageError for a missing, truncated, oversized or undecodable file instead of
    returning None or a partly decoded image."""
    try:
        with open(path, 'rb') as f:
            head = f.read(32)
            f.seek(max(os.fstat(f.fileno()).st_size - 64, 0))
            tail = f.read()
    except OSError as err:
        raise ImageError(f'cannot read ({err.strerror})', path) from None
    if not _complete(path, head, tail):
        raise ImageError('the file is truncated (cut short while it was written or copied)', path)
    try:
        img = cv2.imread(path, flags)
    except cv2.error as err:
        if 'CV_IO_MAX_IMAGE_PIXELS' in str(err):
            raise ImageError(f'more pixels than OpenCV decodes ({MAX_PIXELS:,}); downscale or split it first',
                             path) from None
        raise ImageError(f'cannot decode ({str(err).strip().splitlines()[-1]})', path) from None
    if img is None:
        raise ImageError('unreadable or corrupt image', path)
    return img


def image_size(path):
    """(h, w) of an image file from its header, without decoding it (PIL); decoded when PIL cannot read the
    header (ImageError when that fails too)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[::-1]
    except Exception:
        return read_image(path).shape[:2]


def _complete(path, head, tail):
    """Whether the file ends the way its format ends (the formats whose decoders accept a truncated file)."""
    if head.startswith(b'\xff\xd8'):  # JPEG: ends with the EOI marker; data after it is tolerated by PIL's check
        if tail.rstrip(b'\x00\r\n ').endswith(b'\xff\xd9'):
            return True
        try:
            from PIL import Image
            with Image.open(path) as im:
                im.load()
            return True
        except Exception:
            return False
    if head.startswith(b'\x89PNG'):
        return b'IEND' in tail
    return True


def write_image(path, img, params=None):
    """``cv2.imwrite``, atomically; the format follows the extension."""
    ext = os.path.splitext(path)[1] or '.png'
    ok, buf = cv2.imencode(ext, img, params or [])
    if not ok:
        raise PFDNError(f'cannot encode an image as {ext}', path)
    write_bytes(path, buf.tobytes())
