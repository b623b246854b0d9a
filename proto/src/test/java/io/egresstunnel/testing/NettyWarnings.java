package io.egresstunnel.testing;

import java.util.ArrayList;
import java.util.List;

/**
 * Warnings and errors that Netty logged during a test. A Netty warning such as "Unknown channel
 * option" or "exceptionCaught() reached the tail of the pipeline" is a defect of ours, so {@link
 * LeakCheckExtension} fails the test that caused it. {@link NettyWarningAppender} fills this from
 * logback-test.xml; it is kept apart so that the check loads without logback.
 */
public final class NettyWarnings {
  private static final List<String> seen = new ArrayList<>();

  private NettyWarnings() {}

  static synchronized void record(String line) {
    seen.add(line);
  }

  /** What was recorded since the last call, emptied. */
  public static synchronized List<String> drain() {
    List<String> out = List.copyOf(seen);
    seen.clear();
    return out;
  }
}
