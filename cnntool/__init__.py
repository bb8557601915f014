"""cnntool: image analysis with convolutional neural networks, from the command line.

Importing this package imports nothing heavy (no torch, no OpenCV): the CLI's fast start
depends on it.
"""

__version__ = "0.1.0"
