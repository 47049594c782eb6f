"""The base every layer may use: errors, atomic files, tensor conversions, device choice, the checkpoint format.

Nothing here imports anything of facevae above it."""
