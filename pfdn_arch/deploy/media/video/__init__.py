"""Films through the network (``basicsr infer`` on a video): the containers (``containers``), what an input holds
and how its frames are decoded (``probe``), how the output is encoded (``encoding``), the resumable parts' record
(``plan``), the parts encoded through the pipeline (``parts``), their joining into the output (``mux``), and the
job itself (``upscale``). docs/video.md says what is kept of the input."""
from .containers import MUXERS, VIDEO_EXTS, is_video
from .encoding import Encoding
from .plan import Plan
from .probe import Source, conversion, decoded, frames_of, video_frames_shapes
from .upscale import upscale_video

__all__ = ['Encoding', 'MUXERS', 'Plan', 'Source', 'VIDEO_EXTS', 'conversion', 'decoded', 'frames_of', 'is_video',
           'upscale_video', 'video_frames_shapes']
