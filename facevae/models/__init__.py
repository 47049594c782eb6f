"""The networks and the LightningModules that train them."""

from facevae.models.beta_vae import BetaVAE
from facevae.models.lit_beta_vae import BetaVAEModule
from facevae.models.lit_stacked_beta_vae import StackedBetaVAEModule
from facevae.models.lit_wgan_gp import WGANGPModule
from facevae.models.wgan_gp import Critic, Generator

__all__ = ["BetaVAE", "BetaVAEModule", "Critic", "Generator", "StackedBetaVAEModule", "WGANGPModule"]
