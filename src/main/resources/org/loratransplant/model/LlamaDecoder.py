class LlamaDecoder(Module):
  # TorchScript, compiled by libtorch when LlamaScript loads it (no Python is involved): the
  # inference forward of a Llama-family decoder over the folded weights of a FusedDecoder.
  #
  # w, the weight list: 0 embedding (V, E); 1 LM head (V, E), final norm folded in; 2, 3 RoPE
  # cos and sin (P, Nq + Nk), q's half scaled by 1/sqrt(D); 4 eps (1,); 5 a (E, 1) column of 1/E;
  # then 8 per layer from 6 + 8 i, each weight (out, in) as in a checkpoint: qkv (2 (Nq + Nk) + Nk, E)
  # as [q k | rotate-half(q k) | v] with the input norm folded in, its bias, o (E, Nq), its bias,
  # gate|up (2 I, E) with the post norm folded in, its bias, down (E, I), its bias. An absent bias
  # is an empty tensor, never read.
  #
  # Shapes: B batch, T new positions, S keys, K kv heads, G = heads / K, D head dim. Activations
  # are (B*T, width). Masks are additive, (1 or B, 1, T, 1, S). The cache holds per layer the
  # keys transposed (B, K, D, C) and the values (B, K, C, D); a step writes slots slot..slot+T-1.
  __parameters__ = []
  __buffers__ = []
  training : bool
  layers : int
  heads : int
  kv_heads : int
  head_dim : int
  inter : int
  block : int
  dnn_rows : int
  qkv_bias : bool
  o_bias : bool
  mlp_bias : bool
  def score(self: __torch__.LlamaDecoder, w: List[Tensor], ids: Tensor, rows: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    # Teacher-forced log-probs (N,) of targets[n] after the position rows[n] of the flattened
    # (B*T) batch; positions are 0..T-1 in every row. Only those rows go through the LM head.
    b = ids.size(0)
    t = ids.size(1)
    cache = annotate(List[Tensor], [])
    # The tables' first T rows, broadcast over the batch.
    x = self.residual(w, ids, w[2].narrow(0, 0, t).unsqueeze(0), w[3].narrow(0, 0, t).unsqueeze(0), mask, cache, 0)
    logits = self.proj(self.norm(w, x.index_select(0, rows)), w[1])
    return torch.gather(torch.log_softmax(logits, -1), 1, targets.view([-1, 1])).view([-1])
  def prefill(self: __torch__.LlamaDecoder, w: List[Tensor], ids: Tensor, positions: Tensor, mask: Tensor, capacity: int, temperature: float) -> Tuple[Tensor, List[Tensor]]:
    # Prompts into a fresh cache of `capacity` slots: the last position's output, and the cache.
    b = ids.size(0)
    cache = annotate(List[Tensor], [])
    for i in range(self.layers):
      cache.append(torch.zeros([b, self.kv_heads, self.head_dim, capacity], dtype=w[0].dtype, device=w[0].device))
      cache.append(torch.zeros([b, self.kv_heads, capacity, self.head_dim], dtype=w[0].dtype, device=w[0].device))
    x = self.residual(w, ids, self.table(w[2], positions), self.table(w[3], positions), mask, cache, 0)
    return (self.last(w, x, b, temperature), cache)
  def step(self: __torch__.LlamaDecoder, w: List[Tensor], cache: List[Tensor], ids: Tensor, positions: Tensor, mask: Tensor, slot: int, temperature: float) -> Tensor:
    # New positions at `slot`, extending the cache in place: the last position's output.
    b = ids.size(0)
    x = self.residual(w, ids, self.table(w[2], positions), self.table(w[3], positions), mask, cache, slot)
    return self.last(w, x, b, temperature)
  def last(self: __torch__.LlamaDecoder, w: List[Tensor], x: Tensor, b: int, temperature: float) -> Tensor:
    # (B, V) logits of each row's last position, or their softmax at `temperature` when it is > 0.
    e = x.size(1)
    logits = self.proj(self.norm(w, x.view([b, -1, e]).select(1, -1)), w[1])
    if temperature > 0.0:
      return torch.softmax(logits / temperature, -1)
    return logits
  def proj(self: __torch__.LlamaDecoder, x: Tensor, w: Tensor) -> Tensor:
    # x @ w.t() for an (out, in) weight. From `dnn_rows` rows on, oneDNN's linear: it runs
    # AVX-512 kernels where MKL keeps to AVX2 (AMD CPUs) and measured ~2x faster on 4096 rows,
    # while its fixed cost (~9 us a call) loses on a few rows.
    # onednn-begin
    if x.size(0) >= self.dnn_rows:
      return ops.mkldnn._linear_pointwise(x, w, None, "none", annotate(List[Optional[number]], []), "")
    # onednn-end
    return torch.mm(x, w.t())
  def proj_add(self: __torch__.LlamaDecoder, x: Tensor, w: Tensor, residual: Tensor) -> Tensor:
    # residual + x @ w.t(), the add fused into the product.
    # onednn-begin
    if x.size(0) >= self.dnn_rows:
      return ops.mkldnn._linear_pointwise(x, residual, w, None, "add")
    # onednn-end
    return torch.addmm(residual, x, w.t())
  def norm(self: __torch__.LlamaDecoder, w: List[Tensor], x: Tensor) -> Tensor:
    # x / sqrt(mean(x^2) + eps), the mean and eps as one addmm: a float literal here would be
    # wrapped into a tensor on every call, which measured slower than the op itself.
    return x * torch.rsqrt(torch.addmm(w[4], x * x, w[5]))
  def table(self: __torch__.LlamaDecoder, table: Tensor, positions: Tensor) -> Tensor:
    # Rows of a (P, width) RoPE table at (B, T) positions: (B, T, width).
    return torch.embedding(table, positions)
  def residual(self: __torch__.LlamaDecoder, w: List[Tensor], ids: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, cache: List[Tensor], slot: int) -> Tensor:
    # The residual stream (B*T, E) after the last layer; cos and sin (B or 1, T, Nq + Nk).
    b = ids.size(0)
    t = ids.size(1)
    hd = self.heads * self.head_dim
    kd = self.kv_heads * self.head_dim
    x = torch.embedding(w[0], ids.view([-1]))
    for i in range(self.layers):
      base = 6 + 8 * i
      h = self.norm(w, x)
      qkv = self.proj(h, w[base])
      if self.qkv_bias:
        qkv = qkv + w[base + 1]
      parts = qkv.split([hd + kd, hd + kd, kd], 1)
      qk = torch.addcmul(parts[0].view([b, t, -1]) * cos, parts[1].view([b, t, -1]), sin).view([b * t, -1]).split([hd, kd], 1)
      k = qk[1].view([b, t, self.kv_heads, self.head_dim]).permute([0, 2, 3, 1])
      v = parts[2].view([b, t, self.kv_heads, self.head_dim]).transpose(1, 2)
      if len(cache) > 0:
        kc = cache[2 * i]
        vc = cache[2 * i + 1]
        kc.narrow(3, slot, t).copy_(k)
        vc.narrow(2, slot, t).copy_(v)
        k = kc.narrow(3, 0, slot + t)
        v = vc.narrow(2, 0, slot + t)
      x = self.proj_add(self.attend(qk[0], k, v, mask, b, t, slot), w[base + 2], x)
      if self.o_bias:
        x = x + w[base + 3]
      h = self.norm(w, x)
      gu = self.proj(h, w[base + 4])
      if self.mlp_bias:
        gu = gu + w[base + 5]
      gu = gu.split([self.inter, self.inter], 1)
      x = self.proj_add(torch.silu(gu[0]) * gu[1], w[base + 6], x)
      if self.mlp_bias:
        x = x + w[base + 7]
    return x
  def attend(self: __torch__.LlamaDecoder, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, b: int, t: int, slot: int) -> Tensor:
    # Grouped-query attention without repeating keys: each kv head's G query heads are rows of
    # one product. q (B*T, heads*D), k (B, K, D, S), v (B, K, S, D); returns (B*T, heads*D).
    kv = self.kv_heads
    g = self.heads // kv
    d = self.head_dim
    if t == 1:
      s = torch.matmul(q.view([b, kv, g, d]), k)
      p = torch.softmax(s.add_(mask.view([b, 1, 1, -1])), -1)
      return torch.matmul(p, v).view([b, kv * g * d])
    # Several positions: blocks of `block` queries, each against the keys up to its last
    # position only, so the part above the causal diagonal is mostly never computed.
    q5 = q.view([b, t, kv, g, d]).transpose(1, 2)
    outs = annotate(List[Tensor], [])
    for t0 in range(0, t, self.block):
      tb = min(self.block, t - t0)
      end = slot + t0 + tb
      qb = q5.narrow(2, t0, tb).reshape([b, kv, tb * g, d])
      s = torch.matmul(qb, k.narrow(3, 0, end)).view([b, kv, tb, g, end])
      p = torch.softmax(s.add_(mask.narrow(2, t0, tb).narrow(4, 0, end)), -1)
      outs.append(torch.matmul(p.view([b, kv, tb * g, end]), v.narrow(2, 0, end)).view([b, kv, tb, g, d]))
    return torch.cat(outs, 2).transpose(1, 2).reshape([b * t, kv * g * d])
