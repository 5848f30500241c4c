"""shopstyle_jax: product photos -> styled images with a conditional GAN (JAX/Flax).

The public face is inference: `stylize_fn` (jitted, pure) and `load_stylizer`
(a trained workdir -> a callable on uint8 photos of any size).
"""

from shopstyle_jax.stylize import load_stylizer
from shopstyle_jax.stylize import stylize_fn

__all__ = ['load_stylizer', 'stylize_fn']
