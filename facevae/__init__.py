"""facevae: learn the face of one person from a long video with a beta-VAE, and look inside what it learned."""

from facevae.core.version import VERSION as __version__

__all__ = ["__version__"]
