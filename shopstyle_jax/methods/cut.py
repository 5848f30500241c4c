"""CUT and FastCUT (Park et al. 2020): unpaired translation by patchwise contrastive learning.

G maps photos to the style; an unconditional PatchGAN D tells its outputs from
style images; PatchNCE asks each patch of G(photo) to pick, among patches of
the same photo, the one at its own position, compared in G's encoder features
(taps) projected by an MLP head H. One step, as the official `cut_model.py`:

  forward   x = concat(photo, style) if nce_identity (CUT) else photo, flipped
            horizontally when flip_equivariance (FastCUT) draws it; ONE pass
            G(x) gives fake = G(photo) and (CUT) the identity output G(style).
  D update  0.5 * (gan(D(style), 1) + gan(D(stop_grad(fake)), 0)).
  G+H       adversarial_weight * gan(D'(fake), 1) with the updated D'
            + nce_weight * NCE(photo, fake)                                 (FastCUT)
            + nce_weight * 0.5 * (NCE(photo, fake) + NCE(style, G(style)))  (CUT)
            [+ content, style and TV terms when their weights are > 0].

NCE(src, out) is the mean over taps of `losses.patch_nce`: queries H(encode(out))
and keys H(encode(src)) (no gradient) at the same positions, up to nce_patches
per tap, one set for the whole batch. After a flipped forward the queries'
features are flipped back first, so G(flip(photo)) must match photo mirrored.
The flip (a fair coin per step) and the positions (per step, term and tap) come
from (seed, step) only, so they do not depend on how the batch is sharded.

Several styles (`config.data.style_folders`): each example's style,
batch['style_id'], one-hot, conditions G (every pass, encoder taps included,
in the example's style) and D, a projection PatchGAN that judges each style
on its own; the style image of row i is in row i's style.
"""

from typing import Any, NamedTuple, Optional, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from shopstyle_jax import losses
from shopstyle_jax import state as state_lib
from shopstyle_jax import style_mix
from shopstyle_jax.methods import common
from shopstyle_jax.models import discriminators
from shopstyle_jax.models import generators
from shopstyle_jax.models import layers
from shopstyle_jax.models import patch_mlp

Params = Any
Batch = dict[str, jax.Array]

# Per-step random streams, split from (seed, step) in this fixed order.
_STREAMS = ('dropout', 'noise', 'flip', 'patches')
# PatchNCE terms, each with its own patch positions (the official draws new
# ids for every calculate_NCE_loss call): G(photo) vs photo, G(style) vs style.
NCE_TERM, NCE_IDENTITY_TERM = 0, 1


class Models(NamedTuple):
  """G: photo -> style generator (with encoder taps); D: unconditional PatchGAN D(image);
  H: PatchMLP, one projection head per tap of G.nce_taps."""

  G: nn.Module
  D: nn.Module
  H: nn.Module


@flax.struct.dataclass
class State:
  """CUT's training state (a pytree); the networks themselves are static.

  g_*: the photo -> style generator (where `load_stylizer` looks); d_*: the
  discriminator; h_*: the PatchNCE head, trained with G's optimizer settings
  (the official optimizer_F) and used only in training. `*_batch_stats` are {}
  without batch norm; `ema_params` is {} when config.ema_decay is 0.
  """

  step: jax.Array
  g_params: Params
  g_batch_stats: Params
  g_opt_state: optax.OptState
  d_params: Params
  d_batch_stats: Params
  d_opt_state: optax.OptState
  h_params: Params
  h_opt_state: optax.OptState
  ema_params: Params

  def generator_variables(self, use_ema: bool = True) -> dict:
    """The generator's variables for inference: EMA weights when there are any."""
    params = self.ema_params if (use_ema and self.ema_params) else self.g_params
    return state_lib.variables(params, self.g_batch_stats)


def build_models(config: ml_collections.ConfigDict, dtype: Any = jnp.float32) -> Models:
  """G from config.model, D unconditional, H with config.model.nce_mlp_channels;
  G and D style-conditioned with several styles."""
  n = style_mix.num_styles(config)
  make_d = lambda: discriminators.create_discriminator(
    config.model, dtype=dtype, conditional=False, num_styles=n
  )
  d = make_d()
  if config.loss.sharp_disc_weight:
    d = discriminators.SurfaceAndSharpDiscriminator(surface=d, sharp=make_d())
  return Models(
    G=generators.create_generator(config.model, dtype=dtype, num_styles=n),
    D=d,
    H=patch_mlp.PatchMLP(num_channels=config.model.nce_mlp_channels, dtype=dtype),
  )


def nce_layers(config: ml_collections.ConfigDict) -> Optional[tuple[str, ...]]:
  """The taps PatchNCE compares: config.model.nce_layers (names, or comma-separated
  names as the official --nce_layers), or None = G's `nce_taps`."""
  names = config.model.nce_layers
  names = [names] if isinstance(names, str) else names
  return tuple(t.strip() for item in names for t in item.split(',') if t.strip()) or None


