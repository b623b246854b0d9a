package io.egresstunnel.testing;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * Makes the garbage collector surface leaked buffers and collects the reports. Netty reports a leak
 * when a tracked buffer has been collected without release and a later allocation polls the
 * detector's queue, so this runs a few rounds of GC followed by allocations.
 */
public final class LeakCheck {
  private LeakCheck() {}

  /** Runs {@code rounds} collect-and-poll rounds and returns every report recorded so far. */
  public static List<String> collect(int rounds) {
    List<String> reports = new ArrayList<>();
    for (int i = 0; i < rounds; i++) {
      gcAndPoll();
      reports.addAll(FailingLeakDetector.drainReports());
    }
    return reports;
  }

  /** Collects until {@code done} holds for the reports so far, or {@code timeoutMillis} passes. */
  public static List<String> collectUntil(
      java.util.function.Predicate<List<String>> done, long timeoutMillis) {
    List<String> reports = new ArrayList<>();
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
    BooleanSupplier timeLeft = () -> System.nanoTime() < deadline;
    do {
      gcAndPoll();
      reports.addAll(FailingLeakDetector.drainReports());
    } while (!done.test(reports) && timeLeft.getAsBoolean());
    return reports;
  }

  /** Fails with every report if any buffer leaked. */
  public static void assertNoLeaks() {
    if (!FailingLeakDetector.isInstalled()) {
      throw new AssertionError(
          "FailingLeakDetector is not installed: run tests with"
              + " -Dio.netty.customResourceLeakDetector="
              + FailingLeakDetector.class.getName());
    }
    List<String> reports = collect(3);
    if (!reports.isEmpty()) {
      throw new AssertionError(
          reports.size() + " ByteBuf leak(s) detected:\n" + String.join("\n\n", reports));
    }
  }

  private static void gcAndPoll() {
    System.gc();
    try {
      Thread.sleep(5); // let the reference handler thread enqueue the collected trackers
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    // Each tracked allocation polls the detector's reference queue.
    for (int i = 0; i < 4; i++) {
      ByteBuf a = PooledByteBufAllocator.DEFAULT.buffer(1);
      a.release();
      ByteBuf b = UnpooledByteBufAllocator.DEFAULT.heapBuffer(1);
      b.release();
    }
  }
}
