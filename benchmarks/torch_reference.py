"""The DIFCON network and training step written in PyTorch, for benchmarks/train_throughput.py.

Same architecture as difcon_jax/models/resnet1d.py, same augmentation maths as difcon_jax/augment (split
pseudo-Voigt integrated per bin over ±32 FWHM_max windows, background, cropping), same losses (CE per head,
Barlow Twins) and AdamW, in eager PyTorch.
"""

import math

import torch
from torch import nn
import torch.nn.functional as F

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.augment import kernel as jax_kernel
from difcon_jax.models import heads

_LN2 = math.log(2.0)


class Block(nn.Module):

  def __init__(self, cin, cout, stride, k):
    super().__init__()
    self.c1 = nn.Conv1d(cin, cout, k, stride, padding=k // 2, bias=False)
    self.b1 = nn.BatchNorm1d(cout)
    self.c2 = nn.Conv1d(cout, cout, k, 1, padding=k // 2, bias=False)
    self.b2 = nn.BatchNorm1d(cout)
    self.proj = None
    if stride != 1 or cin != cout:
      self.proj = nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout))

  def forward(self, x):
    y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
    return F.relu(y + (x if self.proj is None else self.proj(x)))


class Net(nn.Module):

  def __init__(self, m, num_eg):
    super().__init__()
    self.stem = nn.Sequential(nn.Conv1d(1, m.width, 15, m.stem_stride, padding=7, bias=False),
                              nn.BatchNorm1d(m.width), nn.ReLU(), nn.MaxPool1d(3, 2, padding=1))
    blocks, cin = [], m.width
    for i, n in enumerate(m.stage_sizes):
      for j in range(n):
        cout = m.width * 2**i
        blocks.append(Block(cin, cout, 2 if (j == 0 and i > 0) else 1, m.kernel_size))
        cin = cout
    self.blocks = nn.Sequential(*blocks)
    self.embedding = nn.Linear(cin, m.embedding_dim)
    layers, d = [], m.embedding_dim
    for k, dim in enumerate(m.projector_dims):
      layers.append(nn.Linear(d, dim, bias=False))
      if k < len(m.projector_dims) - 1:
        layers += [nn.BatchNorm1d(dim), nn.ReLU()]
      d = dim
    self.projector = nn.Sequential(*layers)
    self.cs = nn.Linear(m.embedding_dim, 7)
    self.eg = nn.Linear(m.embedding_dim, num_eg)
    self.sg = nn.ModuleList(nn.Linear(m.embedding_dim, n) for n in heads.HEAD_SIZES)

  def forward(self, x):
    h = self.blocks(self.stem(x[:, None])).mean(-1)
    e = self.embedding(h)
    z = F.relu(e)
    return self.cs(z), self.eg(z), [head(z) for head in self.sg], self.projector(e)


