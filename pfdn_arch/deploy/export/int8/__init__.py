"""int8 PFDN: NNCF's settings for it (``config``), post-training quantization into an OpenVINO IR and a QDQ ONNX
(``ptq``), the fake-quantized network quantization-aware fine-tuning trains and its export (``qat``), and the record
of how each was made (``record``)."""
