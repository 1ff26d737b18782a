"""Backend: image sections -> image.bin (and generated C)."""
