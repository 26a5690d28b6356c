"""edgevae: train a convolutional VAE, export it to ONNX, run it on devices without PyTorch."""

import os

__version__ = "0.1.0"

# onnxruntime >= 1.2x on Linux/macOS starts telemetry when it is imported: it writes a device id and an
# event database under $XDG_CACHE_HOME or ~/.cache, in Microsoft/DeveloperTools/.onnxruntime (creating
# HOME if it is missing, warning when it is read-only) and queues events for upload. A device runtime writes nothing but its outputs, so
# edgevae opts out before anything of it can import onnxruntime. The switch is read once, when
# onnxruntime is first imported; ORT_DISABLE_TELEMETRY=0 in the environment keeps telemetry on.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
