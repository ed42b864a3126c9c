"""basicsr infer on videos (deploy/media/video/): frames, timing, audio and colours kept; lossless output equal to
infer on the decoded frames as images; default quality; segments that survive a kill; one-line errors."""
import json
import os
import signal
import time
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from conftest import cli, infer, run_cli, start_cli
from pfdn_arch.deploy.media.video import conversion, frames_of
from pfdn_arch.layout.samples import sample_image


def encode_all(out, stream, frames):
    """Encode ``frames`` (their pts set) into ``stream`` of the container ``out``, then flush the encoder."""
    for frame in frames:
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def photo_clip(path, frames=48, w=96, h=64, rate=24, vfr=False, audio=True, colours=(5, 1), rotation=0):
    """A clip panning across a built-in photo (natural content), x264 4:2:0 in ``colours`` (matrix, range; default
    BT.601 limited), with an AAC tone as long as the video. ``vfr``: frames 30 or 70 ms apart (time base 1/1000)."""
    from skimage import data

    photo = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (320, 320), interpolation=cv2.INTER_AREA)
    out = av.open(str(path), 'w')
    vs = out.add_stream('libx264', rate=rate, options={'crf': '12'})
    vs.width, vs.height, vs.pix_fmt = w, h, 'yuv420p'
    tb = Fraction(1, 1000) if vfr else Fraction(1, rate)
    vs.codec_context.time_base = tb
    vs.codec_context.colorspace, vs.codec_context.color_range = colours
    if rotation:
        vs.set_display_rotation(rotation)  # as phones store portrait video
    sound = out.add_stream('aac', rate=44100, layout='mono') if audio else None
    t, crops, video = 0, [], []
    for i in range(frames):
        crop = np.ascontiguousarray(photo[30 + i % 200:30 + i % 200 + h, 40 + 2 * (i % 90):40 + 2 * (i % 90) + w])
        crops.append(crop)
        frame = av.VideoFrame.from_ndarray(crop, format='bgr24').reformat(
            format='yuv420p', dst_colorspace=colours[0], src_color_range=2, dst_color_range=colours[1],
            interpolation=conversion())
        frame.pts, frame.time_base = t, tb
        t += (30 if i % 3 else 70) if vfr else 1
        video.append(frame)
    encode_all(out, vs, video)
    if sound is not None:  # muxed after the video: the muxer interleaves
        total, tones = int(44100 * t * tb), []
        for done in range(0, total, 1024):
            tone = np.sin(np.arange(done, min(done + 1024, total))[None] / 20).astype(np.float32) * 0.3
            frame = av.AudioFrame.from_ndarray(tone, format='fltp', layout='mono')
            frame.sample_rate, frame.pts = 44100, done
            tones.append(frame)
        encode_all(out, sound, tones)
    out.close()
    return crops


