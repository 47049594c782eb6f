"""The networks and the LightningModules that train them."""

from facevae.models.beta_vae import BetaVAE
from facevae.models.lit_beta_vae import BetaVAEModule

__all__ = ["BetaVAE", "BetaVAEModule"]
