#!/usr/bin/env python3
"""bench/matmul-dtypes.py [THREADS]: GFLOP/s of torch.nn.functional.linear on this CPU with the
weight and input in float32, bfloat16 and float16 (float32 result), at the 135M shape's products
(4096 positions: q|k|v, down, the LM head; 32 rows: a decode step's LM head) and a 1B MLP product.
Says whether keeping a checkpoint's 16-bit dtype pays here: bf16 runs on AMX / AVX512-BF16 where
the CPU has them; float16 needs AMX-FP16 to beat float32. Run in the peer's venv (bench/peer.py).
"""
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads())
for (m, k, n) in [(4096, 576, 1728), (4096, 1536, 576), (4096, 576, 49152), (32, 576, 49152),
                  (4096, 2048, 8192)]:
    x = torch.randn(m, k)
    w = torch.randn(n, k) * 0.05
    rates = {}
    for dt in (torch.float32, torch.bfloat16, torch.float16):
        wd = w.to(dt)
        run = lambda: torch.nn.functional.linear(x.to(dt), wd).float()
        run()
        run()
        t0 = time.perf_counter()
        for _ in range(3):
            run()
        rates[str(dt).split('.')[-1]] = round(2 * m * k * n / ((time.perf_counter() - t0) / 3) / 1e9)
    print(f"{m} x {k} @ {k} x {n}: {rates} GFLOP/s", flush=True)
