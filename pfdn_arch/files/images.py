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
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from ..errors import ImageError, PFDNError, installed, require
from .atomic import write_bytes
from .paths import PathError, input_file
from .png_writer import encode_png

# Formats OpenCV does not read, decoded and encoded by Pillow: HEIC/HEIF (phones' photos; the pillow-heif plugin) and
# AVIF (Pillow's own)
PIL_EXTS = ('.heic', '.heif', '.avif')
IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp') + PIL_EXTS
# picture formats that are not upscaled, and why (said instead of "rename it")
REFUSED = {'.jxl': 'JPEG XL is not decoded in this install (neither OpenCV nor Pillow reads it): convert it to PNG '
                   'first (djxl photo.jxl photo.png)',
           '.exr': 'OpenEXR holds linear-light HDR, which PFDN (trained on 8-bit sRGB photos) does not upscale: '
                   'convert it to a 16-bit PNG or TIFF first',
           '.gif': 'GIF is not written here (256 colours would undo the upscaling): convert it to PNG first',
           '.ico': 'icons are not upscaled here: convert the size you want to PNG first'}
# PNG chunks that say how to show the colours (as an ICC profile does), copied into a PNG result
PNG_COLOUR_CHUNKS = (b'gAMA', b'cHRM', b'sRGB')
MAX_PIXELS = 1 << 30  # OpenCV's decoding limit (CV_IO_MAX_IMAGE_PIXELS)
# Pillow refuses even to read the header of a picture above its own "decompression bomb" limit (178 M pixels), so
# that the size of a picture too large to upscale could only be learnt by decoding all of it: its limit is made
# OpenCV's, this package's (a picture whose result does not fit is refused from its header, before decoding)
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# EXIF orientation -> how to make the stored pixels upright (cv2 rotate codes, then a horizontal flip)
_ORIENT = {2: (None, True), 3: (cv2.ROTATE_180, False), 4: (cv2.ROTATE_180, True),
           5: (cv2.ROTATE_90_CLOCKWISE, True), 6: (cv2.ROTATE_90_CLOCKWISE, False),
           7: (cv2.ROTATE_90_COUNTERCLOCKWISE, True), 8: (cv2.ROTATE_90_COUNTERCLOCKWISE, False)}


def list_images(folder: str) -> List[str]:
    """The image files of a folder (by extension), sorted."""
    return sorted(p for p in glob.glob(os.path.join(glob.escape(folder), '*')) if p.lower().endswith(IMAGE_EXTS))


class Picture:
    """Pixels as a viewer shows them (H x W gray, H x W x 2 gray+alpha, BGR or BGRA with straight alpha; uint8 or
    uint16) and what goes back into the written file: ``icc`` (the ICC profile's bytes or None), ``png_chunks`` (a
    PNG's gAMA/cHRM/sRGB chunks, raw). ``frames``: how many the file holds."""

    def __init__(self, pixels: np.ndarray, icc: Optional[bytes] = None, frames: int = 1,
                 png_chunks: Sequence[bytes] = ()):
        self.pixels, self.icc, self.frames, self.png_chunks = pixels, icc, frames, list(png_chunks)


def _heif_opener():
    """Pillow reads HEIC/HEIF once the pillow-heif plugin registers itself; ImageError naming it where it is
    missing."""
    if not installed('pillow_heif'):
        return False
    require('pillow_heif', 'HEIC/HEIF photos').register_heif_opener()
    return True


def _pil_opened(path):
    if path.lower().endswith(('.heic', '.heif')) and not _heif_opener():
        raise ImageError('HEIC/HEIF photos need the pillow-heif package: pip install pillow-heif', path)
    return Image.open(path)


def _pil_pixels(im):
    """A Pillow image as OpenCV's layout: gray, gray+alpha, BGR or BGRA (straight alpha), 8 or 16 bits."""
    if im.mode in ('I;16', 'I;16B', 'I;16L'):
        return np.asarray(im).astype(np.uint16)
    if im.mode == 'RGBa':  # premultiplied: made straight
        im = im.convert('RGBA')
    elif im.mode == 'La':
        im = im.convert('LA')
    elif im.mode in ('P', 'PA'):
        im = im.convert('RGBA' if im.mode == 'PA' or 'transparency' in im.info else 'RGB')
    elif im.mode not in ('L', 'LA', 'RGB', 'RGBA'):
        im = im.convert('RGB')
    a = np.asarray(im)
    if a.ndim == 3 and a.shape[2] == 3:
        return np.ascontiguousarray(a[..., ::-1])
    if a.ndim == 3 and a.shape[2] == 4:
        return np.ascontiguousarray(a[..., [2, 1, 0, 3]])
    return np.ascontiguousarray(a)


