"""Deployment: the deployed PFDN on inference runtimes (``backends``), whole images and tiles in batches
(``upscaler``, ``tiles``), folders of image files (``folder``), other tools' formats (``formats``: .pth,
.safetensors, ONNX; ``spandrel_arch``: chaiNNer/ComfyUI's loader) and the NTIRE efficiency figures
(``efficiency``). Needs torch, numpy and OpenCV (the runtimes are optional); never basicsr."""
