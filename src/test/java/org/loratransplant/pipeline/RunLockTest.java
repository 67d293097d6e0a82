package org.loratransplant.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.loratransplant.testing.S3TestServer;

/** One writer per run directory: refused while held, taken over when stale, released on close. */
class RunLockTest {
  @RegisterExtension
  static final S3TestServer S3 = new S3TestServer();

  @TempDir Path tmp;

  static final Instant T0 = Instant.parse("2025-01-01T00:00:00Z");
  static final RunLock.Settings TEN_MIN = new RunLock.Settings(Duration.ofMinutes(10),
      Duration.ofMinutes(1), Duration.ofMillis(300));

  static Clock at(Duration after) {
    return Clock.fixed(T0.plus(after), ZoneOffset.UTC);
  }

  @Test
  void aSecondWriterIsRefusedNamingTheOwnerAndItsHeartbeatAge() throws Exception {
    String dir = tmp.resolve("run").toString();
    Configuration conf = new Configuration();
    try (RunLock first = RunLock.acquire(conf, dir, TEN_MIN, at(Duration.ZERO))) {
      assertTrue(Files.exists(Path.of(dir, RunLock.FILE)), "the run directory was created");
      RunLock.HeldException e = assertThrows(RunLock.HeldException.class,
          () -> RunLock.acquire(conf, dir, TEN_MIN, at(Duration.ofSeconds(95))));
      String msg = e.getMessage();
      assertTrue(msg.contains("pid " + ProcessHandle.current().pid()), msg);
      assertTrue(msg.contains("host " + first.owner().host()), msg);
      assertTrue(msg.contains("95 s ago"), msg);
      assertEquals(first.owner().token(), e.owner().token());
    }
    assertFalse(Files.exists(Path.of(dir, RunLock.FILE)), "close deletes the lock file");
    try (RunLock again = RunLock.acquire(conf, dir, TEN_MIN, at(Duration.ofMinutes(1)))) {
      assertTrue(again.held());
    }
  }

  @Test
  void heartbeatKeepsTheLockFreshAndAStaleOneIsTakenOver() throws Exception {
    String dir = tmp.resolve("run").toString();
    Configuration conf = new Configuration();
    MutableClock clock = new MutableClock();
    RunLock first = RunLock.acquire(conf, dir, TEN_MIN, clock);
    // 9 min after start, first beats; at 18 min its heartbeat is 9 min old: still refused.
    clock.now = T0.plus(Duration.ofMinutes(9));
    first.beat();
    assertThrows(RunLock.HeldException.class,
        () -> RunLock.acquire(conf, dir, TEN_MIN, at(Duration.ofMinutes(18))));
    // At 19 min 1 s it is 10 min 1 s old: a dead owner, taken over.
    RunLock second = RunLock.acquire(conf, dir, TEN_MIN, at(Duration.ofSeconds(19 * 60 + 1)));
    assertNotEquals(first.owner().token(), second.owner().token());
    // The old owner notices on its next beat and does not delete the new owner's file on close.
    first.beat();
    assertFalse(first.held());
    first.close();
    assertTrue(Files.readString(Path.of(dir, RunLock.FILE)).contains(second.owner().token()));
    second.close();
    assertFalse(Files.exists(Path.of(dir, RunLock.FILE)));
  }

