"""Pictures as phones, cameras and the web make them, and the names and paths they come with: read in kind,
written back in kind (profiles, orientation, alpha, 16 bits, gamma), the fast PNG encoder
(``files/png_writer.py``), and every path that cannot work said in one line before any work."""
import io
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import cli, infer, one_error, snapshot, TINY_NET
from pfdn_arch import PFDN
from pfdn_arch.files import png_writer
from pfdn_arch.files.images import Picture, read_picture, write_picture
from pfdn_arch.layout.samples import sample_image


@pytest.mark.parametrize('ext', ['.heic', '.avif'])
def test_phone_and_web_formats_are_read_and_written_back_in_kind(tiny, tmp_path, capsys, ext):
    import pillow_heif
    from PIL import Image
    pillow_heif.register_heif_opener()
    photo = sample_image('chelsea.png')[:40, :48, ::-1]
    Image.fromarray(np.ascontiguousarray(photo)).save(tmp_path / f'p{ext}', quality=95)
    code, _, err = infer(['-i', tmp_path / f'p{ext}', '-o', tmp_path / 'out'], capsys, tiny)
    assert code == 0, err
    with Image.open(tmp_path / 'out' / f'p{ext}') as im:
        assert im.format in ('HEIF', 'AVIF') and im.size == (48 * 4, 40 * 4)


@pytest.mark.parametrize('ext, named', [('.jxl', 'JPEG XL'), ('.exr', 'OpenEXR'), ('.gif', 'GIF')])
def test_formats_that_are_not_upscaled_say_why_without_advising_a_rename(tiny, tmp_path, capsys, ext, named):
    (tmp_path / f'a{ext}').write_bytes(b'\x00' * 64)
    line = one_error(*infer(['-i', tmp_path / f'a{ext}', '-o', tmp_path / 'out'], capsys, tiny)[::2], named,
                     status=2)
    assert 'rename' not in line


def test_an_rgba_tiff_keeps_its_brightness(weights, tmp_path, capsys):
    from PIL import Image
    flat = np.zeros((24, 24, 4), np.uint8)
    flat[..., :3], flat[..., 3] = (200, 120, 60), 128
    Image.fromarray(flat, 'RGBA').save(tmp_path / 'a.tif')
    assert infer(['-i', tmp_path / 'a.tif', '-o', tmp_path / 'out'], capsys, weights)[0] == 0
    with Image.open(tmp_path / 'out' / 'a.tif') as im:
        out = np.asarray(im.convert('RGBA')).astype(float)
    # straight alpha in and out: the released network keeps a flat colour (premultiplied colour would be halved)
    assert abs(out[..., 3].mean() - 128) < 2
    assert np.abs(out[8:-8, 8:-8, :3].mean((0, 1)) - (200, 120, 60)).max() < 3


def test_png_gamma_chunks_are_kept(tiny, tmp_path, capsys):
    import struct
    import zlib
    from PIL import Image
    Image.fromarray(np.ascontiguousarray(sample_image('chelsea.png')[:24, :24, ::-1])).save(tmp_path / 'g.png')
    data, chunk = (tmp_path / 'g.png').read_bytes(), b'gAMA' + struct.pack('>I', 45455)
    gama = struct.pack('>I', 4) + chunk + struct.pack('>I', zlib.crc32(chunk))
    (tmp_path / 'g.png').write_bytes(data[:33] + gama + data[33:])
    assert infer(['-i', tmp_path / 'g.png', '-o', tmp_path / 'out'], capsys, tiny)[0] == 0
    with Image.open(tmp_path / 'out' / 'g.png') as im:
        assert abs(im.info['gamma'] - 0.45455) < 1e-5


def test_a_file_name_at_the_filesystem_limit_is_upscaled(tiny, tmp_path, capsys):
    name = 'x' * (255 - 4) + '.png'
    cv2.imwrite(str(tmp_path / name), sample_image('chelsea.png')[:20, :20])
    cv2.imwrite(str(tmp_path / 'b.png'), sample_image('chelsea.png')[:20, :20])
    code, out, err = infer(['-i', tmp_path, '-o', tmp_path / 'out'], capsys, tiny)
    assert code == 0 and '2 upscaled' in out and (tmp_path / 'out' / name).is_file()