def create_state(config: ml_collections.ConfigDict, models: Models, rng: jax.Array) -> State:
  """Initialises G, D and H (H from the shapes of G's taps at the training size)."""
  g_rng, d_rng, h_rng = jax.random.split(rng, 3)
  image = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
  g_style, d_style = layers.style_args(models.G), layers.style_args(models.D)
  g_vars = models.G.init({'params': g_rng}, image, *g_style, train=False)
  views = (
    (image, image)
    if isinstance(models.D, discriminators.SurfaceAndSharpDiscriminator)
    else (image,)
  )
  d_vars = models.D.init({'params': d_rng}, *views, *d_style, train=False)
  tap_shapes = jax.eval_shape(
    lambda v: models.G.apply(
      v, image, *g_style, train=False, taps=nce_layers(config), method=models.G.encode
    ),
    g_vars,
  )
  patches = [
    jnp.zeros((1, min(s.shape[1] * s.shape[2], config.loss.nce_patches), s.shape[3]), jnp.float32)
    for s in tap_shapes
  ]
  h_params = models.H.init(h_rng, patches)['params']
  tx = state_lib.create_optimizer(config)
  g_params, d_params = g_vars['params'], d_vars['params']
  return State(
    step=jnp.zeros((), jnp.int32),
    g_params=g_params,
    g_batch_stats=g_vars.get('batch_stats', {}),
    g_opt_state=tx.init(g_params),
    d_params=d_params,
    d_batch_stats=d_vars.get('batch_stats', {}),
    d_opt_state=tx.init(d_params),
    h_params=h_params,
    h_opt_state=tx.init(h_params),
    ema_params=jax.tree.map(jnp.copy, g_params) if config.ema_decay > 0 else {},
  )


def _step_rngs(config: ml_collections.ConfigDict, step: jax.Array) -> dict[str, jax.Array]:
  return common.step_rngs(state_lib.prng_key(config.seed), step, *_STREAMS)


def flip_drawn(config: ml_collections.ConfigDict, step: jax.Array) -> jax.Array:
  """Whether the step flips its forward (FastCUT's flip equivariance): a fair coin per
  step from (seed, step); always False when config.loss.flip_equivariance is off."""
  if not config.loss.flip_equivariance:
    return jnp.zeros((), bool)
  return jax.random.bernoulli(_step_rngs(config, step)['flip'], 0.5)


def patch_ids(
  config: ml_collections.ConfigDict, step: jax.Array, term: int, tap_shapes: Sequence[Sequence[int]]
) -> list[jax.Array]:
  """The positions PatchNCE term `term` compares at `step`, one id vector per tap.

  Layer l with [B, H, W, C] features gets min(H*W, nce_patches) distinct flat
  positions (`losses.sample_patch_ids`) from (seed, step, term, l); the same
  ids serve every image of the batch and both the query and the key side.
  """
  rng = jax.random.fold_in(_step_rngs(config, step)['patches'], term)
  return [
    losses.sample_patch_ids(
      jax.random.fold_in(rng, layer), shape[1] * shape[2], config.loss.nce_patches
    )
    for layer, shape in enumerate(tap_shapes)
  ]


def patch_nce_loss(
  head: nn.Module,
  h_params: Params,
  feat_q: Sequence[jax.Array],
  feat_k: Sequence[jax.Array],
  ids: Sequence[jax.Array],
  tau: float,
) -> jax.Array:
  """Mean over tap layers of PatchNCE between query and key features at `ids`.

  The official calculate_NCE_loss without its lambda_NCE factor: both sides
  are gathered at the same positions and projected by the same head; the keys
  carry no gradient (`losses.patch_nce`).
  """
  project = lambda params, feats: head.apply(
    {'params': params}, [losses.gather_patches(f, i) for f, i in zip(feats, ids)]
  )
  # The official detaches the projected keys: nothing upstream of them gets gradients.
  q = project(h_params, feat_q)
  k = project(jax.lax.stop_gradient(h_params), jax.lax.stop_gradient(feat_k))
  return jnp.mean(jnp.stack([losses.patch_nce(fq, fk, tau) for fq, fk in zip(q, k)]))


