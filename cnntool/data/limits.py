"""Limits and defaults of the data layer that the CLI needs without importing NumPy or OpenCV."""

#: Default ``--max-pixels``: 1/4 gigapixel (a 16k x 16k image), far above any photo.
DEFAULT_MAX_PIXELS = 16384 * 16384
