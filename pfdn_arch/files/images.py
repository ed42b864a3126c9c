"""Image files: every image this package reads or writes goes through here.

Reading refuses what would otherwise become a silent wrong result or a traceback: anything but a regular file (a FIFO
would block forever), a file that is cut short (OpenCV decodes a truncated JPEG into an image with a grey bottom and
says nothing), one whose header claims more pixels than OpenCV decodes, one that does not decode at all.

``read_picture`` reads an image as a viewer shows it, for upscaling: the EXIF orientation applied, the ICC profile
kept to be written back, grey+alpha kept as two channels, 8 or 16 bits as stored; a multi-frame file (animated
WebP/GIF, multi-page TIFF) gives its first frame and says how many it has. ``write_picture`` writes such a picture
back, profile included, atomically. ``read_image`` is the plain colour read of data preparation and benchmarks.
"""
import glob
import io
import os
import struct
import zlib

import cv2
import numpy as np

from ..errors import ImageError, PFDNError
from .atomic import write_bytes

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
MAX_PIXELS = 1 << 30  # OpenCV's decoding limit (CV_IO_MAX_IMAGE_PIXELS)
# EXIF orientation -> how to make the stored pixels upright (cv2 rotate codes, then a horizontal flip)
_ORIENT = {2: (None, True), 3: (cv2.ROTATE_180, False), 4: (cv2.ROTATE_180, True),
           5: (cv2.ROTATE_90_CLOCKWISE, True), 6: (cv2.ROTATE_90_CLOCKWISE, False),
           7: (cv2.ROTATE_90_COUNTERCLOCKWISE, True), 8: (cv2.ROTATE_90_COUNTERCLOCKWISE, False)}


def list_images(folder):
    """The image files of a folder (by extension), sorted."""
    return sorted(p for p in glob.glob(os.path.join(glob.escape(folder), '*')) if p.lower().endswith(IMAGE_EXTS))


class Picture:
    """Pixels as a viewer shows them (H x W gray, H x W x 2 gray+alpha, BGR or BGRA; uint8 or uint16) and what goes
    back into the written file: ``icc`` (the ICC profile's bytes or None). ``frames``: how many the file holds."""

    def __init__(self, pixels, icc=None, frames=1):
        self.pixels, self.icc, self.frames = pixels, icc, frames


def _checked(path):
    """Open checks shared by every read: a regular file, complete for its format."""
    from .paths import PathError, input_file

    try:
        input_file(path)
    except PathError as err:
        raise ImageError(err.reason, path) from None
    try:
        with open(path, 'rb') as f:
            complete = _complete(f)
    except OSError as err:
        raise ImageError(f'cannot read ({err.strerror})', path) from None
    if not complete:
        raise ImageError('the file is truncated (cut short while it was written or copied)', path)


def _decode(path, flags):
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


def read_image(path, flags=cv2.IMREAD_COLOR):
    """``cv2.imread`` that raises ImageError for a missing, irregular, truncated, oversized or undecodable file
    instead of blocking, returning None or a partly decoded image."""
    _checked(path)
    return _decode(path, flags)


def read_picture(path):
    """The image in ``path`` as a viewer shows it (see ``Picture``)."""
    _checked(path)
    pixels = _decode(path, cv2.IMREAD_UNCHANGED)
    icc, orientation, frames, grey_alpha = None, 1, 1, False
    try:
        from PIL import Image

        with Image.open(path) as im:  # the header only: profile, orientation, frames, mode
            icc = im.info.get('icc_profile') or None
            orientation = im.getexif().get(0x0112, 1) if hasattr(im, 'getexif') else 1
            frames = getattr(im, 'n_frames', 1)
            grey_alpha = im.mode in ('LA', 'La', 'PA') and im.format == 'PNG'
    except Exception:  # a format PIL does not know: OpenCV's pixels as they are
        pass
    if grey_alpha and pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = np.ascontiguousarray(pixels[..., [0, 3]])  # OpenCV expands grey+alpha to BGRA
    rotate, flip = _ORIENT.get(orientation, (None, False))
    if flip:
        pixels = cv2.flip(pixels, 1)
    if rotate is not None:
        pixels = cv2.rotate(pixels, rotate)
    return Picture(np.ascontiguousarray(pixels), icc, frames)


def image_size(path):
    """(h, w) of an image file from its header, without decoding it (PIL); decoded when PIL cannot read the
    header (ImageError when that fails too)."""
    from PIL import Image

    _checked(path)
    try:
        with Image.open(path) as im:
            return im.size[::-1]
    except Exception:
        return read_image(path).shape[:2]