def _checked(path):
    """Open checks shared by every read: a regular file, complete for its format."""
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
    if path.lower().endswith(PIL_EXTS):
        return _decode_pil(path, flags)
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


def _decode_pil(path, flags):
    try:
        with _pil_opened(path) as im:
            im.load()
            pixels = _pil_pixels(im)
    except ImageError:
        raise
    except Exception as err:
        raise ImageError(f'cannot decode ({str(err).strip().splitlines()[0][:120]})', path) from None
    if flags == cv2.IMREAD_COLOR:
        if pixels.ndim == 2 or pixels.shape[2] == 2:
            pixels = cv2.cvtColor(np.ascontiguousarray(pixels if pixels.ndim == 2 else pixels[..., 0]),
                                  cv2.COLOR_GRAY2BGR)
        elif pixels.shape[2] == 4:
            pixels = np.ascontiguousarray(pixels[..., :3])
        if pixels.dtype != np.uint8:
            pixels = (pixels / 257).round().astype(np.uint8)
    return pixels


def _straight_tiff_alpha(path, pixels):
    """OpenCV reads an 8-bit RGBA TIFF through libtiff's RGBA interface, which hands back colour multiplied by
    alpha (an alpha of 128 halves the brightness); Pillow gives the stored straight colour, as viewers show it."""
    if not (path.lower().endswith(('.tif', '.tiff')) and pixels.ndim == 3 and pixels.shape[2] == 4
            and pixels.dtype == np.uint8):
        return pixels
    try:
        from PIL import Image
        with Image.open(path) as im:
            if im.mode not in ('RGBA', 'RGBa'):
                return pixels
            im.load()
            return _pil_pixels(im)
    except Exception:
        return pixels


def _png_chunks(path):
    """(the raw gAMA/cHRM/sRGB chunks of a PNG file (length, type, data, CRC) in file order, its EXIF orientation
    (1 without an eXIf chunk)); None for a file that is not a PNG (by its signature, whatever its name). The chunks
    are walked by their lengths, image data skipped, to IEND: an eXIf chunk may follow the image data, which is why
    PIL's ``getexif`` of a PNG decodes the whole image, as much again as OpenCV's decoding (docs/benchmarks.md, "Figures behind the code's choices")."""
    chunks, orientation = [], 1
    with open(path, 'rb') as f:
        if f.read(8) != b'\x89PNG\r\n\x1a\n':
            return None
        while True:
            header = f.read(8)
            if len(header) < 8:
                break
            length, kind = struct.unpack('>I4s', header)
            if kind == b'IEND':
                break
            if kind == b'IDAT':
                f.seek(length + 4, io.SEEK_CUR)
                continue
            body = f.read(length + 4)
            if kind in PNG_COLOUR_CHUNKS:
                chunks.append(header + body)
            elif kind == b'eXIf':
                exif = Image.Exif()
                try:
                    exif.load(body[:length])
                    orientation = exif.get(0x0112, 1)
                except Exception:  # a damaged EXIF block: the pixels as stored, as PIL would leave them
                    orientation = 1
    return chunks, orientation


def read_image(path: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """``cv2.imread`` that raises ImageError for a missing, irregular, truncated, oversized or undecodable file
    instead of blocking, returning None or a partly decoded image."""
    _checked(path)
    return _decode(path, flags)


def read_picture(path: str) -> 'Picture':
    """The image in ``path`` as a viewer shows it (see ``Picture``)."""
    _checked(path)
    pixels = _straight_tiff_alpha(path, _decode(path, cv2.IMREAD_UNCHANGED))
    icc, orientation, frames, grey_alpha = None, 1, 1, False
    png = _png_chunks(path)
    chunks, orientation = png if png is not None else ([], 1)
    try:
        with _pil_opened(path) as im:  # the header only: profile, orientation, frames, mode
            icc = im.info.get('icc_profile') or None
            if png is None and hasattr(im, 'getexif'):
                orientation = im.getexif().get(0x0112, 1)
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
    return Picture(np.ascontiguousarray(pixels), icc, frames, chunks)


def image_header(path: str) -> Tuple[int, int, int, int]:
    """(h, w, channels, bytes per sample) of an image file from its header, without decoding it where PIL reads the
    header (as stored: before its EXIF orientation); decoded otherwise (ImageError when that fails too)."""
    _checked(path)
    try:
        with _pil_opened(path) as im:
            wide = im.mode.startswith(('I;16', 'I', 'F')) or im.mode.endswith(';16')
            return im.size[1], im.size[0], len(im.getbands()), 2 if wide else 1
    except ImageError:
        raise
    except Exception:
        img = read_image(path, cv2.IMREAD_UNCHANGED)
        return img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2], img.dtype.itemsize


