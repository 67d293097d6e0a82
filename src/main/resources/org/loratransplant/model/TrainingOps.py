class RmsNorm(Module):
  # TorchScript, compiled by libtorch when TrainingOps loads it (no Python is involved): ops of
  # the differentiable forward (LlamaModel) that DJL 0.35 can only build from several of its own,
  # each one a JNI call, a Java object and, under autograd, a saved tensor and a backward node.
  # Every class here has only `forward`, the one method DJL runs with autograd recording.
  __parameters__ = []
  __buffers__ = []
  training : bool
  def forward(self: __torch__.RmsNorm, x: Tensor, weight: Tensor, eps: Tensor, mean_column: Tensor) -> Tensor:
    # weight * x / sqrt(mean(x^2) + eps) as HF computes it (rsqrt, then multiplications: their
    # backward is cheaper than a division's); the mean as a product with an (E, 1) column of 1/E
    # (a float literal would be wrapped into a tensor on every call).
    return x * torch.rsqrt(torch.matmul(x * x, mean_column) + eps) * weight
class SwiGlu(Module):
  # silu(x @ gate.t()) * (x @ up.t()) with gate and up the two halves of the stacked (2 I, E)
  # weight: two products rather than one stacked product split in two, whose backward
  # concatenates the two (rows, I) gradients (6% of a training step at 576 x 1536); the frozen
  # weight's halves are views, so nothing is copied or differentiated for them.
  __parameters__ = []
  __buffers__ = []
  training : bool
  inter : int
  def forward(self: __torch__.SwiGlu, x: Tensor, gate_up: Tensor) -> Tensor:
    g = gate_up.narrow(0, 0, self.inter)
    u = gate_up.narrow(0, self.inter, self.inter)
    if gate_up.dtype == x.dtype:
      gate = torch.matmul(x, g.t())
      up = torch.matmul(x, u.t())
    else:
      # A 16-bit weight (a model loaded in bf16 or float16): x rounded to its type, float32
      # accumulation and result, as MixedLinear.
      xs = x.to(gate_up.dtype)
      gate = torch.linear(xs, g).to(x.dtype)
      up = torch.linear(xs, u).to(x.dtype)
    return torch.silu(gate) * up
class SiluMul(Module):
  # silu(gate) * up for gate and up computed elsewhere (with adapter deltas or biases): one silu
  # op and its fused backward instead of x * sigmoid(x), two products and a sigmoid backward.
  __parameters__ = []
  __buffers__ = []
  training : bool
  def forward(self: __torch__.SiluMul, gate: Tensor, up: Tensor) -> Tensor:
    return torch.silu(gate) * up
class Rope(Module):
  # x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1), as x * cos + roll(x, D/2) *
  # sin_signed (the sin table with its first half negated): one roll, whose backward is another
  # roll, where HF's two slices and a cat fill a zero tensor per slice in backward, and where a
  # product with a (D, D) rotation matrix cost two skinny GEMMs per table.
  __parameters__ = []
  __buffers__ = []
  training : bool
  def forward(self: __torch__.Rope, x: Tensor, cos: Tensor, sin_signed: Tensor) -> Tensor:
    return x * cos + torch.roll(x, [x.size(-1) // 2], [-1]) * sin_signed
class MixedLinear(Module):
  # x @ w.t() for a 16-bit weight w (out, in) of a model loaded in bf16 or float16 and a float32
  # x: x rounded to w's type, the product accumulated in float32 (oneDNN's AMX / AVX512-BF16
  # kernels for bf16), the result float32, so the residual stream, norms and adapters stay float32. The gradient reaches x in
  # float32; the frozen weight gets none.
  __parameters__ = []
  __buffers__ = []
  training : bool
  def forward(self: __torch__.MixedLinear, x: Tensor, w: Tensor) -> Tensor:
    return torch.linear(x.to(w.dtype), w).to(x.dtype)
class Bf16Bits(Module):
  # The bfloat16 tensor whose bits a 16-bit tensor holds (DJL 0.35 aborts when asked to make a
  # bf16 tensor, so a checkpoint's bf16 bytes are read or mapped as a float16 tensor): the same
  # storage, shape and strides, nothing copied (Tensor.view(dtype) is not in TorchScript).
  __parameters__ = []
  __buffers__ = []
  training : bool
  def forward(self: __torch__.Bf16Bits, x: Tensor) -> Tensor:
    return torch.empty([0], dtype=15, device=x.device).set_(x)
class Bf16Round(Module):
  # A float tensor rounded to bfloat16 (nearest even), as the decoder's bf16_products does.
  __parameters__ = []
  __buffers__ = []
  training : bool
  def forward(self: __torch__.Bf16Round, x: Tensor) -> Tensor:
    return x.to(15).contiguous()
class SumFloat32(Module):
  # The sum of a 16-bit tensor accumulated and returned in float32, with no float32 copy of it
  # (a float16 sum would overflow at 65504; converting first cost a copy per block).
  __parameters__ = []
  __buffers__ = []
  training : bool
  def forward(self: __torch__.SumFloat32, x: Tensor) -> Tensor:
    return torch.sum(x, dtype=6)
