"""Other frameworks: export to ONNX/TorchScript and import of the authors' Caffe models."""
