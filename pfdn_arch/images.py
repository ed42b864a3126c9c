"""Reading and writing image files: every image this package reads or writes goes through here.

``read_image`` refuses what would otherwise become a silent wrong result or a traceback: a file that is cut short
(OpenCV decodes a truncated JPEG into an image with a grey bottom and says nothing), one whose header claims more
pixels than OpenCV decodes, one that does not decode at all. ``write_image`` writes atomically.
"""
import glob
import os

import cv2

from .atomic import write_bytes
from .errors import UserError

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
MAX_PIXELS = 1 << 30  # OpenCV's decoding limit (CV_IO_MAX_IMAGE_PIXELS)


class ImageError(UserError):
    """An image file that cannot be used; the message starts with its path."""


def list_images(folder):
    """The image files of a folder (by extension), sorted."""
    return sorted(p for p in glob.glob(os.path.join(glob.escape(folder), '*')) if p.lower().endswith(IMAGE_EXTS))


def read_image(path, flags=cv2.IMREAD_COLOR):
    """``cv2.imread`` that raises ImageError('<path>: <why>') for a missing, truncated, oversized or undecodable
    file instead of returning None or a partly decoded image."""
    try:
        with open(path, 'rb') as f:
            head = f.read(32)
            f.seek(max(os.fstat(f.fileno()).st_size - 64, 0))
            tail = f.read()
    except OSError as err:
        raise ImageError(f'{path}: cannot read ({err.strerror})') from None
    if not _complete(path, head, tail):
        raise ImageError(f'{path}: the file is truncated (cut short while it was written or copied)')
    try:
        img = cv2.imread(path, flags)
    except cv2.error as err:
        if 'CV_IO_MAX_IMAGE_PIXELS' in str(err):
            raise ImageError(f'{path}: more pixels than OpenCV decodes ({MAX_PIXELS:,}); downscale or split it '
                             'first') from None
        raise ImageError(f'{path}: cannot decode ({str(err).strip().splitlines()[-1]})') from None
    if img is None:
        raise ImageError(f'{path}: unreadable or corrupt image')
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
    """``cv2.imwrite``, atomically; the format follows the extension. UserError when it cannot be encoded."""
    ext = os.path.splitext(path)[1] or '.png'
    ok, buf = cv2.imencode(ext, img, params or [])
    if not ok:
        raise UserError(f'cannot encode an image as {ext} for {path}')
    write_bytes(path, buf.tobytes())


# --------------------------------------------------------------- pixels: BasicSR's helpers where it has them
def mod_crop(img, scale):
    """Crop to a multiple of ``scale`` (BasicSR's ``mod_crop``)."""
    from basicsr.data.transforms import mod_crop as basicsr_mod_crop
    return basicsr_mod_crop(img, scale)


def to_uint8(img):
    """float image in [0, 1] -> uint8, clipped and rounded (as BasicSR's ``tensor2img`` does)."""
    import numpy as np
    return (np.clip(img, 0, 1) * 255.0).round().astype(np.uint8)


def bicubic_lr(hr, scale):
    """uint8 BGR HR -> (HR mod-cropped to ``scale``, its LR): MATLAB-style bicubic with antialiasing (BasicSR's
    ``imresize``), rounded to 8 bits as LR PNG files are. The LR of every benchmark and training set here."""
    import numpy as np
    from basicsr.utils.matlab_functions import imresize

    hr = mod_crop(hr, scale)
    return hr, to_uint8(imresize(hr.astype(np.float32) / 255.0, 1 / scale))


def bicubic_upscale(lr, scale):
    """uint8 LR -> uint8 MATLAB-style bicubic upscaling: the reference row of the benchmark tables."""
    import numpy as np
    from basicsr.utils.matlab_functions import imresize

    return to_uint8(imresize(lr.astype(np.float32) / 255.0, scale))


def to_tensor(img):
    """HWC BGR uint8 or float [0, 1] image -> 1 x 3 x H x W RGB float tensor (BasicSR's ``img2tensor``)."""
    import numpy as np
    from basicsr.utils import img2tensor

    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img
    return img2tensor(img, bgr2rgb=True, float32=True)[None]


def to_image(tensor):
    """1 x 3 x H x W RGB tensor in [0, 1] -> HWC BGR uint8 image (BasicSR's ``tensor2img``: clipped, rounded)."""
    from basicsr.utils import tensor2img
    return tensor2img(tensor.detach().float().cpu(), rgb2bgr=True, min_max=(0, 1))
