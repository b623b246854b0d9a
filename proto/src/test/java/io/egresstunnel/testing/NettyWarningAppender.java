package io.egresstunnel.testing;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.AppenderBase;
import org.slf4j.LoggerFactory;

/** Records every WARN or ERROR of a {@code io.netty} logger in {@link NettyWarnings}. */
public final class NettyWarningAppender extends AppenderBase<ILoggingEvent> {
  /** Its name in logback-test.xml. */
  static final String NAME = "netty-warnings";

  @Override
  protected void append(ILoggingEvent event) {
    if (event.getLevel().isGreaterOrEqual(Level.WARN)
        && event.getLoggerName().startsWith("io.netty")) {
      NettyWarnings.record(
          event.getLevel() + " " + event.getLoggerName() + ": " + event.getFormattedMessage());
    }
  }

  /**
   * Attaches the appender to {@code io.netty} unless it is there, and quiets grpc-java's shaded
   * Netty, as logback-test.xml does. A test that runs a command's {@code main} resets logback
   * ({@code Logging.configure}), which drops both for every later test in the JVM.
   */
  static void install() {
    if (!(LoggerFactory.getILoggerFactory() instanceof LoggerContext context)) {
      return;
    }
    ch.qos.logback.classic.Logger netty = context.getLogger("io.netty");
    if (netty.getAppender(NAME) == null) {
      NettyWarningAppender appender = new NettyWarningAppender();
      appender.setName(NAME);
      appender.setContext(context);
      appender.start();
      netty.addAppender(appender);
    }
    // grpc-java's shaded Netty (the GRPC tests' client) sets SO_KEEPALIVE on Unix sockets too
    context.getLogger("io.grpc.netty.shaded.io.netty.bootstrap.Bootstrap").setLevel(Level.ERROR);
  }
}
