package org.loratransplant.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.safetensors.Checkpoint;
import org.loratransplant.safetensors.SafeTensorsWriter;
import org.loratransplant.safetensors.TensorData;

/**
 * Tensors larger than one block (16 MB) are filled by several threads: the result equals the
 * file's values read on one thread, for float32 and bf16 files and for stacked parts, and a NaN
 * in a late block is still refused by name.
 */
class WeightReaderTest {
  @TempDir Path tmp;

  private static final long ROWS = 40_000; // 40000 x 160 floats: 25.6 MB, two blocks and a bit
  private static final long COLS = 160;

  private static float[] values(long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    float[] v = new float[(int) (ROWS * COLS)];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) r.nextGaussian();
    }
    return v;
  }

  private Path checkpoint(String name, Map<String, TensorData> tensors) {
    Path dir = tmp.resolve(name);
    dir.toFile().mkdirs();
    SafeTensorsWriter.write(dir.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
    return dir;
  }

  @Test
  void manyThreadsReadWhatOneReads() {
    float[] a = values(1);
    float[] b = values(2);
    long[] shape = {ROWS, COLS};
    Path f32 = checkpoint("f32", Map.of("a", TensorData.ofFloat32(shape, a),
        "b", TensorData.ofFloat32(shape, b)));
    Path bf16 = checkpoint("bf16", Map.of("a", TensorData.ofBFloat16(shape, a),
        "b", TensorData.ofBFloat16(shape, b)));
    for (Path dir : List.of(f32, bf16)) {
      try (Checkpoint ckpt = Checkpoint.open(dir); NDManager m = NDManager.newBaseManager()) {
        float[] one;
        float[] four;
        try (WeightReader w = new WeightReader(ckpt, m, 1, false)) {
          one = w.stack(List.of("a", "b"), new long[] {ROWS, ROWS}, COLS).toFloatArray();
        }
        try (WeightReader w = new WeightReader(ckpt, m, 4, false)) {
          NDArray stacked = w.stack(List.of("a", "b"), new long[] {ROWS, ROWS}, COLS);
          four = stacked.toFloatArray();
          assertEquals(2 * ckpt.info("a").byteLength(), w.bytesRead());
        }
        assertArrayEquals(one, four, dir.toString());
        if (dir == f32) {
          assertEquals(a[0], four[0]);
          assertEquals(b[b.length - 1], four[four.length - 1]);
        } else {
          // bf16 keeps the top 16 bits: within 2^-8 relative.
          assertEquals(a[a.length - 1], four[a.length - 1], Math.abs(a[a.length - 1]) / 128);
        }
      }
    }
  }

  @Test
  void aNanInALateBlockIsRefusedByName() {
    float[] a = values(3);
    a[a.length - 5] = Float.NaN;
    Path dir = checkpoint("nan", Map.of("late.weight", TensorData.ofFloat32(
        new long[] {ROWS, COLS}, a)));
    try (Checkpoint ckpt = Checkpoint.open(dir); NDManager m = NDManager.newBaseManager();
        WeightReader w = new WeightReader(ckpt, m, 4, false)) {
      ModelConfigException e = assertThrows(ModelConfigException.class,
          () -> w.read("late.weight", ROWS, COLS));
      assertTrue(e.getMessage().contains("late.weight") && e.getMessage().contains("NaN"),
          e.getMessage());
    }
  }
}
