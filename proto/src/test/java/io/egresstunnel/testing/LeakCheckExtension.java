package io.egresstunnel.testing;

import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Fails any JUnit Jupiter test after which a ByteBuf leak is reported, or during which Netty logged
 * a warning ({@link NettyWarnings}). Registered for every test by service loading ({@code
 * junit.jupiter.extensions.autodetection.enabled}); a leak a test causes on purpose must be drained
 * by that test ({@link LeakCheck#collectUntil}).
 */
public final class LeakCheckExtension implements BeforeEachCallback, AfterEachCallback {
  /** Whether logback is on the test class path (not every module's tests log through it). */
  private static final boolean LOGBACK = onClassPath("ch.qos.logback.classic.LoggerContext");

  private static boolean onClassPath(String className) {
    try {
      Class.forName(className, false, LeakCheckExtension.class.getClassLoader());
      return true;
    } catch (ClassNotFoundException e) {
      return false;
    }
  }

  @Override
  public void beforeEach(ExtensionContext context) {
    if (LOGBACK) {
      NettyWarningAppender.install(); // an earlier test's main may have reset logback
    }
    // Reports that surface now come from earlier tests' garbage; they were checked there already,
    // but a late one must not be charged to this test, so surface and report them separately.
    NettyWarnings.drain(); // charged to the test that ran then, if any
    var earlier = LeakCheck.collect(1);
    if (!earlier.isEmpty()) {
      throw new AssertionError(
          "ByteBuf leak(s) from an earlier test surfaced before "
              + context.getDisplayName()
              + ":\n"
              + String.join("\n\n", earlier));
    }
  }

  @Override
  public void afterEach(ExtensionContext context) {
    LeakCheck.assertNoLeaks();
    var warnings = NettyWarnings.drain();
    if (!warnings.isEmpty()) {
      throw new AssertionError("Netty warned during the test:\n" + String.join("\n", warnings));
    }
  }
}
