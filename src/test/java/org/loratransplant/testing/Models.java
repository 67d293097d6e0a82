package org.loratransplant.testing;

import ai.djl.Device;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.loratransplant.model.LanguageModel;

/**
 * Models shared by the tests of one JVM: loading is cheap for these tiny checkpoints but native
 * start-up is not, and tests must not close a model another test still uses. Tests that change
 * weights (merging) load their own copy with {@link LanguageModel#load}.
 */
public final class Models {
  private static final Map<Path, LanguageModel> CACHE = new ConcurrentHashMap<>();

  private Models() {}

  public static LanguageModel shared(Path dir) {
    return CACHE.computeIfAbsent(dir.toAbsolutePath().normalize(),
        d -> LanguageModel.load(d, Device.cpu()));
  }
}
