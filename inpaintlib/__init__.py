"""inpaintlib: CNN image inpainting (Context Encoder, Partial-Convolution U-Net).

Mask polarity everywhere in the library: **1 = valid (known) pixel, 0 = hole**.
"""

__version__ = "0.1.0"
