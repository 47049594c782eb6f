"""Pure measures of arrays: each a function of features, images or codes returning floats or small dataclasses.

Nothing here reads files, draws figures or knows about checkpoints; each function cites the paper it follows.
"""
