package org.loratransplant.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkFiles;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.lora.LoraAdapter;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.model.LanguageModel;
import org.loratransplant.testing.S3TestServer;
import org.loratransplant.testing.SharedData;
import org.loratransplant.testing.SparkTestSession;
import org.loratransplant.transfer.RandomLora;

/**
 * Model and adapter directories on a Hadoop file system (S3 through S3Proxy here): copied once
 * into a local cache, verified, refetched when damaged; and relative paths found in Spark's files
 * directory ({@code spark-submit --archives}).
 */
class ModelDirsTest {
  @RegisterExtension static final S3TestServer S3 = new S3TestServer();
  @TempDir static Path tmp;
  static SparkSession spark;
  static Path adapter;
  static String modelUri;
  static String adapterUri;

  @BeforeAll
  static void upload() {
    spark = SparkTestSession.withS3(S3);
    adapter = tmp.resolve("adapter");
    RandomLora.write(adapter, SharedData.model("stories260K"), 4, 8, 7);
    modelUri = S3.putDirectory(SharedData.model("stories260K"), "models/stories260K");
    adapterUri = S3.putDirectory(adapter, "adapters/random");
  }

  static Configuration hadoop() {
    return spark.sparkContext().hadoopConfiguration();
  }

  @Test
  void aModelAndAdapterFromS3aGiveTheSameLogprobsAsTheLocalDirectories() {
    Path model = ModelDirs.local(modelUri);
    Path remoteAdapter = ModelDirs.local(adapterUri);
    assertTrue(model.startsWith(ModelDirs.cache().root()), model + " is in the cache");
    assertNotEquals(SharedData.model("stories260K"), model);
    // The HF reference sequences, scored from both copies with and without the adapter.
    JsonNode ref = SharedData.json(SharedData.hfReference("stories260K_logprobs.json"));
    List<int[]> prompts = new ArrayList<>();
    List<int[]> responses = new ArrayList<>();
    for (JsonNode s : ref.get("sequences")) {
      int[] ids = SharedData.ints(s.get("input_ids"));
      prompts.add(new int[] {ids[0]});
      responses.add(Arrays.copyOfRange(ids, 1, ids.length));
    }
    try (LanguageModel local = LanguageModel.load(SharedData.model("stories260K"), Device.cpu());
        LanguageModel remote = LanguageModel.load(model, Device.cpu());
        LoraAdapter la = PeftFormat.read(adapter, local.config(), local.model().manager());
        LoraAdapter ra = PeftFormat.read(remoteAdapter, remote.config(),
            remote.model().manager())) {
      List<float[]> want = local.logprobs(prompts, responses, null, 8);
      List<float[]> got = remote.logprobs(prompts, responses, null, 8);
      List<float[]> wantA = local.logprobs(prompts, responses, la, 8);
      List<float[]> gotA = remote.logprobs(prompts, responses, ra, 8);
      for (int i = 0; i < want.size(); i++) {
        assertArrayEquals(want.get(i), got.get(i), "sequence " + i);
        assertArrayEquals(wantA.get(i), gotA.get(i), "sequence " + i + " with the adapter");
        // ... and they are the reference's log-probs (the copy is the model, not some model).
        double[] hf = SharedData.doubles(ref.get("sequences").get(i).get("token_logprobs"));
        for (int j = 0; j < hf.length; j++) {
          assertEquals(hf[j], got.get(i)[j], 1e-4, "sequence " + i + " token " + j);
        }
        assertFalse(Arrays.equals(got.get(i), gotA.get(i)), "the adapter changes the scores");
      }
    }
    // A second request in this JVM hands out the same copy without fetching.
    assertEquals(model, ModelDirs.local(modelUri));
  }

  @Test
  void aDamagedCachedCopyIsDetectedAndFetchedAgain() throws IOException {
    Path root = tmp.resolve("cache-damaged");
    Path dir = new ModelDirCache(root).get(modelUri, hadoop());
    Path weights = dir.resolve("model.safetensors");
    byte[] good = Files.readAllBytes(weights);
    // Truncated (a copy cut short by a crash outside our atomic rename, or a full disk).
    try (FileChannel ch = FileChannel.open(weights, StandardOpenOption.WRITE)) {
      ch.truncate(good.length / 2);
    }
    ModelDirCache nextJvm = new ModelDirCache(root);
    assertEquals(dir, nextJvm.get(modelUri, hadoop()));
    assertEquals(1, nextJvm.copiesMade(), "truncated copy refetched");
    assertArrayEquals(good, Files.readAllBytes(weights));
    // One flipped byte, same size: only the checksum can tell.
    byte[] bad = good.clone();
    bad[bad.length / 2] ^= 0x5a;
    Files.write(weights, bad);
    ModelDirCache third = new ModelDirCache(root);
    assertEquals(dir, third.get(modelUri, hadoop()));
    assertEquals(1, third.copiesMade(), "corrupted copy refetched");
    assertArrayEquals(good, Files.readAllBytes(weights));
    // An intact copy is reused as it is.
    ModelDirCache fourth = new ModelDirCache(root);
    assertEquals(dir, fourth.get(modelUri, hadoop()));
    assertEquals(0, fourth.copiesMade());
    assertEquals(List.of(), leftovers(root), "no temp directories left behind");
  }