def test_one_file_that_cannot_be_written_does_not_stop_the_folder(tiny, tmp_path, capsys):
    src = tmp_path / 'in'
    (src / 'sub').mkdir(parents=True)
    for rel in ('a.png', 'sub/b.png', 'z.png'):
        cv2.imwrite(str(src / rel), sample_image('chelsea.png')[:20, :20])
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'sub').write_text('a file where the subfolder would go')
    code, out, err = infer(['-i', src, '-o', tmp_path / 'out'], capsys, tiny)
    assert code == 1 and '2 upscaled' in out
    assert (tmp_path / 'out' / 'a.png').is_file() and (tmp_path / 'out' / 'z.png').is_file()
    assert sum(line.startswith('error: ') and 'b.png' in line for line in err) == 1


def test_output_names_and_repeated_inputs(tiny, tmp_path, capsys):
    for name in ('a.png', 'b.png'):
        cv2.imwrite(str(tmp_path / name), sample_image('chelsea.png')[:20, :24])
    code, out, _ = infer(['-i', tmp_path / 'a.png', '-o', tmp_path / 'up' / 'cat_x4.png'], capsys, tiny)
    assert code == 0 and cv2.imread(str(tmp_path / 'up' / 'cat_x4.png')).shape[:2] == (80, 96)
    assert not (tmp_path / 'up' / 'cat_x4.png').is_dir()
    code, out, _ = infer(['-i', tmp_path / 'a.png', '-i', tmp_path / 'b.png', '-o', tmp_path / 'both'], capsys, tiny)
    assert code == 0 and sorted(p for p in os.listdir(tmp_path / 'both') if p[0] != '.') == ['a.png', 'b.png']
    one_error(*infer(['-i', tmp_path / 'a.png', '-i', tmp_path / 'b.png', '-o', tmp_path / 'x.png'], capsys,
                     tiny)[::2], 'names one file, but 2 inputs')
    one_error(*infer(['-i', tmp_path / 'a.png', '-o', tmp_path / 'x.gif'], capsys, tiny)[::2], '.gif')
    assert not (tmp_path / 'x.gif').exists() and not (tmp_path / 'x.png').exists()


def icc_profile():
    from PIL import ImageCms
    return ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()


@pytest.mark.parametrize('ext', ['.png', '.jpg', '.webp', '.tif'])
def test_colour_profiles_are_kept(tiny, tmp_path, capsys, ext):
    from PIL import Image
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    profile = icc_profile()
    Image.fromarray(sample_image('coffee.png')[:40, :50, ::-1]).save(src / f'a{ext}', icc_profile=profile)
    code, _, err = infer(['-i', src, '-o', out], capsys, tiny)
    assert code == 0, err
    with Image.open(out / f'a{ext}') as im:
        assert im.info.get('icc_profile') == profile and im.size == (200, 160)


def png_with_exif_after_the_image_data(path, pixels, exif):
    """A PNG whose eXIf chunk follows its IDAT (allowed, and what PIL must decode the whole image to find)."""
    import struct
    import zlib
    data = cv2.imencode('.png', pixels)[1].tobytes()
    iend = data.rindex(b'IEND') - 4
    body = exif.tobytes()
    chunk = struct.pack('>I', len(body)) + b'eXIf' + body + struct.pack('>I', zlib.crc32(b'eXIf' + body))
    path.write_bytes(data[:iend] + chunk + data[iend:])


@pytest.mark.parametrize('name', ['phone.jpg', 'phone.png', 'after_idat.png', 'jpeg_named.png'])
def test_exif_orientation_is_applied(tiny, tmp_path, capsys, name):
    from PIL import Image
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    stored = sample_image('coffee.png')[:40, :60]  # 60 wide as stored; orientation 6: shown rotated 90 clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    if name == 'after_idat.png':
        png_with_exif_after_the_image_data(src / name, stored, exif)
    else:
        fmt = 'JPEG' if name.endswith('.jpg') or name == 'jpeg_named.png' else 'PNG'
        quality = {'quality': 95} if fmt == 'JPEG' else {}
        Image.fromarray(stored[..., ::-1]).save(src / name, fmt, exif=exif, **quality)
    with Image.open(src / name) as im:
        assert im.getexif().get(0x0112) == 6  # as PIL reads it
    assert infer(['-i', src, '-o', out], capsys, tiny)[0] == 0
    assert cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED).shape == (240, 160, 3)  # upright: 60 tall


