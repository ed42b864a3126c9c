"""Video end to end (basicsr infer on a film: decode, network, encode overlapped) against the backend alone.

    python bench/bench_video.py [--size 510x340] [--frames 96] [--backend auto] [--dtype auto] [--rounds 2]
                                [--device cpu|cuda] [--codec h264]

A clip is made on the spot with PyAV: a pan across a built-in photo (scikit-image's astronaut), H.264 4:2:0 with an
AAC track, LR ``--size``. The same runner (built once, as ``basicsr infer`` builds it for a video: the workload of
the clip's frames, OpenVINO's throughput streams on a CPU) then runs, alternately in each round:
- the backend alone: the decoded frames through the network, as many at once as the runner has streams (the
  backend's own frames per second; no decoding, no colour conversion, no encoding);
- end to end: ``deploy.media.video.upscale_video`` on the clip into an .mp4 (decoding, the network, encoding and the
  final join, with their threads), wall time.
It also times decoding and encoding alone (one thread each) to show where the rest goes. Medians over rounds.
Last line: ``video on <device>: <fps> fps end to end, <ratio>x the backend's frame time``. The defaults are what
``basicsr infer`` runs on a film (``--dtype auto``), 4 s of it: a clip's fixed start and end (the encoder's lookahead
flushed after the last frame, about 0.15 s here) would be 6% of 24 frames, and films are longer.
"""
import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))

from pfdn_arch.deploy.runtime.build import build_runner  # noqa: E402
from pfdn_arch.deploy.runtime.choose import Workload  # noqa: E402
from pfdn_arch.deploy.runtime.upscaler import Upscaler, to_network  # noqa: E402
from pfdn_arch.deploy.media.video import Encoding, Source, conversion, frames_of, upscale_video  # noqa: E402
from pfdn_arch.files.checkpoints import build_from_checkpoint  # noqa: E402
from pfdn_arch.layout.locations import default_weights  # noqa: E402


def make_clip(path, w, h, frames, rate=24):
    import av
    import cv2
    from skimage import data

    side = max(w, h) * 2
    photo = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (side, side), interpolation=cv2.INTER_AREA)
    with av.open(path, 'w') as out:
        vs = out.add_stream('libx264', rate=rate, options={'crf': '16', 'preset': 'veryfast'})
        vs.width, vs.height, vs.pix_fmt = w, h, 'yuv420p'
        audio = out.add_stream('aac', rate=44100, layout='mono')
        for i in range(frames):
            x, y = (i * 3) % (side - w), (i * 2) % (side - h)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[y:y + h, x:x + w]), format='bgr24')
            frame = frame.reformat(format='yuv420p', dst_colorspace=5, src_color_range=2, dst_color_range=1,
                                   interpolation=conversion())
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        samples = int(44100 * frames / rate)
        for start in range(0, samples, 1024):
            k = min(1024, samples - start)
            a = av.AudioFrame.from_ndarray(np.zeros((1, k), np.float32), format='fltp', layout='mono')
            a.sample_rate, a.pts = 44100, start
            for p in audio.encode(a):
                out.mux(p)
        for p in audio.encode():
            out.mux(p)


def backend_alone(up, frames):
    """Seconds to run ``frames`` through the network, ``up.runner.streams`` at a time (threads, as the video pipeline
    does): each frame's forward and its result checked finite where the runtime left it, as end to end does on a
    CPU (``Upscaler.finish_beside_network``), with no copy out and no pixels made from it."""
    todo = list(range(len(frames)))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            up._run(to_network(frames[i])[0], lambda out: None)  # forward and finite check, in place
    threads = [threading.Thread(target=worker) for _ in range(max(1, up.runner.streams))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def encode_alone(source, enc, results, folder):
    """Seconds to convert and encode the results (one thread), as the writer does."""
    conv = conversion()
    start = time.perf_counter()
    container, stream = enc.open_part(os.path.join(folder, 'enc.mov'), source)
    for i, img in enumerate(results):
        frame = enc.frame(img, conv)  # the writer's own conversion
        frame.pts, frame.time_base = i, source.time_base
        for p in stream.encode(frame):
            container.mux(p)
    for p in stream.encode():
        container.mux(p)
    container.close()
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--size', default='510x340', help='LR frame size WxH (even: 4:2:0 video has even sides)')
    ap.add_argument('--frames', type=int, default=96)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--backend', default='auto')
    ap.add_argument('--dtype', default='auto')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--codec', default=None, help='--codec of basicsr infer (None: the clip\'s, H.264)')
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--weights', default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    w, h = map(int, a.size.lower().split('x'))
    weights = a.weights or default_weights() or os.path.join(HERE, '..', '..', 'shared', 'weights', 'team08_PFDN.pth')
    net, _ = build_from_checkpoint(weights)
    folder = tempfile.mkdtemp(prefix='pfdn-bench-video-')
    clip = os.path.join(folder, 'clip.mp4')
    make_clip(clip, w, h, a.frames)
    frames = list(frames_of(clip))
    runner = build_runner(net, a.backend, a.device, a.dtype, warn=print,
                         workload=Workload.of([(h, w)] * a.frames), streams=torch.get_num_threads())
    up = Upscaler(runner, 0, 16, 16 if runner.device.type == 'cuda' else 1)
    print(f'clip: {a.frames} frames of {w}x{h} -> {4 * w}x{4 * h}; backend: {runner} with {runner.streams} stream(s); '
          f'{torch.get_num_threads()} torch threads; cores: {os.cpu_count()}')
    up.run_images([frames[0]])  # warm-up

    source = Source(clip)
    enc = Encoding(source, os.path.join(folder, 'out.mp4'), 4, a.codec)
    start = time.perf_counter()
    list(frames_of(clip))
    decode_s = time.perf_counter() - start
    results = [f() for f in up.run_images([frames[0]])] * a.frames
    encode_s = encode_alone(source, enc, results, folder)

    alone, e2e = [], []
    for r in range(a.rounds):
        alone.append(backend_alone(up, frames))
        out = os.path.join(folder, f'out{r}.mp4')
        start = time.perf_counter()
        upscale_video(clip, out, up, a.codec, None, 10.0, True, {}, None, lambda line: None)
        e2e.append(time.perf_counter() - start)
        print(f'round {r + 1}: backend alone {alone[-1]:.2f} s, end to end {e2e[-1]:.2f} s')
    b, e = statistics.median(alone) / a.frames, statistics.median(e2e) / a.frames
    print('| what | ms per frame | fps | x backend |')
    print('| --- | --- | --- | --- |')
    print(f'| backend alone ({runner.name}, {runner.streams} streams) | {b * 1e3:.1f} | {1 / b:.2f} | 1.00 |')
    print(f'| end to end (basicsr infer on the clip, {enc.encoder} {enc.pix_fmt}) | {e * 1e3:.1f} | {1 / e:.2f} | '
          f'{e / b:.2f} |')
    print(f'| decoding alone (1 thread, colour conversion included) | {decode_s / a.frames * 1e3:.1f} | '
          f'{a.frames / decode_s:.1f} | {decode_s / a.frames / b:.2f} |')
    print(f'| encoding alone ({enc.encoder}, conversion included) | {encode_s / a.frames * 1e3:.1f} | '
          f'{a.frames / encode_s:.1f} | {encode_s / a.frames / b:.2f} |')
    print(f'video on {runner.device.type}: {1 / e:.2f} fps end to end, {e / b:.2f}x the backend\'s frame time')


if __name__ == '__main__':
    main()
