"""Files in and out of the runtime's commands: images (IDX, .npy, .png) and latents read without trusting them, and
.png grids and .npy arrays written atomically."""
