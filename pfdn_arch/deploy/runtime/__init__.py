"""Running the deployed network: one module per backend (``torch_runner``, ``openvino_runner``,
``onnxruntime_runner``; ``model_file`` for exported files), what they share (``base``), the choice among them
(``choose``: ``make_runner``, ``resolve``, ``auto``'s cost model), the ONNX graph they run (``onnx_graph``), images
whole or in tiles and batches (``upscaler``, ``tiles``), and the NTIRE efficiency figures (``efficiency``)."""
