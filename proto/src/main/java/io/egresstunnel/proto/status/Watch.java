package io.egresstunnel.proto.status;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The refreshing view of {@code status --watch}: a frame every interval, drawn in place like {@code
 * top} on a terminal (cursor home, clear screen), or on anything else printed one after another
 * with a blank line between them. Ctrl-C (SIGINT) ends it normally.
 */
public final class Watch {
  /** ANSI: cursor to the top left, then clear the screen. */
  static final String HOME_AND_CLEAR = "\033[H\033[2J";

  /** Draws one frame; {@code elapsedNanos} is the time since the previous one (0 for the first). */
  @FunctionalInterface
  public interface Frame {
    String draw(long elapsedNanos) throws Exception;
  }

  private final CountDownLatch interrupted = new CountDownLatch(1);

  private Watch() {}

  /**
   * Draws {@code frame} to {@code out} every {@code interval} until Ctrl-C, or {@code count} frames
   * when {@code count > 0}. Returns normally either way; exceptions from {@code frame} propagate.
   */
  public static void run(
      PrintWriter out, boolean terminal, Duration interval, int count, Frame frame)
      throws Exception {
    Watch w = new Watch();
    Runnable restore = w.onInterrupt();
    try {
      long last = 0;
      for (int n = 0; count <= 0 || n < count; n++) {
        if (n > 0 && w.interrupted.await(interval.toNanos(), TimeUnit.NANOSECONDS)) {
          break;
        }
        long now = System.nanoTime();
        String text = frame.draw(n == 0 ? 0 : now - last);
        last = now;
        if (terminal) {
          out.print(HOME_AND_CLEAR);
        } else if (n > 0) {
          out.print('\n');
        }
        out.print(text);
        out.flush();
      }
    } finally {
      restore.run();
    }
  }

  /**
   * Makes SIGINT end the loop instead of the JVM, and returns what puts the previous handler back.
   * Where signals cannot be handled (not a HotSpot-like JVM), Ctrl-C stops the process as usual.
   * {@code sun.misc.Signal} (module jdk.unsupported) is the JDK's only way to handle a signal;
   * javac warns about it, and no annotation silences that warning.
   */
  private Runnable onInterrupt() {
    try {
      sun.misc.Signal sigint = new sun.misc.Signal("INT");
      sun.misc.SignalHandler previous =
          sun.misc.Signal.handle(sigint, signal -> interrupted.countDown());
      return () -> sun.misc.Signal.handle(sigint, previous);
    } catch (IllegalArgumentException | UnsupportedOperationException | LinkageError e) {
      return () -> {};
    }
  }
}
