package io.egresstunnel.testing;

import io.netty.util.ResourceLeakDetector;
import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;

/**
 * A paranoid leak detector that records every leak report instead of only logging it, so that
 * {@link LeakCheckExtension} can fail the test. Installed for every test JVM by the parent POM
 * ({@code -Dio.netty.customResourceLeakDetector}).
 */
public final class FailingLeakDetector<T> extends ResourceLeakDetector<T> {
  private static final Queue<String> REPORTS = new ConcurrentLinkedQueue<>();
  private static volatile boolean installed;

  /** Called reflectively by Netty's {@code ResourceLeakDetectorFactory}. */
  public FailingLeakDetector(Class<?> resourceType, int samplingInterval) {
    super(resourceType, samplingInterval);
    installed = true;
  }

  /** The older constructor Netty's factory also looks up; without it, it logs an error. */
  @SuppressWarnings("deprecation")
  public FailingLeakDetector(Class<?> resourceType, int samplingInterval, long maxActive) {
    super(resourceType, samplingInterval, maxActive);
    installed = true;
  }

  @Override
  protected boolean needReport() {
    return true;
  }

  @Override
  protected void reportTracedLeak(String resourceType, String records) {
    REPORTS.add("LEAK of " + resourceType + ": release() was not called." + records);
  }

  @Override
  protected void reportUntracedLeak(String resourceType) {
    REPORTS.add("LEAK of " + resourceType + ": release() was not called (no access records).");
  }

  /** True once Netty has created at least one detector of this class. */
  public static boolean isInstalled() {
    return installed;
  }

  /** Removes and returns the leak reports recorded so far. */
  public static List<String> drainReports() {
    List<String> out = new ArrayList<>();
    for (String r; (r = REPORTS.poll()) != null; ) {
      out.add(r);
    }
    return out;
  }
}