def make_step(
  config: ml_collections.ConfigDict, models: Models, vgg: Optional[nn.Module] = None
) -> common.StepFn:
  """Builds the pure step for these models and loss weights (weights are static)."""
  lc = config.loss
  g, d, h = models
  tx = state_lib.create_optimizer(config)
  lr_schedule = state_lib.learning_rate_schedule(config)
  use_nce = lc.nce_weight > 0
  # The identity pass G(style) serves only NCE_Y (the official forwards it
  # whenever nce_idt; with nce_weight 0 we skip it).
  use_identity = use_nce and lc.nce_identity
  use_vgg = lc.content_weight > 0 or lc.style_weight > 0
  if use_vgg:
    if vgg is None:
      raise ValueError('config.loss.content_weight or style_weight > 0 needs the VGG19 module.')
    needed = set(lc.content_layers if lc.content_weight else ()) | set(
      lc.style_layers if lc.style_weight else ()
    )
    missing = sorted(needed - set(vgg.layers))
    if missing:
      raise ValueError(
        f'The VGG19 module does not return {missing}; its layers are {tuple(vgg.layers)}.'
      )
  # Batch norm normalises over the batch a pass sees, so with it each image
  # batch gets its own encoder pass in the official order (G(photo), photo,
  # G(style), style); other norms are per example, and one pass over the
  # queries and one over the keys give the same features.
  separate_passes = config.model.norm == 'batch'
  taps = nce_layers(config)
  surface = common.loss_surface(lc)

  num_styles = style_mix.num_styles(config)
  # The page each view judges, and its weight in G's adversarial term.
  sharp = lc.sharp_disc_weight > 0
  view_weights = (
    (lc.adversarial_weight, lc.sharp_disc_weight) if sharp else (lc.adversarial_weight,)
  )

  def judge(d_params, stats, images, cond):
    """D's logits for `images`, one array per view, and the updated batch stats."""
    views = (surface(images), images) if sharp else (surface(images),)
    logits, stats = common.apply_train(d, d_params, stats, *views, *cond)
    return (tuple(logits) if sharp else (logits,)), stats

  def step(state: State, batch: Batch, vgg_params=None) -> tuple[State, common.Metrics]:
    photo, style = batch['photo'], batch['style']
    n = photo.shape[0]
    # Several styles: each row's one-hot style weights [N, S] (G's and D's); none with one.
    weights = jax.nn.one_hot(batch['style_id'], num_styles) if num_styles > 1 else None
    cond = lambda k: () if weights is None else (jnp.concatenate([weights] * k),)
    rngs = _step_rngs(config, state.step)
    flip = flip_drawn(config, state.step)
    maybe_flip = lambda x: jnp.where(flip, jnp.flip(x, axis=2), x)  # [N, H, W, C]: width.

    # One forward of G on photo and (CUT) style images: fake_all = [G(photo); G(style)].
    real = jnp.concatenate([photo, style], axis=0) if use_identity else photo
    if lc.flip_equivariance:
      real = maybe_flip(real)
    g_rngs = {'dropout': rngs['dropout'], 'noise': rngs['noise']}

    def g_forward(g_params):
      return common.apply_train(
        g, g_params, state.g_batch_stats, real, *cond(real.shape[0] // n), rngs=g_rngs
      )

    fake_all, g_vjp, forward_stats = jax.vjp(g_forward, state.g_params, has_aux=True)

    # Discriminator update: generated images first, then style images, each its own call.
    def d_loss_fn(d_params):
      fake_logits, stats = judge(
        d_params, state.d_batch_stats, jax.lax.stop_gradient(fake_all[:n]), cond(1)
      )
      real_logits, stats = judge(d_params, stats, style, cond(1))
      loss = sum(losses.discriminator_loss(lc.gan, r, f) for r, f in zip(real_logits, fake_logits))
      return loss, (stats, real_logits[0].mean(), fake_logits[0].mean())

    (d_loss, (d_update_stats, d_real, d_fake)), d_grads = jax.value_and_grad(
      d_loss_fn, has_aux=True
    )(state.d_params)
    d_params, d_opt_state = common.update(tx, d_grads, state.d_opt_state, state.d_params)

    def encode(g_params, stats, images, pass_id):
      """G's tap features of image batches (one pass over their concatenation): a list of
      tap lists, one per batch; and the updated batch stats."""
      rng = {k: jax.random.fold_in(v, pass_id) for k, v in g_rngs.items()}
      feats, mutated = g.apply(
        state_lib.variables(g_params, stats),
        jnp.concatenate(images, axis=0),
        *cond(len(images)),
        train=True,
        rngs=rng,
        mutable=['batch_stats'],
        taps=taps,
        method=g.encode,
      )
      bounds = [sum(x.shape[0] for x in images[: i + 1]) for i in range(len(images) - 1)]
      per_batch = zip(*[jnp.split(f, bounds) for f in feats])
      return [list(taps) for taps in per_batch], mutated.get('batch_stats', {})

    # Generator and head update against the updated discriminator. fake_all is
    # an argument so that its gradient flows back through the forward's vjp.
    def g_loss_fn(fake_all, g_params, h_params):
      terms, stats, d_stats = {}, forward_stats, d_update_stats
      fake = fake_all[:n]
      if lc.adversarial_weight or sharp:
        logits, d_stats = judge(d_params, d_stats, fake, cond(1))
        names = ('adversarial', 'adversarial_sharp')
        for name, weight, view in zip(names, view_weights, logits):
          terms[name] = (weight, losses.generator_adversarial_loss(lc.gan, view))
      if use_nce:
        # (query, key) images per term; the keys carry no gradient.
        pairs = [(fake, photo)] + ([(fake_all[n:], style)] if use_identity else [])
        frozen = jax.lax.stop_gradient(g_params)
        chunks = [[i] for i in range(len(pairs))] if separate_passes else [range(len(pairs))]
        feat_q, feat_k = [], []
        for c, chunk in enumerate(chunks):
          fq, stats = encode(g_params, stats, [pairs[i][0] for i in chunk], 2 * c + 1)
          fk, stats = encode(frozen, stats, [pairs[i][1] for i in chunk], 2 * c + 2)
          feat_q, feat_k = feat_q + fq, feat_k + fk
        nce = []
        for term, (fq, fk) in enumerate(zip(feat_q, feat_k)):
          if lc.flip_equivariance:
            fq = [maybe_flip(f) for f in fq]  # Back to the photo's frame.
          ids = patch_ids(config, state.step, term, [f.shape for f in fk])
          nce.append(patch_nce_loss(h, h_params, fq, fk, ids, lc.nce_temperature))
        if use_identity:
          # The official (loss_NCE + loss_NCE_Y) * 0.5, each already times lambda_NCE.
          terms['nce'] = (0.5 * lc.nce_weight, nce[0])
          terms['nce_identity'] = (0.5 * lc.nce_weight, nce[1])
        else:
          terms['nce'] = (lc.nce_weight, nce[0])
      if use_vgg:
        # The content target is G's own input (flipped with it); Gram and TV
        # statistics do not change under a flip.
        feats = vgg.apply({'params': vgg_params}, jnp.concatenate([fake, real[:n], style]))
        out = {k: v[:n] for k, v in feats.items()}
        if lc.content_weight:
          terms['content'] = (
            lc.content_weight,
            losses.content_loss(
              out, {k: v[n : 2 * n] for k, v in feats.items()}, lc.content_layers
            ),
          )
        if lc.style_weight:
          terms['style'] = (
            lc.style_weight,
            losses.style_loss(
              out,
              {k: v[2 * n :] for k, v in feats.items()},
              lc.style_layers,
              lc.style_layer_weights,
            ),
          )
      if lc.tv_weight:
        terms['tv'] = (lc.tv_weight, losses.total_variation(fake))
      if lc.tone_weight:
        # G saw the (maybe flipped) photo: its tone target goes the same way.
        target = maybe_flip(batch['tone']) if lc.flip_equivariance else batch['tone']
        terms['tone'] = (lc.tone_weight, common.tone_loss(fake, target, lc.tone_blur))
      total = sum(w * value for w, value in terms.values())
      return total, ({k: v for k, (_, v) in terms.items()}, stats, d_stats)

    (g_loss, (g_terms, g_stats, d_stats)), (fake_grad, g_direct, h_grads) = jax.value_and_grad(
      g_loss_fn, argnums=(0, 1, 2), has_aux=True
    )(fake_all, state.g_params, state.h_params)
    (g_forward_grads,) = g_vjp(fake_grad)
    g_grads = jax.tree.map(jnp.add, g_forward_grads, g_direct)
    g_params, g_opt_state = common.update(tx, g_grads, state.g_opt_state, state.g_params)
    h_params, h_opt_state = common.update(tx, h_grads, state.h_opt_state, state.h_params)

    norms = {
      'g_grad_norm': optax.tree.norm(g_grads),
      'd_grad_norm': optax.tree.norm(d_grads),
      'h_grad_norm': optax.tree.norm(h_grads),
    }
    finite = common.all_finite(d_loss, g_loss, g_terms, norms)
    updated = state.replace(
      step=state.step + 1,
      g_params=g_params,
      g_batch_stats=g_stats,
      g_opt_state=g_opt_state,
      d_params=d_params,
      d_batch_stats=d_stats,
      d_opt_state=d_opt_state,
      h_params=h_params,
      h_opt_state=h_opt_state,
      ema_params=common.ema(config.ema_decay, g_params, state.ema_params),
    )
    metrics = {
      'd_loss': d_loss,
      'd_real_logit': d_real,
      'd_fake_logit': d_fake,
      'g_loss': g_loss,
      **{f'g_{k}': v for k, v in g_terms.items()},
      **norms,
      'learning_rate': lr_schedule(state.step),
      'finite': finite.astype(jnp.float32),
    }
    if lc.flip_equivariance:
      metrics['flipped'] = flip.astype(jnp.float32)
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    return common.apply_if_finite(finite, updated, state), metrics

  return step
