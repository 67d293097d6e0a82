class LlamaDecoder(Module):
  # TorchScript, compiled by libtorch when LlamaScript loads it (no Python is involved): the
  # inference forward of a Llama-family decoder over the folded weights of a FusedDecoder.
  #
  # w, the weight list: 0 embedding (V, E), float32 or bf16 (its rows are cast to float32, a
  # no-op for float32); 1 LM head (V, E); 2, 3 RoPE cos and sin (P, D);
  # 4 eps (1,); 5 a (E, 1) column of 1/E; 6 the final norm weight (E,); 7 the attention scale
  # 1/sqrt(D) (1,); then 18 per layer from 8 + 18 i: the input and the post-attention norm
  # weights, then for each of the four products qkv (Nq + 2 Nk, E) [q | k | v], o (E, Nq),
  # gate|up (2 I, E) and down (E, I): its weight (out, in) as in a checkpoint, its bias, and an
  # adapter's low-rank factors aT (in, R) and bT (R, out) whose x @ aT @ bT is added to the
  # product. An absent bias or adapter is an empty tensor, never read.
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
  head_rows : int
  qkv_bias : bool
  o_bias : bool
  mlp_bias : bool
  def half_products(self: __torch__.LlamaDecoder, w: List[Tensor], reuse: List[Tensor], fresh: List[bool], dtype: int) -> List[Tensor]:
    # The weight list with the LM head and every layer's four product weights in `dtype` (15
    # bf16, 5 float16; the embedding, norms, biases, tables and adapter factors stay float32).
    # A product j with fresh[j] false takes reuse[j], the copy another decoder made of the same
    # tensor, so the base's and the expert's decoders share one copy. Cast here because DJL
    # 0.35 cannot make bf16 arrays itself; a weight already in `dtype` is not copied.
    out = annotate(List[Tensor], [])
    for j in range(len(w)):
      k = (j - 8) % 18
      if j == 1 or (j >= 8 and (k == 2 or k == 6 or k == 10 or k == 14)):
        if fresh[j]:
          out.append(w[j].to(dtype).contiguous())
        else:
          out.append(reuse[j])
      else:
        out.append(w[j])
    return out
  def score(self: __torch__.LlamaDecoder, w: List[Tensor], ids: Tensor, rows: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    # Teacher-forced log-probs (N,) of targets[n] after the position rows[n] of the flattened
    # (B*T) batch; positions are 0..T-1 in every row. Only those rows go through the LM head.
    b = ids.size(0)
    t = ids.size(1)
    cache = annotate(List[Tensor], [])
    # The tables' first T rows, broadcast over the batch.
    d = self.head_dim
    x = self.residual(w, ids, w[2].narrow(0, 0, t).view([1, t, 1, d]), w[3].narrow(0, 0, t).view([1, t, 1, d]), mask, cache, 0)
    # The LM head and its softmax over `head_rows` rows at a time: their (rows, V) outputs are
    # the largest activations of a forward (1016 x 128256 floats are 0.5 GB, twice over).
    h = self.norm(w, x.index_select(0, rows), w[6])
    n = h.size(0)
    outs = annotate(List[Tensor], [])
    for r0 in range(0, n, self.head_rows):
      r = min(self.head_rows, n - r0)
      logits = self.proj(h.narrow(0, r0, r), w[1])
      outs.append(torch.gather(torch.log_softmax(logits, -1), 1, targets.narrow(0, r0, r).view([-1, 1])).view([-1]))
    if len(outs) == 1:
      return outs[0]
    return torch.cat(outs, 0)
  def prefill(self: __torch__.LlamaDecoder, w: List[Tensor], ids: Tensor, positions: Tensor, mask: Tensor, capacity: int, temperature: float) -> Tuple[Tensor, List[Tensor]]:
    # Prompts into a fresh cache of `capacity` slots: the last position's output, and the cache.
    b = ids.size(0)
    cache = annotate(List[Tensor], [])
    for i in range(self.layers):
      cache.append(torch.zeros([b, self.kv_heads, self.head_dim, capacity], dtype=w[2].dtype, device=w[2].device))
      cache.append(torch.zeros([b, self.kv_heads, capacity, self.head_dim], dtype=w[2].dtype, device=w[2].device))
    x = self.residual(w, ids, self.table(w[2], positions), self.table(w[3], positions), mask, cache, 0)
    return (self.last(w, x, b, temperature), cache)
  def step(self: __torch__.LlamaDecoder, w: List[Tensor], cache: List[Tensor], ids: Tensor, positions: Tensor, mask: Tensor, slot: int, temperature: float) -> Tensor:
    # New positions at `slot`, extending the cache in place: the last position's output.
    b = ids.size(0)
    x = self.residual(w, ids, self.table(w[2], positions), self.table(w[3], positions), mask, cache, slot)
    return self.last(w, x, b, temperature)
  # Continuous batching: a cache of a fixed number of rows, each holding one request at its own
  # slots; a finished request's row is refilled by prefill_rows while the others decode on, and
  # step_rows advances every row by one token at that row's own slot and position.
  def new_cache(self: __torch__.LlamaDecoder, w: List[Tensor], rows: int, capacity: int) -> List[Tensor]:
    # An empty cache of `rows` rows of `capacity` slots, in prefill's layout.
    cache = annotate(List[Tensor], [])
    for i in range(self.layers):
      cache.append(torch.zeros([rows, self.kv_heads, self.head_dim, capacity], dtype=w[2].dtype, device=w[2].device))
      cache.append(torch.zeros([rows, self.kv_heads, capacity, self.head_dim], dtype=w[2].dtype, device=w[2].device))
    return cache
  def prefill_rows(self: __torch__.LlamaDecoder, w: List[Tensor], cache: List[Tensor], rows: Tensor, ids: Tensor, positions: Tensor, mask: Tensor, temperature: float) -> Tensor:
    # Left-padded prompts (n, T) into cache rows `rows` (n,) int64 at slots 0..T-1, the other
    # rows untouched: prefill's computation on a scratch cache of T slots, copied into the rows.
    # Slots from T on keep what the row's previous request left; the row's mask hides them.
    b = ids.size(0)
    t = ids.size(1)
    scratch = annotate(List[Tensor], [])
    for i in range(self.layers):
      scratch.append(torch.zeros([b, self.kv_heads, self.head_dim, t], dtype=w[2].dtype, device=w[2].device))
      scratch.append(torch.zeros([b, self.kv_heads, t, self.head_dim], dtype=w[2].dtype, device=w[2].device))
    x = self.residual(w, ids, self.table(w[2], positions), self.table(w[3], positions), mask, scratch, 0)
    for i in range(self.layers):
      cache[2 * i].narrow(3, 0, t).index_copy_(0, rows, scratch[2 * i])
      cache[2 * i + 1].narrow(2, 0, t).index_copy_(0, rows, scratch[2 * i + 1])
    return self.last(w, x, b, temperature)
  def step_rows(self: __torch__.LlamaDecoder, w: List[Tensor], cache: List[Tensor], ids: Tensor, positions: Tensor, slots: Tensor, mask: Tensor, temperature: float) -> Tensor:
    # One token per row, ids and positions (B, 1), written at the row's own slot (slots (B,)
    # int64); mask (B, 1, 1, 1, S) over the first S slots says which keys each row sees.
    b = ids.size(0)
    x = self.residual_rows(w, ids, self.table(w[2], positions), self.table(w[3], positions), mask, cache, slots)
    return self.last(w, x, b, temperature)
  def keep_rows(self: __torch__.LlamaDecoder, cache: List[Tensor], rows: Tensor) -> List[Tensor]:
    # A smaller cache of the rows `rows` (n,) int64 only: once no request waits, the rows still
    # decoding stop paying for the finished ones.
    out = annotate(List[Tensor], [])
    for c in cache:
      out.append(c.index_select(0, rows))
    return out
  def residual_rows(self: __torch__.LlamaDecoder, w: List[Tensor], ids: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, cache: List[Tensor], slots: Tensor) -> Tensor:
    # residual for one position per row at per-row slots: the same layer (attention_inputs,
    # layer_rest), only the cache write (a scatter at each row's slot instead of one shared
    # narrow) and the key range differ.
    b = ids.size(0)
    t = 1
    s = mask.size(4)
    kslots = slots.view([b, 1, 1, 1]).expand([b, self.kv_heads, self.head_dim, 1])
    vslots = slots.view([b, 1, 1, 1]).expand([b, self.kv_heads, 1, self.head_dim])
    x = torch.embedding(w[0], ids.view([-1])).to(w[2].dtype)
    for i in range(self.layers):
      base = 8 + 18 * i
      qkv = self.attention_inputs(w, base, x, cos, sin, b, t)
      kc = cache[2 * i]
      vc = cache[2 * i + 1]
      kc.scatter_(3, kslots, qkv[1])
      vc.scatter_(2, vslots, qkv[2])
      a = self.attend(qkv[0], kc.narrow(3, 0, s), vc.narrow(2, 0, s), mask, b, t, 0)
      x = self.layer_rest(w, base, x, a)
    return x
  def last(self: __torch__.LlamaDecoder, w: List[Tensor], x: Tensor, b: int, temperature: float) -> Tensor:
    # (B, V) logits of each row's last position, or their softmax at `temperature` when it is > 0.
    e = x.size(1)
    logits = self.proj(self.norm(w, x.view([b, -1, e]).select(1, -1), w[6]), w[1])
    if temperature > 0.0:
      return torch.softmax(logits / temperature, -1)
    return logits
  def proj(self: __torch__.LlamaDecoder, x: Tensor, w: Tensor) -> Tensor:
    # x @ w.t() for an (out, in) weight. A 16-bit weight (bf16, 15, or float16, 5; see
    # half_products) takes x in its type and gives float32 back (6): the kernels (oneDNN's AMX /
    # AVX512-BF16 ones for bf16) accumulate in float32.
    if w.dtype != 6:
      return torch.linear(x.to(w.dtype), w).to(6)
    # From `dnn_rows` rows on, oneDNN's linear: it runs AVX-512 kernels where MKL keeps to AVX2
    # (AMD CPUs) and measured ~2x faster on 4096 rows, while its fixed cost (~9 us a call) loses
    # on a few rows.
    # onednn-begin
    if x.size(0) >= self.dnn_rows:
      return ops.mkldnn._linear_pointwise(x, w, None, "none", annotate(List[Optional[number]], []), "")
    # onednn-end
    return torch.mm(x, w.t())
  def proj_add(self: __torch__.LlamaDecoder, x: Tensor, w: Tensor, residual: Tensor) -> Tensor:
    # residual + x @ w.t(), the add fused into the product (float32) or after it (16-bit).
    if w.dtype != 6:
      return torch.add(residual, torch.linear(x.to(w.dtype), w).to(6))
    # onednn-begin
    if x.size(0) >= self.dnn_rows:
      return ops.mkldnn._linear_pointwise(x, residual, w, None, "add")
    # onednn-end
    return torch.addmm(residual, x, w.t())
  def norm(self: __torch__.LlamaDecoder, w: List[Tensor], x: Tensor, weight: Tensor) -> Tensor:
    # weight * x / sqrt(mean(x^2) + eps), the mean and eps as one addmm: a float literal here
    # would be wrapped into a tensor on every call, which measured slower than the op itself.
    return x * torch.rsqrt(torch.addmm(w[4], x * x, w[5])) * weight
  def low_rank(self: __torch__.LlamaDecoder, w: List[Tensor], i: int, x: Tensor, y: Tensor) -> Tensor:
    # y + x @ aT @ bT when product i (its weight at w[i]) has an adapter, else y.
    if w[i + 2].numel() > 0:
      return torch.addmm(y, torch.mm(x, w[i + 2]), w[i + 3])
    return y
  def table(self: __torch__.LlamaDecoder, table: Tensor, positions: Tensor) -> Tensor:
    # Rows of a (P, D) RoPE table at (B, T) positions, broadcast over heads: (B, T, 1, D).
    return torch.embedding(table, positions).unsqueeze(2)
  def residual(self: __torch__.LlamaDecoder, w: List[Tensor], ids: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, cache: List[Tensor], slot: int) -> Tensor:
    # The residual stream (B*T, E) after the last layer; cos and sin (B or 1, T, 1, D).
    b = ids.size(0)
    t = ids.size(1)
    x = torch.embedding(w[0], ids.view([-1])).to(w[2].dtype)
    for i in range(self.layers):
      base = 8 + 18 * i
      qkv = self.attention_inputs(w, base, x, cos, sin, b, t)
      k = qkv[1]
      v = qkv[2]
      if len(cache) > 0:
        kc = cache[2 * i]
        vc = cache[2 * i + 1]
        kc.narrow(3, slot, t).copy_(k)
        vc.narrow(2, slot, t).copy_(v)
        k = kc.narrow(3, 0, slot + t)
        v = vc.narrow(2, 0, slot + t)
      a = self.attend(qkv[0], k, v, mask, b, t, slot)
      x = self.layer_rest(w, base, x, a)
    return x
  def attention_inputs(self: __torch__.LlamaDecoder, w: List[Tensor], base: int, x: Tensor, cos: Tensor, sin: Tensor, b: int, t: int) -> Tuple[Tensor, Tensor, Tensor]:
    # A layer's q (B*T, heads*D), scaled, k (B, K, D, T) and v (B, K, T, D) from the stream x.
    hd = self.heads * self.head_dim
    kd = self.kv_heads * self.head_dim
    half = self.head_dim // 2
    h = self.norm(w, x, w[base])
    qkv = self.low_rank(w, base + 2, h, self.proj(h, w[base + 2]))
    if self.qkv_bias:
      qkv = qkv + w[base + 3]
    parts = qkv.split([hd + kd, kd], 1)
    # RoPE on q and k together: x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1].
    qk = parts[0].view([b, t, self.heads + self.kv_heads, self.head_dim])
    rotated = torch.cat([qk.narrow(3, half, half).neg(), qk.narrow(3, 0, half)], 3)
    qk = torch.addcmul(qk * cos, rotated, sin).view([b * t, hd + kd]).split([hd, kd], 1)
    q = qk[0] * w[7]
    k = qk[1].view([b, t, self.kv_heads, self.head_dim]).permute([0, 2, 3, 1])
    v = parts[1].view([b, t, self.kv_heads, self.head_dim]).transpose(1, 2)
    return (q, k, v)
  def layer_rest(self: __torch__.LlamaDecoder, w: List[Tensor], base: int, x: Tensor, a: Tensor) -> Tensor:
    # The rest of a layer after attention's output a: o, the residual, the MLP and its residual.
    x = self.low_rank(w, base + 6, a, self.proj_add(a, w[base + 6], x))
    if self.o_bias:
      x = x + w[base + 7]
    h = self.norm(w, x, w[base + 1])
    gu = self.low_rank(w, base + 10, h, self.proj(h, w[base + 10]))
    if self.mlp_bias:
      gu = gu + w[base + 11]
    gu = gu.split([self.inter, self.inter], 1)
    m = torch.silu(gu[0]) * gu[1]
    x = self.low_rank(w, base + 14, m, self.proj_add(m, w[base + 14], x))
    if self.mlp_bias:
      x = x + w[base + 15]
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