def test_a_png_is_decoded_once(tmp_path, monkeypatch):
    """Reading a PNG for upscaling decodes its pixels once (OpenCV), never again in PIL to find its EXIF."""
    from PIL import Image, ImageFile
    from pfdn_arch.files.images import read_picture
    exif = Image.Exif()
    exif[0x0112] = 6
    png_with_exif_after_the_image_data(tmp_path / 'a.png', sample_image('coffee.png')[:40, :60], exif)

    def decoded_again(self):
        raise AssertionError('PIL decoded the image')
    monkeypatch.setattr(ImageFile.ImageFile, 'load', decoded_again)
    assert read_picture(str(tmp_path / 'a.png')).pixels.shape == (60, 40, 3)


def test_multi_frame_files_give_their_first_frame_and_one_note(tiny, tmp_path, capsys):
    from PIL import Image
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    frames = [Image.fromarray(sample_image(n)[:40, :50, ::-1]) for n in ('coffee.png', 'chelsea.png')]
    frames[0].save(src / 'anim.webp', save_all=True, append_images=frames[1:], lossless=True)
    frames[0].save(src / 'pages.tif', save_all=True, append_images=frames[1:])
    code, _, err = infer(['-i', src, '-o', out], capsys, tiny)
    assert code == 0
    notes = [line for line in err if line.startswith('note: ') and 'frames' in line]
    assert len(notes) == 2 and all('2 frames' in n and 'only the first' in n for n in notes), err
    assert sorted(p for p in os.listdir(out) if not p.startswith('.')) == ['anim.webp', 'pages.tif']


def test_grey_alpha_stays_grey_alpha(tiny, tmp_path, capsys):
    from PIL import Image
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    grey = cv2.cvtColor(sample_image('coffee.png')[:40, :50], cv2.COLOR_BGR2GRAY)
    alpha = np.tile(np.linspace(0, 255, 50, dtype=np.uint8), (40, 1))
    Image.fromarray(np.dstack([grey, alpha]), 'LA').save(src / 'ga.png')
    assert infer(['-i', src, '-o', out], capsys, tiny)[0] == 0
    with Image.open(out / 'ga.png') as im:
        assert im.mode == 'LA' and im.size == (200, 160)
        result = np.asarray(im)
    assert abs(int(result[80, -1, 1]) - 255) <= 3 and result[80, 0, 1] <= 3  # the alpha ramp, upscaled


def test_subfolders_are_recursed_and_other_files_named(tiny, tmp_path, capsys):
    src, out = tmp_path / 'in', tmp_path / 'out'
    (src / 'trip' / 'day1').mkdir(parents=True)
    for rel in ('a.png', 'trip/b.jpg', 'trip/day1/c.png'):
        cv2.imwrite(str(src / rel), sample_image('chelsea.png')[:30, :40])
    (src / 'notes.txt').write_text('not an image')
    # hidden names are left out without a word: a Mac's AppleDouble twin and folder file, a thumbnail folder, a
    # prepared folder's record of its sources
    (src / 'trip' / '._b.jpg').write_bytes(b'\x00\x05\x16\x07 AppleDouble')
    (src / '.DS_Store').write_bytes(b'Bud1')
    (src / '.X4.pfdn-sources.json').write_text('{}')
    (src / '.thumbnails').mkdir()
    cv2.imwrite(str(src / '.thumbnails' / 'a.png'), sample_image('chelsea.png')[:20, :20])
    code, stdout, err = infer(['-i', src, '-o', out], capsys, tiny)
    assert code == 0 and '3 upscaled' in stdout
    assert sorted(snapshot(out)) == ['.a.png.pfdn-made.json', 'a.png', 'trip/.b.jpg.pfdn-made.json', 'trip/b.jpg',
                                     'trip/day1/.c.png.pfdn-made.json', 'trip/day1/c.png']
    assert [line for line in err if line.startswith(('note:', 'error:'))] == [
        next(line for line in err if line.startswith('note: 1 file(s) under'))]
    assert any(line.startswith('note: 1 file(s) under') and 'notes.txt' in line for line in err), err


