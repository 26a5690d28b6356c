"""Inference: onnxruntime sessions, the bounded run, VAERuntime (encode, reparameterize, decode, sample), argument
checks, execution providers and the likelihood bounds."""
