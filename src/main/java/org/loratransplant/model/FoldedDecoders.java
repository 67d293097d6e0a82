package org.loratransplant.model;

/**
 * The decoders a {@link LanguageModel} keeps: one of the base and one of the adapter used last,
 * so that repeated calls with the same adapter (a scoring stage calls once per batch) do not
 * prepare it again; folding a LoRA on every projection of stories260K measured 12-27 ms, as
 * long as scoring a batch of 32. A decoder is remade when the base weights changed in place (a
 * merge) or the adapter's did (training), which their version counters tell in O(1) (hashing
 * every adapter value on each call cost a copy of the adapter per call). Decoders are handed
 * out as counted leases, so one replaced while another thread still runs it closes when that
 * thread is done.
 */
final class FoldedDecoders implements AutoCloseable {
  private final LlamaModel model;
  private Slot base; // guarded by this
  private Slot adapted; // guarded by this
  private long builds; // guarded by this

  FoldedDecoders(LlamaModel model) {
    this.model = model;
  }

  private static final class Slot {
    final FusedDecoder decoder;
    final Adapter adapter;
    final long adapterVersion;
    final long weightsVersion;
    final Precision precision;
    int users;
    boolean retired;

    Slot(FusedDecoder decoder, Adapter adapter, long adapterVersion, long weightsVersion,
        Precision precision) {
      this.decoder = decoder;
      this.precision = precision;
      this.adapter = adapter;
      this.adapterVersion = adapterVersion;
      this.weightsVersion = weightsVersion;
    }
  }

  /** A decoder in use: close the lease when done with it. */
  final class Lease implements AutoCloseable {
    private final Slot slot;
    private boolean closed;

    private Lease(Slot slot) {
      this.slot = slot;
    }

    FusedDecoder decoder() {
      return slot.decoder;
    }

    @Override
    public void close() {
      synchronized (FoldedDecoders.this) {
        if (!closed) {
          closed = true;
          slot.users--;
          closeIfDone(slot);
        }
      }
    }
  }

  /**
   * The folded decoder of the base ({@code adapter} null) or of the base with {@code adapter},
   * its products in {@code precision}.
   */
  synchronized Lease acquire(Adapter adapter, Precision precision) {
    long version = model.weightsVersion();
    long adapterVersion = adapter == null ? 0 : adapter.weightsVersion();
    Slot current = adapter == null ? base : adapted;
    if (current == null || current.adapter != adapter || current.adapterVersion != adapterVersion
        || current.weightsVersion != version || current.precision != precision) {
      if (current != null) {
        retire(current);
      }
      // In bf16 or float16 an adapter's decoder reuses the base decoder's 16-bit copies of the
      // weights it does not fold (all of them when the adapter runs beside): one copy, not two.
      FusedDecoder shared = null;
      if (adapter != null && precision.half()) {
        try (Lease b = acquire(null, precision)) {
          shared = b.decoder();
        }
      }
      current = new Slot(FusedDecoder.of(model, adapter, precision, shared), adapter,
          adapterVersion, version, precision);
      builds++;
      if (adapter == null) {
        base = current;
      } else {
        adapted = current;
      }
    }
    current.users++;
    return new Lease(current);
  }

  /**
   * What the kept decoders hold beyond the model's weights.
   *
   * @param builds decoders made so far (a call that reuses a kept one adds none)
   * @param baseBytes bytes owned by the base's decoder (0 when none is kept)
   * @param adapterBytes bytes owned by the adapter's decoder: its folded copies or its factors
   * @param adapterFolded whether the kept adapter is folded into copies (else it runs beside)
   */
  record Stats(long builds, long baseBytes, long adapterBytes, boolean adapterFolded) {}

  synchronized Stats stats() {
    return new Stats(builds, base == null ? 0 : base.decoder.ownedBytes(),
        adapted == null ? 0 : adapted.decoder.ownedBytes(),
        adapted != null && adapted.decoder.folded());
  }

  private static void retire(Slot s) {
    s.retired = true;
    closeIfDone(s);
  }

  private static void closeIfDone(Slot s) {
    if (s.retired && s.users == 0) {
      s.decoder.close();
    }
  }

  @Override
  public synchronized void close() {
    for (Slot s : new Slot[] {base, adapted}) {
      if (s != null) {
        retire(s);
      }
    }
    base = null;
    adapted = null;
  }
}
