package org.loratransplant.pipeline.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.LoraConfig;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.model.Projection;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.testing.S3TestServer;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;
import org.loratransplant.train.LoraTrainer;
import org.loratransplant.train.TrainerConfig;
import org.loratransplant.train.TrainingExample;

/**
 * Training checkpoints in the run directory: under {@code <run>/_checkpoints/<stage>-<key>} for a
 * local run; for an {@code s3a://} run written locally and copied there after each checkpoint,
 * so a rerun with a fresh local folder (another process or machine) resumes from the copy and
 * ends with the uninterrupted run's adapter.
 */
class CheckpointDirTest {
  @RegisterExtension
  static final S3TestServer S3 = new S3TestServer();
  @TempDir Path tmp;
  private static LanguageModel lm;
  private static List<TrainingExample> data;

  @BeforeAll
  static void load() {
    lm = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
    data = new ArrayList<>();
    for (String t : new String[] {"Lily liked to play with her red ball in the park.",
        "Tom saw a big dog. The dog was happy.", "One day, Sue found a little bird.",
        "Max and his mom went to the store.", "The sun was warm and the sky was blue.",
        "Ben had a toy car. He played with it all day."}) {
      int[] ids = lm.tokenizer().encode(t, true);
      data.add(TrainingExample.full(Arrays.copyOf(ids, 4), Arrays.copyOfRange(ids, 4,
          ids.length)));
    }
  }

  @AfterAll
  static void close() {
    lm.close();
  }

  /** 6 steps (2 epochs of 3 batches), a checkpoint every 2. */
  private static final TrainerConfig CONFIG = new TrainerConfig(1e-2, 2, 2, 0.01, 0.0, 1.0, 1,
      42, 0, TrainerConfig.LossNormaliser.WEIGHT_SUM, 2, 0);

  private static float[][] train(Path checkpoints, LoraTrainer.StepListener listener,
      int[] resumedFrom) {
    try (LoraAdapter a = LoraAdapter.create(new LoraConfig(4, 8, 0, EnumSet.of(Projection.Q_PROJ,
        Projection.V_PROJ), List.of(), false, "stories260K"), lm.config(), lm.model().manager(),
        7)) {
      LoraTrainer.Result r = new LoraTrainer(CONFIG).listening(listener).train(lm, a, data,
          checkpoints);
      resumedFrom[0] = r.resumedFromStep();
      return a.parameters().stream().map(p -> p.toFloatArray()).toArray(float[][]::new);
    }
  }

  @Test
  void aLocalRunKeepsItsCheckpointsUnderTheRunDirectory() {
    StageStore store = new StageStore(SparkTestSession.get(), tmp.resolve("run").toString());
    CheckpointDir c = CheckpointDir.of(store, "train", "abc123");
    assertEquals(tmp.resolve("run/_checkpoints/train-abc123"), c.local());
  }

  @Test
  void anS3aRunCopiesEachCheckpointThereAndAFreshProcessResumesFromIt() throws Exception {
    SparkSession spark = SparkTestSession.withS3(S3);
    StageStore store = new StageStore(spark, S3.uri("runs/r1"));
    int[] resumed = new int[1];
    float[][] whole = train(null, (d, c) -> { }, resumed);

    CheckpointDir first = CheckpointDir.of(store, "train", "k1");
    first.prepare();
    assertFalse(first.local().startsWith(tmp), "a local folder of this process");
    assertThrows(IllegalStateException.class, () -> train(first.local(), (d, c) -> {
      first.publisher().afterStep(d, c);
      if (d == 4) {
        throw new IllegalStateException("driver died after step 4");
      }
    }, resumed));
    // Only the newest complete checkpoint stays in the bucket, its state file with it.
    var fs = store.fileSystem();
    var remote = new org.apache.hadoop.fs.Path(store.path("_checkpoints/train-k1"));
    assertEquals(List.of("checkpoint-00000004"), Arrays.stream(fs.listStatus(remote))
        .map(st -> st.getPath().getName()).toList());
    assertTrue(fs.exists(new org.apache.hadoop.fs.Path(remote,
        "checkpoint-00000004/" + LoraTrainer.STATE_FILE)));
    // The local folder is gone with the process (another machine, or a wiped temp folder).
    PeftFormat.deleteRecursively(first.local().getParent());

    CheckpointDir second = CheckpointDir.of(store, "train", "k1");
    assertTrue(second.location().startsWith("s3a://"), second.location());
    second.prepare();
    float[][] resumedRun = train(second.local(), second.publisher(), resumed);
    assertEquals(4, resumed[0], "resumed at step 4 from the bucket's copy");
    for (int i = 0; i < whole.length; i++) {
      assertArrayEquals(whole[i], resumedRun[i], 1e-6f, "parameter " + i);
    }
    // Another key's checkpoints (settings the run no longer has) are removed before training.
    CheckpointDir.of(store, "train", "k2").prepare();
    assertFalse(fs.exists(remote));
    second.delete();
    assertFalse(fs.exists(new org.apache.hadoop.fs.Path(store.path("_checkpoints"))));
  }
}
