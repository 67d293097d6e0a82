package org.loratransplant.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.testing.SparkTestSession;

/** A run directory that cannot be written is refused before the first write, saying why. */
class StageStoreWritableTest {
  @TempDir Path tmp;

  @Test
  void aRootUnderARegularFileIsRefusedBeforeWriting() throws Exception {
    Path file = Files.writeString(tmp.resolve("a-file"), "x");
    StageStore store = new StageStore(SparkTestSession.get(), file.resolve("run").toString());
    UncheckedIOException e = assertThrows(UncheckedIOException.class,
        () -> store.writeText("summary.json", "{}"));
    assertTrue(e.getMessage().contains("not a directory") && e.getMessage().contains("a-file"),
        e.getMessage());
  }

  @Test
  void aReadOnlyRunDirectoryIsNamedReadOnly() throws Exception {
    Path ro = Files.createDirectories(tmp.resolve("ro"));
    Files.setPosixFilePermissions(ro, PosixFilePermissions.fromString("r-xr-xr-x"));
    try {
      // root writes through permission bits: nothing to show there.
      assumeFalse(Files.isWritable(ro), "running as root: permission bits are not enforced");
      StageStore store = new StageStore(SparkTestSession.get(), ro.resolve("run").toString());
      UncheckedIOException e = assertThrows(UncheckedIOException.class,
          () -> store.commitLocalDirectory(Files.createTempDirectory("x"), "run", "h"));
      assertTrue(e.getMessage().contains("read-only"), e.getMessage());
    } finally {
      Files.setPosixFilePermissions(ro, PosixFilePermissions.fromString("rwxr-xr-x"));
    }
  }

  @Test
  void aWritableDirectoryPassesAndIsWritten() {
    StageStore store = new StageStore(SparkTestSession.get(), tmp.resolve("new/run").toString());
    store.writeText("note.txt", "hi");
    assertEquals("hi", store.readText("note.txt"));
  }
}
