"""edgevae.train: the seed VAE, its loss, Fashion-MNIST loading and the training loop (PyTorch).

Kept free of imports so that `edgevae train` on a base install can say which extra is missing.
"""
