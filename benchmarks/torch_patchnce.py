"""CUT's PatchNCE pieces: the patch sampler netF and the PatchNCE loss.

Restates taesungp/contrastive-unpaired-translation ``models/networks.py``
(``Normalize``, ``PatchSampleF``, netF 'mlp_sample') and ``models/patchnce.py``
(``PatchNCELoss``). Used by torch_cut.py; a benchmark tool only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from torch_resnet import init_weights_typed


class Normalize(nn.Module):
  """CUT networks.Normalize: x / (||x||_p + 1e-7) over dim 1."""

  def __init__(self, power=2):
    super().__init__()
    self.power = power

  def forward(self, x):
    norm = x.pow(self.power).sum(1, keepdim=True).pow(1.0 / self.power)
    return x.div(norm + 1e-7)


class PatchSampleF(nn.Module):
  """CUT networks.PatchSampleF (netF 'mlp_sample' with use_mlp=True).

  The per-layer MLPs (Linear(C_l, nc), ReLU, Linear(nc, nc)) are created on
  the first forward, from the features' channel counts, and initialised then
  (create_mlp -> init_net); hence CUT's data_dependent_initialize. Patch
  positions: numpy permutation per layer (as the official code, which avoids
  torch.randperm on CUDA), the same positions for every image of the batch.
  """

  def __init__(self, use_mlp=False, init_type='normal', init_gain=0.02, nc=256):
    super().__init__()
    self.l2norm = Normalize(2)
    self.use_mlp = use_mlp
    self.nc = nc
    self.mlp_init = False
    self.init_type = init_type
    self.init_gain = init_gain

  def create_mlp(self, feats):
    for mlp_id, feat in enumerate(feats):
      input_nc = feat.shape[1]
      mlp = nn.Sequential(*[nn.Linear(input_nc, self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc)])
      mlp.to(feat.device)  # official: mlp.cuda() when gpu_ids
      setattr(self, 'mlp_%d' % mlp_id, mlp)
    init_weights_typed(self, self.init_type, self.init_gain)  # official: init_net(self, ...)
    self.mlp_init = True

  def forward(self, feats, num_patches=64, patch_ids=None):
    return_ids = []
    return_feats = []
    if self.use_mlp and not self.mlp_init:
      self.create_mlp(feats)
    for feat_id, feat in enumerate(feats):
      B, H, W = feat.shape[0], feat.shape[2], feat.shape[3]
      feat_reshape = feat.permute(0, 2, 3, 1).flatten(1, 2)
      if num_patches > 0:
        if patch_ids is not None:
          # official: torch.tensor(patch_ids[feat_id], ...), i.e. a copy of the tensor
          patch_id = patch_ids[feat_id].clone().detach()
        else:
          patch_id = np.random.permutation(feat_reshape.shape[1])
          patch_id = patch_id[: int(min(num_patches, patch_id.shape[0]))]
          patch_id = torch.tensor(patch_id, dtype=torch.long, device=feat.device)
        x_sample = feat_reshape[:, patch_id, :].flatten(0, 1)  # reshape(-1, x.shape[1])
      else:
        x_sample = feat_reshape
        patch_id = []
      if self.use_mlp:
        mlp = getattr(self, 'mlp_%d' % feat_id)
        x_sample = mlp(x_sample)
      return_ids.append(patch_id)
      x_sample = self.l2norm(x_sample)
      if num_patches == 0:
        x_sample = x_sample.permute(0, 2, 1).reshape([B, x_sample.shape[-1], H, W])
      return_feats.append(x_sample)
    return return_feats, return_ids


class PatchNCELoss(nn.Module):
  """CUT models/patchnce.PatchNCELoss with nce_includes_all_negatives_from_minibatch=False:
  per query patch, cross-entropy over [positive, the other patches of the same image] / nce_T."""

  def __init__(self, batch_size, nce_T=0.07, nce_includes_all_negatives_from_minibatch=False):
    super().__init__()
    self.batch_size = batch_size
    self.nce_T = nce_T
    self.all_negatives = nce_includes_all_negatives_from_minibatch
    self.cross_entropy_loss = torch.nn.CrossEntropyLoss(reduction='none')
    self.mask_dtype = torch.bool

  def forward(self, feat_q, feat_k):
    num_patches = feat_q.shape[0]
    dim = feat_q.shape[1]
    feat_k = feat_k.detach()
    # pos logit
    l_pos = torch.bmm(feat_q.view(num_patches, 1, -1), feat_k.view(num_patches, -1, 1))
    l_pos = l_pos.view(num_patches, 1)
    # neg logit: only the patches of the same image
    batch_dim_for_bmm = 1 if self.all_negatives else self.batch_size
    feat_q = feat_q.view(batch_dim_for_bmm, -1, dim)
    feat_k = feat_k.view(batch_dim_for_bmm, -1, dim)
    npatches = feat_q.size(1)
    l_neg_curbatch = torch.bmm(feat_q, feat_k.transpose(2, 1))
    # diagonal entries are the positives: fill with -10 (exp(-10) ~ 0)
    diagonal = torch.eye(npatches, device=feat_q.device, dtype=self.mask_dtype)[None, :, :]
    l_neg_curbatch.masked_fill_(diagonal, -10.0)
    l_neg = l_neg_curbatch.view(-1, npatches)
    out = torch.cat((l_pos, l_neg), dim=1) / self.nce_T
    return self.cross_entropy_loss(
      out, torch.zeros(out.size(0), dtype=torch.long, device=feat_q.device)
    )