  @Test
  void onS3aOnlyOneOfSeveralSimultaneousCreatorsHoldsTheLock() throws Exception {
    Configuration conf = new Configuration();
    S3.configure(conf);
    String dir = S3.uri("runs/r1");
    int n = 4;
    ExecutorService pool = Executors.newFixedThreadPool(n);
    CountDownLatch go = new CountDownLatch(1);
    List<Future<RunLock>> tries = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      tries.add(pool.submit(() -> {
        go.await();
        try {
          return RunLock.acquire(conf, dir, TEN_MIN, Clock.systemUTC());
        } catch (RunLock.HeldException e) {
          return null;
        }
      }));
    }
    go.countDown();
    List<RunLock> winners = new ArrayList<>();
    for (Future<RunLock> f : tries) {
      if (f.get() != null) {
        winners.add(f.get());
      }
    }
    pool.shutdown();
    assertEquals(1, winners.size(), "exactly one holder");
    RunLock.HeldException e = assertThrows(RunLock.HeldException.class,
        () -> RunLock.acquire(conf, dir, TEN_MIN, Clock.systemUTC()));
    assertTrue(e.getMessage().contains("s ago"), e.getMessage());
    winners.get(0).close();
    RunLock.acquire(conf, dir, TEN_MIN, Clock.systemUTC()).close();
  }

  /**
   * S3A pins the ETag it saw on open; a holder's heartbeat that replaces the object between a
   * reader's open and its read made that reader fail with "Change reported by S3 during open"
   * (a CI run failed so). A job trying the held directory must be refused as held, never fail.
   */
  @Test
  void onS3aAReaderRacingTheHoldersRewritesIsRefusedAsHeldNotFailed() throws Exception {
    Configuration conf = new Configuration();
    S3.configure(conf);
    String dir = S3.uri("runs/r2");
    try (RunLock holder = RunLock.acquire(conf, dir, TEN_MIN, Clock.systemUTC())) {
      org.apache.hadoop.fs.Path file = new org.apache.hadoop.fs.Path(dir, RunLock.FILE);
      org.apache.hadoop.fs.FileSystem fs = file.getFileSystem(conf);
      RunLock.Owner me = holder.owner();
      java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic
          .AtomicBoolean();
      java.util.concurrent.atomic.AtomicInteger rewrites = new java.util.concurrent.atomic
          .AtomicInteger();
      List<Thread> rewriters = new ArrayList<>();
      for (int t = 0; t < 2; t++) {
        Thread rewriter = new Thread(() -> {
          while (!stop.get()) {
            // A new heartbeat each time: a new body, so a new ETag (the body's MD5).
            RunLock.Owner beat = new RunLock.Owner(me.token(), me.host(), me.pid(), me.started(),
                Instant.now());
            try (var out = fs.create(file, true)) {
              out.write(beat.render().getBytes(java.nio.charset.StandardCharsets.UTF_8));
            } catch (java.io.IOException e) {
              throw new java.io.UncheckedIOException(e);
            }
            rewrites.incrementAndGet();
          }
        });
        rewriter.start();
        rewriters.add(rewriter);
      }
      RunLock.Settings quick = new RunLock.Settings(Duration.ofMinutes(10),
          Duration.ofMinutes(1), Duration.ZERO);
      int tries = 0;
      try {
        // Enough overlapping reads and rewrites that, without the re-read, some read races one
        // (measured: it failed within the first few hundred rewrites every time).
        long deadline = System.nanoTime() + Duration.ofSeconds(40).toNanos();
        while (rewrites.get() < 400 && System.nanoTime() < deadline) {
          RunLock.HeldException e = assertThrows(RunLock.HeldException.class,
              () -> RunLock.acquire(conf, dir, quick, Clock.systemUTC()));
          assertEquals(holder.owner().token(), e.owner().token());
          tries++;
        }
      } finally {
        stop.set(true);
        for (Thread t : rewriters) {
          t.join();
        }
      }
      assertTrue(rewrites.get() >= 400, "rewrites during " + tries + " tries: " + rewrites.get());
    }
  }

  /**
   * An object-store read takes the length from its HEAD and the bytes from its GET, which may
   * find a newer version: every version must have one length so the text is never cut short.
   */
  @Test
  void everyVersionOfTheLockFileHasOneLengthAndParsesBack() {
    Instant started = Instant.parse("2026-12-02T21:58:41Z");
    List<RunLock.Owner> owners = List.of(
        new RunLock.Owner("t1", "h", 1, started, started),
        new RunLock.Owner("t2", "a-long-host-name.".repeat(14) + "example", 4194304L,
            started, started.plusNanos(123_456_789)),
        new RunLock.Owner("t3", "h", 77, started, started.plusMillis(120)));
    for (RunLock.Owner o : owners) {
      String text = o.render();
      assertEquals(RunLock.Owner.RENDERED_LENGTH, text.getBytes(
          java.nio.charset.StandardCharsets.UTF_8).length, text);
      assertEquals(o, RunLock.Owner.parse(text));
    }
  }

  @Test
  void settingsRefuseAHeartbeatSlowerThanTheStaleness() {
    assertThrows(IllegalArgumentException.class, () -> new RunLock.Settings(
        Duration.ofMinutes(1), Duration.ofMinutes(2), Duration.ZERO));
    assertEquals(Duration.ofMinutes(1), RunLock.Settings.defaults().heartbeatEvery());
  }

  /** A clock a test moves by hand. */
  static final class MutableClock extends Clock {
    volatile Instant now = T0;

    @Override
    public java.time.ZoneId getZone() {
      return ZoneOffset.UTC;
    }

    @Override
    public Clock withZone(java.time.ZoneId zone) {
      return this;
    }

    @Override
    public Instant instant() {
      return now;
    }
  }
}
