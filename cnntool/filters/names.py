"""The option names of the filter stage, in one numpy-free place.

The CLI builds its help from these (and from the op table in :mod:`cnntool.filters.ops`)
without importing NumPy or OpenCV, so ``cnntool --help`` stays fast.
"""

#: What fills the padding (see :mod:`cnntool.filters.convolve` for the exact definitions).
BORDERS = ("zero", "reflect", "symmetric", "replicate", "wrap")
#: How much padding: these names, or a number of pixels per side.
PADDINGS = ("same", "valid", "full")
#: ``conv`` flips the kernel (true convolution); ``corr`` slides it as written.
MODES = ("conv", "corr")
#: How a linear filter is computed.
METHODS = ("auto", "direct", "fft")
#: Gradient operators and what to return from them.
OPERATORS = ("sobel", "prewitt", "scharr")
AXES = ("x", "y", "magnitude", "direction")
#: Pooling kinds.
POOL_KINDS = ("max", "avg")
#: How colour images are filtered.
COLOR_MODES = ("channels", "gray", "luminance")
#: How float results become uint8 images (``.npy`` outputs are never scaled).
SCALES = ("clip", "abs", "minmax", "offset")

#: Other libraries' names for our borders, used only to hint (one name per thing is accepted).
BORDER_SYNONYMS = {
    "constant": "zero", "zeros": "zero", "mirror": "reflect", "reflect101": "reflect",
    "reflect_101": "reflect", "edge": "replicate", "nearest": "replicate", "circular": "wrap",
}
