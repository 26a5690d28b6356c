"""edgevae: train a convolutional VAE, export it to ONNX, run it on devices without PyTorch."""

__version__ = "0.1.0"
