"""Joining the finished parts' video packets and the input's audio and subtitle packets, interleaved by time, into
the output (written atomically)."""
import heapq
import os
from typing import Any, Callable, Optional

from ....errors import DataError, PFDNError
from ....files.atomic import atomic_path
from .containers import pyav, template_stream


def join(source: Any, enc: Any, plan: Any, out_path: str, before: Optional[Callable[[str], None]] = None) -> None:
    """The finished parts' video packets and the input's audio/subtitle packets, interleaved by time, into the
    output (atomically); ``before(path)``: called with the finished file's temporary path before it takes the
    output's name (a record of what is about to be there)."""
    av = pyav()
    if not plan.parts:
        raise DataError('has no frames to write', source.path)
    parts = [os.path.join(plan.folder, p['file']) for p in plan.parts]
    with atomic_path(out_path) as tmp, av.open(parts[0]) as first, av.open(source.path) as inp:
        out = av.open(tmp, 'w', format=enc.muxer)
        try:
            out.metadata.update({k: v for k, v in source.metadata.items() if k not in ('encoder', 'major_brand',
                                                                                       'minor_version',
                                                                                       'compatible_brands')})
            video = template_stream(out, first.streams.video[0])
            video.codec_context.framerate = source.rate  # the rate containers declare (timestamps are the packets' own)
            video.metadata.update(source.video_metadata)
            if source.rotation:
                video.set_display_rotation(source.rotation)
            by_index = {s.index: s for s in inp.streams}
            copied = {i: out.add_stream_from_template(by_index[i]) for i, _, _ in source.copied}
            for i, stream in copied.items():
                stream.metadata.update(by_index[i].metadata)

            def video_packets():
                last = None
                for path in parts:
                    with av.open(path) as c:
                        for packet in c.demux(c.streams.video[0]):
                            if packet.dts is None and packet.pts is None:
                                continue  # the demuxer's end marker
                            t = packet.dts * packet.time_base
                            if last is not None and t <= last:  # where parts meet, decoding delay may overlap
                                packet.dts = int(last / packet.time_base) + 1
                                if packet.pts is not None and packet.dts > packet.pts:
                                    raise PFDNError('its segments cannot be joined (their decoding timestamps '
                                                    'overlap); rerun with --segment 0 (one segment)', out_path)
                                t = packet.dts * packet.time_base
                            last = t
                            yield t, 0, packet

            def copied_packets():
                if not copied:
                    return
                last = {}
                for packet in inp.demux(*[by_index[i] for i in copied]):
                    stamp = packet.dts if packet.dts is not None else packet.pts
                    if stamp is None:
                        if packet.size == 0:
                            continue
                        t = last.get(packet.stream.index, 0)
                    else:
                        t = stamp * packet.time_base
                    last[packet.stream.index] = t
                    yield t, 1, packet

            for _, kind, packet in heapq.merge(video_packets(), copied_packets(), key=lambda x: (x[0], x[1])):
                packet.stream = video if kind == 0 else copied[packet.stream.index]
                out.mux(packet)
        finally:
            out.close()
        if before is not None:
            before(tmp)
