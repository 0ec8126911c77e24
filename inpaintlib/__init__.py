"""inpaintlib: CNN image inpainting (Context Encoder, Partial-Convolution U-Net).

Mask polarity everywhere in the library: **1 = valid (known) pixel, 0 = hole**.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``inpaintlib.inpaint(model, image, mask)`` without importing torch-heavy modules at package import;
    # ``inpaintlib.pretrained("pconv-fill-scale")``: the run directory of a stored run (``hub.pretrained``).
    if name == "inpaint":
        from .inference import inpaint  # imported on first use: `import inpaintlib` (and --help) stay light

        return inpaint
    if name == "pretrained":
        from .hub import pretrained

        return pretrained
    raise AttributeError(f"module 'inpaintlib' has no attribute {name!r}")