  @Test
  void concurrentCopiersOnOneMachineMakeOneCopy() throws Exception {
    Path root = tmp.resolve("cache-concurrent");
    int n = 4;
    List<ModelDirCache> caches = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      caches.add(new ModelDirCache(root)); // as if each were its own executor JVM
    }
    CountDownLatch start = new CountDownLatch(1);
    ExecutorService pool = Executors.newFixedThreadPool(n);
    try {
      List<Future<Path>> got = new ArrayList<>();
      for (ModelDirCache c : caches) {
        got.add(pool.submit(() -> {
          start.await();
          return c.get(modelUri, hadoop());
        }));
      }
      start.countDown();
      Path first = got.get(0).get();
      for (Future<Path> f : got) {
        assertEquals(first, f.get());
      }
      assertEquals(1, caches.stream().mapToInt(ModelDirCache::copiesMade).sum());
      assertArrayEquals(Files.readAllBytes(SharedData.model("stories260K")
          .resolve("model.safetensors")), Files.readAllBytes(first.resolve("model.safetensors")));
      assertEquals(List.of(), leftovers(root));
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void aChangedRemoteDirectoryGetsAFreshCopy() throws IOException {
    Path root = tmp.resolve("cache-changed");
    Path other = tmp.resolve("adapter-2");
    RandomLora.write(other, SharedData.model("stories260K"), 4, 8, 8);
    String uri = S3.putDirectory(adapter, "adapters/changing");
    Path before = new ModelDirCache(root).get(uri, hadoop());
    S3.putDirectory(other, "adapters/changing");
    Path after = new ModelDirCache(root).get(uri, hadoop());
    assertNotEquals(before, after);
    assertArrayEquals(Files.readAllBytes(other.resolve(PeftFormat.WEIGHTS_FILE)),
        Files.readAllBytes(after.resolve(PeftFormat.WEIGHTS_FILE)));
    assertFalse(Arrays.equals(Files.readAllBytes(before.resolve(PeftFormat.WEIGHTS_FILE)),
        Files.readAllBytes(after.resolve(PeftFormat.WEIGHTS_FILE))));
  }

  @Test
  void aMissingRemoteDirectoryIsAClearErrorNamingTheUri() {
    String missing = S3.uri("models/no-such-model");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ModelDirs.local(missing));
    assertTrue(e.getMessage().contains(missing) && e.getMessage().contains("does not exist"),
        e.getMessage());
  }

  @Test
  void aRelativePathInSparksFilesDirectoryIsFoundThereAndShipsRelative() throws IOException {
    // What spark-submit --archives models.tgz#m leaves: m/ in the driver's SparkFiles root and
    // in each executor's working directory.
    String name = "archive-" + System.nanoTime();
    Path unpacked = Path.of(SparkFiles.getRootDirectory()).resolve(name);
    Files.createDirectories(unpacked);
    Files.createSymbolicLink(unpacked.resolve("stories260K"), SharedData.model("stories260K"));
    String relative = name + "/stories260K";
    assertEquals(relative, ModelDirs.shippable(relative), "kept relative for the executors");
    assertEquals(unpacked.resolve("stories260K").toAbsolutePath(), ModelDirs.local(relative));
    // Anything else local becomes absolute on the driver; URIs stay as written.
    assertEquals(Path.of("conf").toAbsolutePath().toString(), ModelDirs.shippable("conf"));
    assertEquals(modelUri, ModelDirs.shippable(modelUri));
    assertEquals(Path.of("/x/y"), ModelDirs.local("file:///x/y"));
  }

  private static List<Path> leftovers(Path root) throws IOException {
    try (Stream<Path> s = Files.list(root)) {
      return s.filter(p -> p.getFileName().toString().startsWith(".tmp-")).toList();
    }
  }
}
