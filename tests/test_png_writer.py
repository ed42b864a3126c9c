"""The fast PNG encoder of results (pfdn_arch/files/png_writer.py): what it writes decodes, in OpenCV and Pillow,
to the very pixels it was given, in every layout it takes; the rest, and an asked-for zlib level, go to OpenCV."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from pfdn_arch.files import png_writer
from pfdn_arch.files.images import Picture, read_picture, write_picture
from pfdn_arch.files.samples import sample_image


def layouts():
    bgr = sample_image('coffee.png')[:97, :131]
    alpha = np.linspace(0, 255, 97 * 131).reshape(97, 131).astype(np.uint8)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    deep = bgr.astype(np.uint16) * 257 + np.arange(131, dtype=np.uint16)[None, :, None]  # low bytes that differ
    return {'grey': grey, 'bgr': bgr, 'bgra': np.dstack([bgr, alpha]), 'grey16': deep[..., 0].copy(), 'bgr16': deep,
            'bgra16': np.dstack([deep, alpha.astype(np.uint16) * 257])}


@pytest.mark.parametrize('name', list(layouts()))
def test_what_it_writes_decodes_to_the_same_pixels(name):
    pixels = layouts()[name]
    data = png_writer.encode_png(pixels)
    assert data is not None and data.startswith(png_writer.SIGNATURE)
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == pixels.dtype and back.shape == pixels.shape and np.array_equal(back, pixels)
    im = Image.open(io.BytesIO(data))
    im.load()  # Pillow checks the chunks' CRCs and the zlib stream's checksum as it reads
    if pixels.dtype == np.uint8:
        rgb = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA if pixels.shape[2] == 4
                                                           else cv2.COLOR_BGR2RGB)
        assert np.array_equal(np.asarray(im), rgb)


def test_it_compresses_about_as_well_as_opencvs_default_on_an_upscaled_photo():
    bgr = cv2.resize(sample_image('coffee.png'), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    size = len(png_writer.encode_png(bgr))
    assert size <= 1.1 * len(cv2.imencode('.png', bgr)[1]) and size < 0.6 * bgr.nbytes


def test_long_data_is_split_into_idat_chunks(monkeypatch):
    monkeypatch.setattr(png_writer, 'IDAT_BYTES', 1000)
    pixels = layouts()['bgr']
    data = png_writer.encode_png(pixels)
    assert data.count(b'IDAT') > 5
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), pixels)


def test_layouts_it_does_not_write_are_left_to_opencv():
    assert png_writer.encode_png(np.zeros((4, 4, 2), np.uint8)) is None
    assert png_writer.encode_png(np.zeros((4, 4, 3), np.float32)) is None
    assert png_writer.encode_png(np.zeros((0, 4, 3), np.uint8)) is None


def test_results_are_written_with_it_and_with_opencv_when_a_level_is_asked(tmp_path, monkeypatch):
    pixels = layouts()['bgr']
    calls = []
    real = png_writer.encode_png
    monkeypatch.setattr('pfdn_arch.files.images.encode_png', lambda p: calls.append(p.shape) or real(p))
    write_picture(str(tmp_path / 'fast.png'), Picture(pixels))
    assert calls == [pixels.shape]
    assert (tmp_path / 'fast.png').read_bytes() == real(pixels)
    write_picture(str(tmp_path / 'level9.png'), Picture(pixels), params=[cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert calls == [pixels.shape]  # the asked-for level: OpenCV's encoder
    assert np.array_equal(read_picture(str(tmp_path / 'level9.png')).pixels, pixels)


def test_without_isal_opencv_writes_the_same_pixels(tmp_path, monkeypatch):
    monkeypatch.setattr(png_writer, 'available', lambda: False)
    pixels = layouts()['bgr16']
    assert png_writer.encode_png(pixels) is None
    write_picture(str(tmp_path / 'a.png'), Picture(pixels))
    assert np.array_equal(cv2.imread(str(tmp_path / 'a.png'), cv2.IMREAD_UNCHANGED), pixels)
