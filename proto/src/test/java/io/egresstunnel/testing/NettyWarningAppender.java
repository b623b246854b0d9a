package io.egresstunnel.testing;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.AppenderBase;

/** Records every WARN or ERROR of a {@code io.netty} logger in {@link NettyWarnings}. */
public final class NettyWarningAppender extends AppenderBase<ILoggingEvent> {
  @Override
  protected void append(ILoggingEvent event) {
    if (event.getLevel().isGreaterOrEqual(Level.WARN)
        && event.getLoggerName().startsWith("io.netty")) {
      NettyWarnings.record(
          event.getLevel() + " " + event.getLoggerName() + ": " + event.getFormattedMessage());
    }
  }
}
