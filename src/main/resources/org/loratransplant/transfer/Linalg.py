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
    # Randomised block Krylov SVD (Musco and Musco 2015, alg. 2; Halko, Martinsson, Tropp 2011
    # for the range finder): a (m, n), omega (max(m, n), l) Gaussian. The Krylov blocks live on
    # the smaller side d = min(m, n); the large products run in a's dtype (bf16 weights stay
    # bf16), everything else in float64. Each new block is orthogonalised against the space so
    # far (twice: "twice is enough") and orthonormalised before it seeds the next product, so
    # the basis stays orthonormal as the blocks converge onto each other. The Rayleigh-Ritz step
    # over the whole Krylov space, not only the last block, is what converges on slowly decaying
    # spectra: the top-k error falls with the square root of the gap, not the gap.
    # Returns l triplets, the largest first; the caller keeps the first k < l.
    wide = a.size(0) <= a.size(1)
    t = a if wide else a.t()
    l = omega.size(1)
    q = self.orth(torch.mm(t, omega.to(a.dtype)).double(), 0.0)
    basis = q
    bts = []  # t^T q of every block: the next iteration's seed and, together, bt below
    for i in range(iters):
      if q.size(1) == 0:
        break
      p = torch.mm(t.t(), q.to(a.dtype)).double()
      bts.append(p)
      z = self.orth(p, 0.0)
      y = torch.mm(t, z.to(a.dtype)).double()
      ref = float(torch.max(torch.sum(y * y, 0)))
      for j in range(2):
        y = y - torch.mm(basis, torch.mm(basis.t(), y))
      # Directions that were (numerically) in the space already carry no new information; none
      # left means the space is invariant (t has no more rank): it holds the exact answer.
      q = self.orth(y, 1e-12 * ref)
      basis = torch.cat([basis, q], 1)
    # Rayleigh-Ritz: t ~ basis bt^T with bt = t^T basis (N, L), of which the loop computed all
    # but the last block (2 + 2 iters products of one block in all); the eigenpairs of bt^T bt
    # (L, L) = w diag(s^2) w^T give t ~ (basis w) diag(s) (bt w / s)^T.
    bts.append(torch.mm(t.t(), q.to(a.dtype)).double())
    bt = torch.cat(bts, 1)
    e, w = torch.linalg_eigh(torch.mm(bt.t(), bt), "L")
    n = e.size(0)
    c = min(l, n)
    e = torch.flip(torch.narrow(e, 0, n - c, c), [0])
    w = torch.flip(torch.narrow(w, 1, n - c, c), [1])
    s = torch.sqrt(torch.clamp(e, 0.0))
    u = torch.mm(basis, w)
    v = torch.mm(bt, w) / torch.clamp(s, 1e-300).view([1, -1])
    if wide:
      return self.canon(u, s, v.t())
    return self.canon(v, s, u.t())
  def orth(self: __torch__.Linalg, x: Tensor, floor: float) -> Tensor:
    # An orthonormal basis of x's columns (float64) from the eigendecomposition of its Gram
    # matrix, twice (as CholeskyQR2 does): BLAS-3 products, where Householder QR of a tall
    # block measured 10x slower here. Directions whose Gram eigenvalue is at most floor, or
    # 1e-12 of the largest (below float64's resolution of the squared values), are dropped, not
    # amplified; all of them when x is numerically zero (then x has no columns left).
    for i in range(2):
      if x.size(1) == 0:
        return x
      e, v = torch.linalg_eigh(torch.mm(x.t(), x), "L")
      n = e.size(0)
      tol = max(floor, 1e-12 * float(torch.select(e, 0, n - 1)))
      keep = int(torch.sum(torch.gt(e, tol)))
      e = torch.narrow(e, 0, n - keep, keep)
      v = torch.narrow(v, 1, n - keep, keep)
      x = torch.mm(x, v / torch.sqrt(torch.clamp(e, 1e-300)).view([1, -1]))
      floor = 0.0
    return x
  def rsvd16(self: __torch__.Linalg, a: Tensor, omega: Tensor, iters: int) -> Tuple[Tensor, Tensor, Tensor]:
    # rsvd with the large products in bf16, for a float32 a whose values are bf16 (read from a
    # bf16 checkpoint: the cast is exact). DJL 0.35 cannot hold bf16 arrays (creating or casting
    # to one aborts the JVM), so the cast happens here.
    return self.rsvd(torch.to(a, 15, False, False, None), omega, iters)  # 15: bfloat16
  def canon(self: __torch__.Linalg, u: Tensor, s: Tensor, vh: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    # A singular pair is defined up to a common sign: make each u column's largest entry (in
    # absolute value) positive, so the same matrix always gives the same factors.
    idx = torch.argmax(torch.abs(u), 0)
    sg = torch.sign(torch.gather(u, 0, idx.view([1, -1]))).view([-1])
    sg = torch.where(sg == 0.0, torch.ones_like(sg), sg)
    return (u * sg.view([1, -1]), s, vh * sg.view([-1, 1]))