def test_a_png_with_bytes_after_iend_is_read(tiny, tmp_path, capsys):
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    ok, png = cv2.imencode('.png', sample_image('chelsea.png')[:30, :40])
    (src / 'a.png').write_bytes(png.tobytes() + b'\0' * 200 + b'trailing data a camera app left')
    assert infer(['-i', src, '-o', out], capsys, tiny)[0] == 0 and (out / 'a.png').is_file()


def test_output_paths_that_cannot_work_are_one_line_before_work(tiny, tmp_path, capsys, monkeypatch):
    src = tmp_path / 'a.png'
    cv2.imwrite(str(src), sample_image('chelsea.png')[:30, :40])
    a_file = tmp_path / 'file'
    a_file.write_text('mine')
    broken = tmp_path / 'brokenlink'
    broken.symlink_to(tmp_path / 'nowhere')
    train = tmp_path / 'train.pth'
    torch.save({'params': PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}).state_dict()}, train)
    for args, named in ((['-o', a_file / 'sub'], 'is a file'), (['-o', broken], 'broken link'), (['-o', ''], 'empty')):
        code, _, err = infer(['-i', src, *args], capsys, tiny)
        one_error(code, err, named)
    for out, named in ((a_file / 'x.pth', 'is a file'), ('', 'empty')):
        code, _, err = cli(['reparam', '--in', train, '--out', out], capsys)
        one_error(code, err, named)
    # a read-only mount and a full disk (the machine's, simulated: tests run as root, which writes anywhere)
    ro = tmp_path / 'ro'
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, 'access', lambda p, mode: False if str(p).startswith(str(ro)) and mode & os.W_OK
                        else real_access(p, mode))
    code, _, err = infer(['-i', src, '-o', ro / 'out'], capsys, tiny)
    one_error(code, err, ro, 'read-only')
    code, _, err = cli(['reparam', '--in', train, '--out', ro / 'x.pth'], capsys)
    one_error(code, err, 'read-only')
    import shutil
    from collections import namedtuple
    usage = namedtuple('usage', 'total used free')
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: usage(1 << 30, 1 << 30, 0))
    code, _, err = infer(['-i', src, '-o', tmp_path / 'full'], capsys, tiny)
    one_error(code, err, 'not enough room')
    assert a_file.read_text() == 'mine' and not (ro / 'out').exists() and not (tmp_path / 'full').exists()


def test_inputs_that_are_not_files_are_refused_without_blocking(tiny, tmp_path, capsys):
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), sample_image('chelsea.png')[:30, :40])
    os.mkfifo(src / 'b.png')  # a reader would block forever on it
    (src / 'c.png').symlink_to('/dev/zero')  # reads without end
    png_named_txt = tmp_path / 'notes.txt'
    png_named_txt.write_bytes(cv2.imencode('.png', sample_image('chelsea.png')[:30, :40])[1].tobytes())
    code, stdout, err = infer(['-i', src, '-o', out], capsys, tiny)
    assert code == 1 and '1 upscaled' in stdout
    errors = [line for line in err if line.startswith('error: ')]
    assert any('b.png' in e and 'FIFO' in e for e in errors) and any('c.png' in e and 'device' in e for e in errors)
    code, _, err = infer(['-i', png_named_txt, '-o', tmp_path / 'out2'], capsys, tiny)
    one_error(code, err, 'notes.txt', '.txt: not a picture or video format this reads')


def test_file_names_with_separators_and_line_breaks_stay_one_line(tiny, tmp_path, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    for name in ('a: b.png', 'line\nbreak.png'):
        (src / name).write_bytes(b'not an image')
    code, _, err = infer(['-i', src, '-o', tmp_path / 'out'], capsys, tiny)
    errors = [line for line in err if line.startswith('error: ')]
    assert code == 1 and len(errors) == 2
    assert any("'" in e and 'a: b.png' in e for e in errors) and any('line\\nbreak.png' in e for e in errors)


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