def described(path):
    """Frames (BGR), their times, size, declared rate, colour tags, the audio's duration and packets of a video."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        decoded = list(c.decode(v))
        times, rotation = [f.time for f in decoded], decoded[0].rotation
        info = {'size': (v.codec_context.width, v.codec_context.height), 'rate': v.average_rate,
                'colours': (v.codec_context.colorspace, v.codec_context.color_range), 'codec': v.codec_context.name,
                'rotation': rotation}
    with av.open(str(path)) as c:
        audio = [p for p in c.demux(c.streams.audio[0]) if p.pts is not None] if c.streams.audio else []
        info['audio'] = float((audio[-1].pts + audio[-1].duration - audio[0].pts) * audio[0].time_base) if audio \
            else None
        info['audio_packets'] = [bytes(p) for p in audio]
    info['times'] = times
    info['frames'] = list(frames_of(str(path)))  # as basicsr infer decodes them (exact colour conversion)
    return info


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


@pytest.mark.slow
def test_video_keeps_frames_timing_audio_colours_and_matches_infer_on_its_frames(tmp_path, weights, capsys):
    clip = tmp_path / 'clip.mp4'
    photo_clip(clip)
    src = described(clip)
    # the reference: basicsr infer on the decoded frames, as images (decoded as infer decodes a video: the frame's
    # own matrix and range, swscale's exact conversion)
    (tmp_path / 'frames').mkdir()
    for i, frame in enumerate(src['frames']):
        cv2.imwrite(str(tmp_path / 'frames' / f'{i:04d}.png'), frame)
    common = ['--weights', weights, '--backend', 'torch']
    assert cli(['infer', '-i', tmp_path / 'frames', '-o', tmp_path / 'frames_x4'] + common, capsys)[0] == 0
    reference = [cv2.imread(str(tmp_path / 'frames_x4' / f'{i:04d}.png')) for i in range(len(src['frames']))]

    # default encoding (the input's H.264, crf 18), in segments of 0.5 s: four parts joined
    code, out, err = cli(['infer', '-i', clip, '-o', tmp_path / 'out' / 'clip_x4.mp4', '--segment', '0.5'] + common,
                         capsys)
    assert code == 0, err
    got = described(tmp_path / 'out' / 'clip_x4.mp4')
    assert got['size'] == (src['size'][0] * 4, src['size'][1] * 4)
    assert len(got['frames']) == len(src['frames']) == 48
    assert got['rate'] == src['rate'] == 24
    assert np.allclose(got['times'], src['times'], atol=1e-9)
    assert got['audio'] == pytest.approx(src['audio'], abs=1e-6) and src['audio'] > 1.9
    assert got['audio_packets'] == src['audio_packets']  # copied untouched
    assert got['colours'] == src['colours'] == (5, 1) and got['codec'] == 'h264'
    quality = [psnr(g, r) for g, r in zip(got['frames'], reference)]  # RGB, every frame
    assert min(quality) > 38, quality
    assert sorted(os.listdir(tmp_path / 'out')) == ['.clip_x4.mp4.pfdn-lock', '.clip_x4.mp4.pfdn-made.json',
                                                    'clip_x4.mp4']  # parts gone; the film and what made it

    # lossless (FFV1 in RGB): exactly the frames infer makes from the images
    code, _, err = cli(['infer', '-i', clip, '-o', tmp_path / 'lossless.mkv', '--codec', 'ffv1'] + common, capsys)
    assert code == 0, err
    lossless = described(tmp_path / 'lossless.mkv')
    assert lossless['codec'] == 'ffv1' and len(lossless['frames']) == 48
    for g, r in zip(lossless['frames'], reference):
        assert np.array_equal(g, r)
    # .mp4 to .mkv: the same audio packets (Matroska keeps time in ms, so its durations are not the mp4's to the
    # sample; same-container outputs above and below keep them exactly)
    assert lossless['audio_packets'] == src['audio_packets'] and len(src['audio_packets']) > 80

    # a rerun of the same work keeps the finished output; a folder may mix images and videos
    code, out, _ = cli(['infer', '-i', clip, '-o', tmp_path / 'out' / 'clip_x4.mp4', '--segment', '0.5'] + common,
                       capsys)
    assert code == 0 and '1 kept' in out
    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    os.replace(clip, mixed / 'clip.mp4')
    cv2.imwrite(str(mixed / 'still.png'), src['frames'][0])
    code, out, err = cli(['infer', '-i', mixed, '-o', tmp_path / 'mixed_x4'] + common, capsys)
    assert code == 0, err
    assert '2 upscaled' in out
    assert np.array_equal(cv2.imread(str(tmp_path / 'mixed_x4' / 'still.png')), reference[0])
    assert len(described(tmp_path / 'mixed_x4' / 'clip.mp4')['frames']) == 48


def test_variable_frame_rate_full_range_bt709_and_rotation_are_kept(tmp_path, weights, capsys):
    clip = tmp_path / 'vfr.mkv'
    photo_clip(clip, frames=30, vfr=True, colours=(1, 2), rotation=90)  # BT.709, full range, portrait
    src = described(clip)
    assert len(set(np.round(np.diff(src['times']), 3))) == 2  # really variable: 30 and 70 ms
    code, _, err = cli(['infer', '-i', clip, '-o', tmp_path / 'out', '--weights', weights, '--backend', 'torch',
                        '--segment', '0.3'], capsys)
    assert code == 0, err
    got = described(tmp_path / 'out' / 'vfr.mkv')
    assert len(got['frames']) == 30
    assert got['colours'] == src['colours'] == (1, 2)
    assert got['rotation'] == src['rotation'] == 90


def test_conversions_beside_a_cpu_network_run_on_one_thread_and_give_swscales_pixels(tmp_path, weights, capsys,
                                                                                       monkeypatch):
    """On a CPU the network keeps every core busy: the colour conversions (decoding's to BGR, encoding's to the
    output's YUV) run on the calling thread alone (swscale's own slice threads would wait on each other's preempted
    slices), and one thread makes exactly the pixels swscale's threads make, both ways and at an HR size."""
    from pfdn_arch.deploy.media.video import encoding, parts, probe

    seen = []
    decode, frame = probe.decoded, encoding.Encoding.frame
    monkeypatch.setattr(parts, 'decoded', lambda *a, **k: seen.append(('decode', a[4])) or decode(*a, **k))
    monkeypatch.setattr(encoding.Encoding, 'frame', lambda self, px, sws=None, threads=0: seen.append(
        ('encode', threads)) or frame(self, px, sws, threads))
    clip = tmp_path / 'clip.mp4'
    photo_clip(clip, frames=6)
    code, _, err = cli(['infer', '-i', clip, '-o', tmp_path / 'out.mp4', '--weights', weights, '--backend', 'torch',
                        '--device', 'cpu'], capsys)
    assert code == 0, err
    assert sorted(set(seen)) == [('decode', 1), ('encode', 1)] and len(seen) == 12
    assert probe.sws_threads('cuda') == 0  # where the cores are free, swscale's own choice

    rng = np.random.default_rng(0)
    hr = cv2.GaussianBlur(rng.integers(0, 256, (680, 1024, 3), dtype=np.uint8), (5, 5), 1.5)
    source = type('Source', (), {'rgb': False, 'matrix': 1, 'range': 1})()
    enc = type('Enc', (), {'rgb': False, 'pix_fmt': 'yuv420p', 'matrix': 1, 'range': 1})()
    yuv = {t: encoding.Encoding.frame(enc, hr, threads=t) for t in (0, 1)}
    for a, b in zip(yuv[0].planes, yuv[1].planes):
        assert bytes(a) == bytes(b)
    assert np.array_equal(probe.decoded(yuv[0], source, threads=0), probe.decoded(yuv[0], source, threads=1))


