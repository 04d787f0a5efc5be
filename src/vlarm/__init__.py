"""vlarm: language-conditioned robot manipulation with vision-language models.

Layers (see docs/DESIGN.md): ``sim`` -> ``tasks`` -> ``envs`` -> ``data`` -> ``policies`` -> ``eval`` -> ``cli``.
"""

__version__ = "0.1.0"
