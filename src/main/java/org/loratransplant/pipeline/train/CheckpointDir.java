package org.loratransplant.pipeline.train;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.loratransplant.lora.PeftFormat;
import org.loratransplant.pipeline.StageStore;
import org.loratransplant.train.LoraTrainer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where a training stage keeps its checkpoints: in the run directory, at
 * {@code <run>/_checkpoints/<stage>-<key>}, so they belong to that run and those settings alone
 * (not to a temporary folder every run of the same settings shares) and are removed once the
 * stage's output is committed.
 *
 * <p>For a run directory on another filesystem ({@code s3a://}) the trainer writes to a fresh
 * local folder of this process, and each checkpoint is copied to the run directory as soon as it
 * is written, its state file last: a checkpoint there is complete exactly when its state file is
 * (one object written whole), and the older ones are then deleted. A rerun, on this machine or
 * another, first copies the newest complete one back and resumes from it.
 */
public final class CheckpointDir {
  private static final Logger LOG = LoggerFactory.getLogger(CheckpointDir.class);
  /** The folder under a run directory that holds every stage's checkpoints. */
  public static final String FOLDER = "_checkpoints";

  private final StageStore store;
  private final String stage;
  private final String name;
  private final Path local;

  private CheckpointDir(StageStore store, String stage, String name, Path local) {
    this.store = store;
    this.stage = stage;
    this.name = name;
    this.local = local;
  }

  /** The checkpoints of {@code stage} with key {@code key} in {@code store}'s directory. */
  public static CheckpointDir of(StageStore store, String stage, String key) {
    String name = FOLDER + "/" + stage + "-" + key;
    try {
      Path local = store.isLocal() ? store.localRoot().resolve(name)
          : Files.createTempDirectory("lt-checkpoints-").resolve(stage + "-" + key);
      return new CheckpointDir(store, stage, name, local);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot create a local checkpoint folder: "
          + e.getMessage(), e);
    }
  }

  /** The folder the trainer reads and writes. */
  public Path local() {
    return local;
  }

  /** Where the checkpoints live: the local folder, or the run directory's copy. */
  public String location() {
    return store.isLocal() ? local.toString() : store.path(name);
  }

  /**
   * Before training: removes this stage's checkpoints of other keys (written for settings the
   * run no longer has) and, for a remote run directory, copies the newest complete checkpoint
   * here.
   */
  public void prepare() {
    FileSystem fs = store.fileSystem();
    org.apache.hadoop.fs.Path folder = new org.apache.hadoop.fs.Path(store.path(FOLDER));
    org.apache.hadoop.fs.Path ours = new org.apache.hadoop.fs.Path(store.path(name));
    try {
      if (fs.exists(folder)) {
        for (FileStatus st : fs.listStatus(folder)) {
          if (st.getPath().getName().startsWith(stage + "-")
              && !st.getPath().getName().equals(ours.getName())) {
            LOG.info("removing checkpoints of other settings: {}", st.getPath());
            fs.delete(st.getPath(), true);
          }
        }
      }
      if (store.isLocal() || !fs.exists(ours)) {
        return;
      }
      FileStatus newest = null;
      for (FileStatus st : fs.listStatus(ours)) {
        if (st.getPath().getName().startsWith("checkpoint-")
            && fs.exists(new org.apache.hadoop.fs.Path(st.getPath(), LoraTrainer.STATE_FILE))
            && (newest == null || st.getPath().getName().compareTo(
                newest.getPath().getName()) > 0)) {
          newest = st;
        }
      }
      if (newest != null) {
        Files.createDirectories(local);
        fs.copyToLocalFile(false, newest.getPath(), new org.apache.hadoop.fs.Path(
            local.resolve(newest.getPath().getName()).toUri()), true);
        LOG.info("copied checkpoint {} here to resume from it", newest.getPath());
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read checkpoints at " + store.path(FOLDER) + ": "
          + e.getMessage(), e);
    }
  }

  /**
   * What the trainer tells after each step: for a remote run directory, copies a new checkpoint
   * there (state file last) and deletes the older ones; nothing for a local one.
   */
  public LoraTrainer.StepListener publisher() {
    if (store.isLocal()) {
      return (done, checkpoint) -> { };
    }
    return (done, checkpoint) -> {
      if (checkpoint != null) {
        publish(checkpoint);
      }
    };
  }

  private void publish(Path checkpoint) {
    FileSystem fs = store.fileSystem();
    org.apache.hadoop.fs.Path dst = new org.apache.hadoop.fs.Path(store.path(name + "/"
        + checkpoint.getFileName()));
    try {
      List<Path> files = new ArrayList<>();
      try (Stream<Path> s = Files.list(checkpoint)) {
        s.filter(Files::isRegularFile).sorted().forEach(files::add);
      }
      files.sort((a, b) -> Boolean.compare(isState(a), isState(b))); // the state file last
      for (Path f : files) {
        fs.copyFromLocalFile(false, true, new org.apache.hadoop.fs.Path(f.toUri()),
            new org.apache.hadoop.fs.Path(dst, f.getFileName().toString()));
      }
      for (FileStatus st : fs.listStatus(dst.getParent())) {
        if (st.getPath().getName().startsWith("checkpoint-")
            && st.getPath().getName().compareTo(dst.getName()) < 0) {
          fs.delete(st.getPath(), true);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot copy checkpoint " + checkpoint + " to " + dst
          + StageStore.endpointOf(fs.getConf(), dst) + ": " + e.getMessage(), e);
    }
  }

  private static boolean isState(Path f) {
    return f.getFileName().toString().equals(LoraTrainer.STATE_FILE);
  }

  /** After the stage's output is committed: removes the checkpoints (and an empty folder). */
  public void delete() {
    FileSystem fs = store.fileSystem();
    org.apache.hadoop.fs.Path folder = new org.apache.hadoop.fs.Path(store.path(FOLDER));
    try {
      fs.delete(new org.apache.hadoop.fs.Path(store.path(name)), true);
      if (fs.exists(folder) && fs.listStatus(folder).length == 0) {
        fs.delete(folder, true);
      }
      if (!store.isLocal()) {
        PeftFormat.deleteRecursively(local.getParent());
      }
    } catch (IOException e) {
      LOG.warn("could not remove checkpoints {}: {}", location(), e.getMessage());
    }
  }
}