PATCHES = ((40, 60, 200), (50, 190, 60), (200, 80, 40), (128, 128, 128))  # BGR: red, green, blue, grey


@pytest.mark.parametrize('colours', [(5, 1), (1, 2)], ids=['bt601-limited', 'bt709-full'])
def test_colours_survive_the_matrix_and_range(tmp_path, weights, capsys, colours):
    """Flat saturated patches through decode, network and encode: a range read or written wrong moves them by about
    16 levels, a wrong matrix (601 for 709) moves red and blue by 10-20; they must come back within 3."""
    img = np.zeros((48, 64, 3), np.uint8)
    for k, bgr in enumerate(PATCHES):
        img[24 * (k // 2):24 * (k // 2) + 24, 32 * (k % 2):32 * (k % 2) + 32] = bgr
    clip = tmp_path / 'patches.mkv'  # FFV1 keeps the range as a tag (H.264 decoders turn full range into yuvj*)
    with av.open(str(clip), 'w') as out:
        vs = out.add_stream('ffv1', rate=24)
        vs.width, vs.height, vs.pix_fmt = 64, 48, 'yuv444p'
        vs.codec_context.colorspace, vs.codec_context.color_range = colours
        frames = [av.VideoFrame.from_ndarray(img, format='bgr24').reformat(
            format='yuv444p', dst_colorspace=colours[0], src_color_range=2, dst_color_range=colours[1],
            interpolation=conversion()) for _ in range(6)]
        for i, frame in enumerate(frames):
            frame.pts = i
        encode_all(out, vs, frames)
    code, _, err = cli(['infer', '-i', clip, '-o', tmp_path / 'out.mp4', '--codec', 'h264', '--weights', weights,
                        '--backend', 'torch'], capsys)
    assert code == 0, err
    got = described(tmp_path / 'out.mp4')
    assert got['colours'] == colours and len(got['frames']) == 6
    for k, bgr in enumerate(PATCHES):
        y, x = 96 * (k // 2) + 48, 128 * (k % 2) + 64  # each patch's centre, away from edges
        seen = got['frames'][3][y - 16:y + 16, x - 16:x + 16].reshape(-1, 3).astype(float).mean(0)
        assert np.abs(seen - bgr).max() < 3, (k, seen, bgr)


def test_subtitles_and_metadata_are_copied_untouched(tmp_path, weights, capsys):
    clip = tmp_path / 'subs.mkv'
    lines = [(b'Hello, film', 0), (b'Second line', 300)]
    with av.open(str(clip), 'w') as out:
        out.metadata['title'] = 'A film'
        vs = out.add_stream('libx264', rate=24)
        vs.width, vs.height, vs.pix_fmt = 64, 48, 'yuv420p'
        subs = out.add_mux_stream('subrip')  # packets as they are (no subtitle encoder)
        subs.metadata['language'] = 'fra'
        frames = [av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90 + 5 * i, np.uint8), format='bgr24')
                  for i in range(12)]
        for i, frame in enumerate(frames):
            frame.pts = i
        encode_all(out, vs, frames)
        for text, ms in lines:
            packet = av.Packet(text)
            packet.stream, packet.time_base, packet.pts, packet.dts, packet.duration = subs, Fraction(1, 1000), ms, \
                ms, 250
            out.mux(packet)
    code, _, err = cli(['infer', '-i', clip, '-o', tmp_path / 'out.mkv', '--weights', weights, '--backend', 'torch'],
                       capsys)
    assert code == 0, err
    with av.open(str(tmp_path / 'out.mkv')) as c:
        assert [s.type for s in c.streams] == ['video', 'subtitle']
        assert c.metadata.get('title') == 'A film' and c.streams.subtitles[0].metadata.get('language') == 'fra'
        got = [(bytes(p), int(p.pts * p.time_base * 1000)) for p in c.demux(c.streams.subtitles[0]) if p.size]
    assert got == lines
    code, _, err = cli(['infer', '-i', clip, '-o', tmp_path / 'out.mp4', '--weights', weights, '--backend', 'torch'],
                       capsys)  # MP4 has no SubRip: said before any work, nothing written
    assert code == 1 and [line for line in err if line.startswith('error')] == [
        "error: -o: a .mp4 file cannot hold the input's subtitle stream (srt), which is copied untouched; choose "
        ".mkv (it holds most)"] and not (tmp_path / 'out.mp4').exists(), err


def test_ten_bit_video_stays_ten_bit(tmp_path, weights, capsys):
    """10-bit 4:2:0 in, 10-bit 4:2:0 out (run as 16-bit images), colours within half an 8-bit level of the
    source."""
    from skimage import data

    photo = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (320, 320), interpolation=cv2.INTER_AREA)
    photo = photo.astype(np.uint16) * 257
    clip = tmp_path / 'deep.mkv'
    with av.open(str(clip), 'w') as out:
        vs = out.add_stream('libx264', rate=24, options={'crf': '10'})
        vs.width, vs.height, vs.pix_fmt = 96, 64, 'yuv420p10le'
        vs.codec_context.colorspace, vs.codec_context.color_range = 1, 1
        frames = []
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[30 + i:94 + i, 40:136]), format='bgr48le')
            frame = frame.reformat(format='yuv420p10le', dst_colorspace=1, src_color_range=2, dst_color_range=1,
                                   interpolation=conversion())
            frame.pts = i
            frames.append(frame)
        encode_all(out, vs, frames)
    code, _, err = cli(['infer', '-i', clip, '-o', tmp_path / 'out', '--weights', weights, '--backend', 'torch'],
                       capsys)
    assert code == 0, err
    with av.open(str(tmp_path / 'out' / 'deep.mkv')) as c:
        v = c.streams.video[0]
        assert (v.codec_context.pix_fmt, v.codec_context.width, v.codec_context.height) == ('yuv420p10le', 384, 256)
        frame = next(c.decode(v))
        deep = frame.to_ndarray(format='bgr48le', src_colorspace=1, src_color_range=1, dst_color_range=2,
                                interpolation=conversion())
    small = cv2.resize(deep, (96, 64), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(small.mean((0, 1)) - photo[30:94, 40:136].mean((0, 1))).max() < 0.5 * 257


def _wait_for_parts(plan, proc, at_least, timeout=300):
    """Wait until ``plan`` lists ``at_least`` finished parts (the process still running)."""
    end = time.time() + timeout
    while time.time() < end:
        assert proc.poll() is None, 'the run ended before it could be interrupted: ' + proc.communicate()[1][-2000:]
        try:
            with open(plan) as f:
                if len(json.load(f)['parts']) >= at_least:
                    return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError('no part was finished in time')


@pytest.mark.slow
def test_a_killed_run_continues_from_its_last_segment_and_ctrl_c_says_how(tmp_path, weights):
    clip = tmp_path / 'long.mkv'
    photo_clip(clip, frames=96, w=128, h=96)  # 4 s: eight segments of 0.5 s
    args = ['infer', '-i', clip, '--weights', weights, '--backend', 'torch', '--codec', 'ffv1', '--segment', '0.5']
    straight = run_cli(*args, '-o', tmp_path / 'straight.mkv')
    assert straight.returncode == 0, straight.stderr[-2000:]

    out = tmp_path / 'resumed.mkv'
    plan = tmp_path / '.resumed.mkv.pfdn-parts' / 'plan.json'
    proc = start_cli(*args, '-o', out, cwd=tmp_path, output=True)
    _wait_for_parts(plan, proc, 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert not out.exists()  # the name appears only complete
    with open(plan) as f:
        killed_at = len(json.load(f)['parts'])

    proc = start_cli(*args, '-o', out, cwd=tmp_path, output=True)  # continues; Ctrl-C it after one more part
    _wait_for_parts(plan, proc, killed_at + 1)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and not out.exists()
    assert f'continuing after {killed_at} finished segment(s)' in err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert 'interrupted' in last and 'rerun the same command to continue' in last and 'Traceback' not in err

    done = run_cli(*args, '-o', out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'continuing after' in done.stderr
    a, b = described(tmp_path / 'straight.mkv'), described(out)
    assert len(a['frames']) == len(b['frames']) == 96
    assert np.allclose(a['times'], b['times'], atol=1e-9)
    assert all(np.array_equal(x, y) for x, y in zip(a['frames'], b['frames']))
    assert b['audio'] == pytest.approx(a['audio'], abs=1e-6)
    assert not (tmp_path / '.resumed.mkv.pfdn-parts').exists()


def test_bad_videos_are_one_error_line(tmp_path, weights, capsys):
    clip = tmp_path / 'clip.mp4'
    photo_clip(clip, frames=6, audio=False)
    (tmp_path / 'text.mp4').write_text('not a film')
    audio_only = tmp_path / 'sound.mp4'
    with av.open(str(audio_only), 'w') as c:
        a = c.add_stream('aac', rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp', layout='mono')
        frame.sample_rate, frame.pts = 8000, 0
        encode_all(c, a, [frame])
    broken = tmp_path / 'broken.mkv'  # a video stream whose packets are noise
    with av.open(str(clip)) as src, av.open(str(broken), 'w') as c:
        v = c.add_stream_from_template(src.streams.video[0])
        for i, packet in enumerate(p for p in src.demux(src.streams.video[0]) if p.dts is not None):
            noise = av.Packet(bytes(np.random.default_rng(i).integers(0, 256, packet.size, dtype=np.uint8)))
            noise.pts, noise.dts, noise.time_base, noise.stream = packet.pts, packet.dts, packet.time_base, v
            c.mux(noise)
    common = ['--weights', weights, '--backend', 'torch']
    cases = [
        (['-i', tmp_path / 'text.mp4', '-o', tmp_path / 'o1'], 'is not a video FFmpeg can read'),
        (['-i', audio_only, '-o', tmp_path / 'o2'], 'has no video stream (audio only)'),
        (['-i', broken, '-o', tmp_path / 'o3'], 'cannot be decoded'),
        (['-i', clip, '-o', tmp_path / 'x.webm', '--codec', 'ffv1'], 'a .webm file cannot hold ffv1 video'),
        (['-i', clip, '-o', clip], 'the output would replace the input'),
        (['-i', clip, '-o', tmp_path / 'o4.mp4', '--codec', 'nonsense'], "'nonsense' is not a video encoder"),
        (['-i', clip, '-o', tmp_path / 'o5.mkv', '--codec', 'ffv1', '--crf', '10'], 'ffv1 has no constant-quality'),
    ]
    for args, expected in cases:
        code, _, err = cli(['infer'] + args + common, capsys)
        assert code != 0, args
        errors = [line for line in err if line.startswith('error')]
        assert len(errors) == 1 and expected in errors[0], (args, err)
        assert not any('Traceback' in line for line in err)
    assert clip.stat().st_size > 0 and not (tmp_path / 'x.webm').exists()


# ------------------------------------------------------------------ the parts' record and the encoding, directly
def test_the_plan_keeps_finished_parts_for_the_same_key_and_discards_them_for_another(tmp_path):
    from pfdn_arch.deploy.media.video import Plan
    folder, key = str(tmp_path / '.out.mp4.pfdn-parts'), {'input': 'a', 'run': {'dtype': 'fp32'}}
    plan = Plan(folder, key)
    assert (plan.parts, plan.discarded, plan.next_part, plan.complete) == ([], False, 0, False)
    for index in (0, 1):
        (tmp_path / '.out.mp4.pfdn-parts' / f'part_{index:06d}.mov').write_bytes(b'x')
        plan.add(index, f'part_{index:06d}.mov', 24)
    again = Plan(folder, key)  # a rerun of the same command
    assert (again.next_part, again.frames_done, again.complete, again.discarded) == (2, 48, False, False)
    again.mark_complete()
    assert Plan(folder, key).complete
    other = Plan(folder, dict(key, run={'dtype': 'bf16'}))  # another setting: the frames would differ
    assert other.discarded and other.parts == [] and os.listdir(folder) == []
    plan = Plan(folder, key)
    (tmp_path / '.out.mp4.pfdn-parts' / 'part_000000.mov').write_bytes(b'x')
    plan.add(0, 'part_000000.mov', 24)
    os.remove(tmp_path / '.out.mp4.pfdn-parts' / 'part_000000.mov')  # a part the record names is gone
    assert Plan(folder, key).discarded


def test_the_encoding_follows_the_container_and_the_input(tmp_path):
    from pfdn_arch.deploy.media.video import Encoding, Source
    from pfdn_arch.errors import OptionsError
    photo_clip(tmp_path / 'in.mp4', frames=6)
    source = Source(str(tmp_path / 'in.mp4'))
    enc = Encoding(source, str(tmp_path / 'out.mkv'), 4)
    assert (enc.encoder, enc.pix_fmt, enc.muxer) == ('libx264', 'yuv420p', 'matroska')  # the input's codec
    assert (enc.width, enc.height, enc.matrix, enc.range) == (4 * 96, 4 * 64, 5, 1)  # its size x4, colours kept
    assert enc.options['crf'] == '18'
    lossless = Encoding(source, str(tmp_path / 'out.mkv'), 4, codec='ffv1')
    assert lossless.rgb and lossless.pix_fmt == 'bgr0' and 'crf' not in lossless.options
    with pytest.raises(OptionsError) as err:
        Encoding(source, str(tmp_path / 'out.mkv'), 4, codec='ffv1', crf=10)
    assert err.value.path == 'crf'
    with pytest.raises(OptionsError) as err:
        Encoding(source, str(tmp_path / 'out.webm'), 4)  # WebM holds no AAC, which is copied untouched
    assert err.value.path == 'output' and 'aac' in err.value.reason
    with pytest.raises(OptionsError) as err:
        Encoding(source, str(tmp_path / 'out.mp4'), 4, codec='banana')
    assert err.value.path == 'codec'


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    av = pytest.importorskip('av', reason="PyAV is not installed: pip install -e '.[video]'")
    path = tmp_path_factory.mktemp('clip') / 'c.mp4'
    with av.open(str(path), 'w') as c:
        s = c.add_stream('libx264', rate=10)
        s.width, s.height, s.pix_fmt = 48, 32, 'yuv420p'
        for i in range(12):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(sample_image('chelsea.png')[:32, :48], i, 1)),
                                           format='bgr24')
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.parametrize('codec, ext', [(None, '.webm'), ('vp9', '.mp4'), ('vp9', '.mkv'), ('av1', '.mkv'),
                                        ('av1', '.webm'), (None, '.avi'), (None, '.ts'), ('h264', '.mov')])
def test_each_codec_goes_into_each_container_that_holds_it(tiny, clip, tmp_path, capsys, codec, ext):
    import av
    out = tmp_path / f'up{ext}'
    args = ['-i', clip, '-o', out, '--segment', 0.5] + (['--codec', codec] if codec else [])
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    code, _, err = infer(args, capsys, tiny)
    assert code == 0, err
    # SVT-AV1 makes its caller real-time where it may (root): the thread is put back as it was
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before
    with av.open(str(out)) as c:
        frames = [f for f in c.decode(c.streams.video[0])]
    assert len(frames) == 12 and (frames[0].width, frames[0].height) == (192, 128)
    assert not list(tmp_path.glob('.*pfdn-parts'))