def augment(tt, y, grid, dist, generator):
  """Two-theta / intensity [b, p] -> patterns [b, bins] (train distribution, as the JAX kernel)."""
  b, p = tt.shape
  n = grid.num_bins
  w = grid_lib.bin_width(grid)
  k, _ = jax_kernel.window_bins(grid)
  u = lambda lo_hi, *shape: lo_hi[0] + (lo_hi[1] - lo_hi[0]) * torch.rand(*shape, generator=generator)
  sign = lambda *shape: torch.where(torch.rand(*shape, generator=generator) < 0.5, -1.0, 1.0)
  tt = tt + (u(dist.zero_shift, b, 1) * sign(b, 1)) + u(dist.jitter, b, 1) * (2 * torch.rand(b, p, generator=generator) - 1)
  y = torch.where((tt >= u(dist.peak_crop_low, b, 1)) & (tt <= u(dist.peak_crop_high, b, 1)), y, 0.0)
  y = y * (1 + u(dist.intensity_noise, b, 1) * (2 * torch.rand(b, p, generator=generator) - 1))
  m = 10
  count = torch.randint(dist.impurities[0], dist.impurities[1] + 1, (b, 1), generator=generator)
  imp_y = u(dist.impurity_intensity, b, m) * (torch.arange(m)[None] < count) * y.amax(1, keepdim=True)
  tt = torch.cat([tt, 1 + 118 * torch.rand(b, m, generator=generator)], 1)
  y = torch.cat([y, imp_y], 1)
  index = torch.floor(tt / w).long()
  theta = torch.deg2rad((index + 0.5) * w) / 2
  t = torch.tan(theta)
  h2 = (u(dist.U, b, 1) * t * t + u(dist.V, b, 1) * t + u(dist.W, b, 1) + u(dist.p, b, 1) / torch.cos(theta) ** 2)
  fwhm = torch.sqrt(h2.clamp(min=0)).clamp(0.005, 0.05)
  eta, rho = u(dist.eta, b, 1)[..., None], (u(dist.asymmetry, b, 1) * sign(b, 1))[..., None]
  hl = (fwhm[..., None] * (1 + rho / 2)).clamp(0.005, 0.05)
  hr = (fwhm[..., None] * (1 - rho / 2)).clamp(0.005, 0.05)
  edges = ((torch.arange(-k, k + 2) - 0.5) * w)[None, None]
  h = torch.where(edges < 0, hl, hr)
  cdf = (eta * 0.5 * h * torch.atan(2 * edges / h)
         + (1 - eta) * 0.5 * h * math.sqrt(math.pi / (4 * _LN2)) * torch.erf(2 * math.sqrt(_LN2) * edges / h))
  area = 0.5 * (hl + hr) * ((1 - eta) * math.sqrt(math.pi / (4 * _LN2)) + eta * math.pi / 2)
  mass = (cdf[..., 1:] - cdf[..., :-1]) / area * y[..., None]  # [b, p, 2k+1]
  bins = index[..., None] + torch.arange(-k, k + 1)  # [b, p, 2k+1]
  flat = (bins.clamp(-k - 1, n + k) + k + 1) + torch.arange(b)[:, None, None] * (n + 2 * k + 3)
  pattern = torch.zeros(b * (n + 2 * k + 3)).index_add_(0, flat.reshape(-1), mass.reshape(-1))
  pattern = pattern.view(b, -1)[:, k + 1:k + 1 + n]
  pattern = pattern / pattern.amax(1, keepdim=True).clamp(min=1e-12)
  white = 2 * torch.rand(b, n, generator=generator) - 1
  pattern = pattern + u(dist.background, b, 1) * white + u(dist.counting_noise, b, 1) * torch.sqrt(
      pattern.clamp(min=0)) * torch.randn(b, n, generator=generator)
  centres = (torch.arange(n) + 0.5) * w
  pattern = torch.where((centres >= u(dist.crop_low, b, 1)) & (centres <= u(dist.crop_high, b, 1)), pattern, 0.0)
  return pattern / pattern.abs().amax(1, keepdim=True).clamp(min=1e-12)


def barlow_twins(z1, z2, lambd):
  n = z1.shape[0]
  a = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + 1e-5)
  b = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + 1e-5)
  c = a.T @ b / n
  on = ((1 - torch.diagonal(c)) ** 2).sum()
  return on + lambd * ((c**2).sum() - (torch.diagonal(c) ** 2).sum())


def make_step(config, model, grid, dist):
  opt = torch.optim.AdamW(model.parameters(), lr=config.optimizer.learning_rate,
                          weight_decay=config.optimizer.weight_decay)
  gen = torch.Generator().manual_seed(0)
  sg_system = torch.as_tensor(heads.SG_SYSTEM, dtype=torch.long)
  sg_index = torch.as_tensor(heads.SG_INDEX_IN_SYSTEM, dtype=torch.long)

  def step(batch):
    views = [augment(batch['two_theta'], batch['intensity'], grid, dist, gen) for _ in range(2)]
    loss = 0.0
    projections = []
    for x in views:
      cs, eg, sg, z = model(x)
      projections.append(z)
      loss = loss + F.cross_entropy(cs, batch['crystal_system']) + F.cross_entropy(eg, batch['extinction_group'])
      for c in range(7):
        sel = sg_system[batch['space_group']] == c
        if sel.any():
          loss = loss + F.cross_entropy(sg[c][sel], sg_index[batch['space_group'][sel]], reduction='sum') / len(sel)
    loss = loss / 2 + config.loss.ssl_weight * barlow_twins(*projections, config.loss.barlow_lambda)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.optimizer.clip_norm)
    opt.step()
    return loss

  return step
