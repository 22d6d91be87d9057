"""omnifuse: encode, fuse, align, search and ask across text, images, audio and video."""

__version__ = "0.1.0"
