"""The deployed network in other tools' formats: .pth, .safetensors and ONNX (``formats``), spandrel's loader for
chaiNNer and ComfyUI (``spandrel_arch``), and int8 models (``int8``)."""
