class Linalg(Module):
  # TorchScript, compiled by libtorch when transfer.Linalg loads it (no Python is involved): the
  # decompositions DJL 0.35 does not expose (it has inverse, not svd or qr). Every factorisation
  # runs in float64; products with a large float32 matrix stay in its dtype.
  __parameters__ = []
  __buffers__ = []
  training : bool
  def svd(self: __torch__.Linalg, a: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    # Thin SVD a = u diag(s) vh in float64, signs made canonical.
    u, s, vh = torch.linalg_svd(a.double(), False)
    return self.canon(u, s, vh)
  def rsvd(self: __torch__.Linalg, a: Tensor, omega: Tensor, iters: int) -> Tuple[Tensor, Tensor, Tensor]:
    # Randomised range finder with subspace iteration (Halko, Martinsson, Tropp 2011, algs. 4.4
    # and 5.1): a (m, n), omega (n, l) Gaussian. Products run in a's dtype, QR and SVD in float64.
    # Returns l triplets, the largest first; the caller keeps the first k < l.
    q, r = torch.linalg_qr(torch.mm(a, omega).double())
    for i in range(iters):
      z, r = torch.linalg_qr(torch.mm(a.t(), q.to(a.dtype)).double())
      q, r = torch.linalg_qr(torch.mm(a, z.to(a.dtype)).double())
    b = torch.mm(q.t().to(a.dtype), a).double()
    ub, s, vh = torch.linalg_svd(b, False)
    return self.canon(torch.mm(q, ub), s, vh)
  def canon(self: __torch__.Linalg, u: Tensor, s: Tensor, vh: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    # A singular pair is defined up to a common sign: make each u column's largest entry (in
    # absolute value) positive, so the same matrix always gives the same factors.
    idx = torch.argmax(torch.abs(u), 0)
    sg = torch.sign(torch.gather(u, 0, idx.view([1, -1]))).view([-1])
    sg = torch.where(sg == 0.0, torch.ones_like(sg), sg)
    return (u * sg.view([1, -1]), s, vh * sg.view([-1, 1]))
