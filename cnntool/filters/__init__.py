"""Classical filtering, the way the CNN lectures define it.

- :mod:`~cnntool.filters.kernels`: named kernels as constants (``SOBEL_X``, ``LAPLACE_4``...)
  and builders (``gaussian_kernel``, ``log_kernel``...), custom kernels from text or files;
- :mod:`~cnntool.filters.convolve`: ``convolve`` / ``correlate`` with stride, padding, borders,
  dilation, and direct, separable or FFT computation;
- :mod:`~cnntool.filters.pooling`: max and average pooling;
- :mod:`~cnntool.filters.edges`: Sobel/Prewitt/Scharr gradients and Canny;
- :mod:`~cnntool.filters.nonlinear`: median and bilateral filters;
- :mod:`~cnntool.filters.color`: per-channel, grayscale and CIELAB-luminance filtering;
- :mod:`~cnntool.filters.scale`: float results to uint8 images;
- :mod:`~cnntool.filters.ops`: the op table, ``NAME[:KEY=VALUE...]`` parsing and chains;
- :mod:`~cnntool.filters.batch`: one file in, one record and one output file out.

This package's ``__init__`` imports nothing, so the CLI can read the numpy-free op table
(:mod:`~cnntool.filters.names`, :mod:`~cnntool.filters.ops`) without loading NumPy.
"""
