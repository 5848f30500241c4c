"""A small procedural renderer of studio product photos (the synthetic catalogue's).

`canvas` draws and shades, `products` holds one drawer per category, `scene`
poses a product on a backdrop and renders the photo from a seed.
"""

from shopstyle_jax.data.synthetic import products
from shopstyle_jax.data.synthetic import scene

CATEGORIES = products.CATEGORIES
example_seed = scene.example_seed
render_example = scene.render_example
render_photo = scene.render_photo
render_scene = scene.render_scene
render_mask = scene.render_mask
render_white = scene.render_white
