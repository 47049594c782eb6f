"""facevae: learn the face of one person from a long video with a beta-VAE, and look inside what it learned."""

__version__ = "0.1.0"