def _complete(f):
    """Whether the file ends the way its format ends (the formats whose decoders accept a truncated file)."""
    head = f.read(32)
    if head.startswith(b'\xff\xd8'):  # JPEG: ends with the EOI marker; data after it is tolerated by PIL's check
        f.seek(max(os.fstat(f.fileno()).st_size - 64, 0))
        if f.read().rstrip(b'\x00\r\n ').endswith(b'\xff\xd9'):
            return True
        try:
            from PIL import Image
            f.seek(0)
            with Image.open(f) as im:
                im.load()
            return True
        except Exception:
            return False
    if head.startswith(b'\x89PNG\r\n\x1a\n'):  # PNG: the chunks, walked to IEND (bytes after it are allowed)
        f.seek(8)
        while True:
            header = f.read(8)
            if len(header) < 8:
                return False
            length, kind = struct.unpack('>I4s', header)
            if kind == b'IEND':
                return True
            f.seek(length + 4, 1)  # the data and its CRC
    return True


def write_image(path, img, params=None):
    """``cv2.imwrite``, atomically; the format follows the extension."""
    write_bytes(path, _encode(path, img, params))


def _encode(path, img, params=None):
    ext = os.path.splitext(path)[1].lower() or '.png'
    try:
        ok, buf = cv2.imencode(ext, img, params or [])
    except cv2.error:
        ok = False
    if not ok:
        raise PFDNError(f'cannot be encoded as {ext} (choose a .png, .jpg, .webp, .tif or .bmp name)', path)
    return buf.tobytes()


def write_picture(path, picture, note=print, params=None):
    """Write ``picture`` (a Picture) in the format of ``path``'s extension, atomically, with its ICC profile and
    its kind (grey+alpha stays two channels); ``params``: OpenCV's PNG encoding flags. What a format cannot carry is
    said through ``note``, once per file."""
    pixels, icc = picture.pixels, picture.icc
    ext = os.path.splitext(path)[1].lower()
    if pixels.ndim == 3 and pixels.shape[2] == 2:  # grey+alpha: OpenCV writes 1, 3 or 4 channels only
        if ext == '.png' and pixels.dtype == np.uint8:
            data = _pil_bytes(pixels, 'LA', 'PNG', icc)
            icc = None
        else:
            note(f'note: {path}: grey+alpha is written as RGBA ({ext}, {pixels.dtype.itemsize * 8} bits)')
            grey = pixels[..., :1]
            pixels = np.concatenate([grey, grey, grey, pixels[..., 1:]], axis=2)
    if pixels.ndim != 3 or pixels.shape[2] != 2:
        data = _encode(path, pixels, params if ext == '.png' else None)
    if icc:
        data = _with_icc(path, ext, data, pixels, icc, note)
    write_bytes(path, data)


def _pil_bytes(pixels, mode, fmt, icc, **kwargs):
    from PIL import Image

    out = io.BytesIO()
    image = Image.fromarray(pixels, mode)
    image.save(out, fmt, **({'icc_profile': icc} if icc else {}), **kwargs)
    return out.getvalue()


def _with_icc(path, ext, data, pixels, icc, note):
    """``data`` (OpenCV's encoding) with the ICC profile put in. PNG and JPEG: the profile's chunk or segments are
    inserted into OpenCV's bytes (Pillow cannot write 16-bit RGB PNG, and re-encoding a JPEG would lose quality).
    WebP and 8-bit TIFF: Pillow writes them with the profile. Elsewhere the profile is dropped, with a note."""
    if ext == '.png':
        chunk = b'iCCP' + b'icc\x00\x00' + zlib.compress(icc)
        entry = struct.pack('>I', len(chunk) - 4) + chunk + struct.pack('>I', zlib.crc32(chunk) & 0xffffffff)
        ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, its data, its CRC
        return data[:ihdr_end] + entry + data[ihdr_end:]
    if ext in ('.jpg', '.jpeg'):
        parts = [icc[i:i + 65519] for i in range(0, len(icc), 65519)]
        segments = b''.join(b'\xff\xe2' + struct.pack('>H', len(p) + 16) + b'ICC_PROFILE\x00' + bytes([n + 1, len(parts)])
                            + p for n, p in enumerate(parts))
        at = 2
        if data[2:4] == b'\xff\xe0':  # after JFIF's APP0, which must come first
            at = 4 + struct.unpack('>H', data[4:6])[0]
        return data[:at] + segments + data[at:]
    if ext in ('.webp', '.tif', '.tiff') and pixels.dtype == np.uint8 and pixels.ndim in (2, 3):
        rgb = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA if pixels.shape[2] == 4
                                                           else cv2.COLOR_BGR2RGB)
        fmt = 'WEBP' if ext == '.webp' else 'TIFF'
        extra = {'lossless': True} if fmt == 'WEBP' else {}
        mode = 'L' if rgb.ndim == 2 else ('RGBA' if rgb.shape[2] == 4 else 'RGB')
        return _pil_bytes(rgb, mode, fmt, icc, **extra)
    note(f'note: {path}: its colour profile (ICC) cannot be written into a {pixels.dtype.itemsize * 8}-bit {ext}; '
         'the result has none')
    return data