def image_size(path: str) -> Tuple[int, int]:
    """(h, w) of an image file from its header, without decoding it (PIL); decoded when PIL cannot read the
    header (ImageError when that fails too)."""
    _checked(path)
    try:
        with _pil_opened(path) as im:
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


def write_image(path: str, img: np.ndarray, params: Optional[List[int]] = None) -> None:
    """``cv2.imwrite``, atomically; the format follows the extension."""
    write_bytes(path, _encode(path, img, params))


def _encode(path, img, params=None):
    ext = os.path.splitext(path)[1].lower() or '.png'
    if ext in PIL_EXTS:
        return _pil_encode(path, img, None)
    if ext == '.png' and not params:  # no zlib level asked for: the fast encoder where it writes this layout
        data = encode_png(img)
        if data is not None:
            return data
    try:
        ok, buf = cv2.imencode(ext, img, params or [])
    except cv2.error:
        ok = False
    if not ok:
        raise PFDNError(f'cannot be encoded as {ext} (choose a .png, .jpg, .webp, .tif or .bmp name)', path)
    return buf.tobytes()


def _pil_encode(path, pixels, icc):
    """HEIC/HEIF/AVIF bytes (8-bit, quality 95: these formats are lossy) with the ICC profile."""
    ext = os.path.splitext(path)[1].lower()
    if ext in ('.heic', '.heif') and not _heif_opener():
        raise PFDNError('writing HEIC/HEIF needs the pillow-heif package: pip install pillow-heif', path)
    if pixels.dtype != np.uint8:
        pixels = (pixels / 257).round().astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 2:
        pixels = np.ascontiguousarray(pixels[..., [0, 0, 0, 1]])
    if pixels.ndim == 3:
        pixels = pixels[..., [2, 1, 0, 3]] if pixels.shape[2] == 4 else pixels[..., ::-1]
    mode = 'L' if pixels.ndim == 2 else ('RGBA' if pixels.shape[2] == 4 else 'RGB')
    fmt = 'AVIF' if ext == '.avif' else 'HEIF'
    return _pil_bytes(np.ascontiguousarray(pixels), mode, fmt, icc, quality=95)


def _with_png_chunks(data, chunks):
    """PNG bytes with ``chunks`` (raw, CRC included) put in after IHDR."""
    ihdr_end = 8 + 8 + 13 + 4
    return data[:ihdr_end] + b''.join(chunks) + data[ihdr_end:]


def write_picture(path: str, picture: 'Picture', note: Callable[[str], None] = print,
                  params: Optional[List[int]] = None, before: Optional[Callable[[bytes], None]] = None) -> None:
    """Write ``picture`` (a Picture) in the format of ``path``'s extension, atomically, with its ICC profile and
    its kind (grey+alpha stays two channels); ``params``: OpenCV's PNG encoding flags. What a format cannot carry is
    said through ``note``, once per file. ``before(data)``: called with the file's bytes before the file is written
    (a record of what is about to be written, kept before the file takes its name)."""
    data = _picture_bytes(path, picture, note, params)
    if before is not None:
        before(data)
    write_bytes(path, data)


def _picture_bytes(path, picture, note, params):
    pixels, icc = picture.pixels, picture.icc
    ext = os.path.splitext(path)[1].lower()
    chunks = list(getattr(picture, 'png_chunks', ()))
    if chunks and ext != '.png':
        note(f'note: {path}: its PNG colour chunks (gAMA/cHRM/sRGB) have no place in a {ext} file and are left out')
    if ext in PIL_EXTS:
        return _pil_encode(path, pixels, icc)
    if ext in ('.tif', '.tiff') and pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 4:
        # OpenCV writes RGBA TIFF without saying its alpha is straight; Pillow marks it (ExtraSamples: unassociated)
        return _pil_bytes(np.ascontiguousarray(pixels[..., [2, 1, 0, 3]]), 'RGBA', 'TIFF', icc)
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
    if chunks and ext == '.png':
        data = _with_png_chunks(data, chunks)
    return data


def _pil_bytes(pixels, mode, fmt, icc, **kwargs):
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
