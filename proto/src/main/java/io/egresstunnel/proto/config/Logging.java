package io.egresstunnel.proto.config;

import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.JsonEncoder;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.OutputStreamAppender;
import ch.qos.logback.core.encoder.Encoder;
import org.slf4j.ILoggerFactory;
import org.slf4j.LoggerFactory;

/**
 * The commands' logging: logback, one line per event on stderr, readable ({@link Format#TEXT}) or
 * JSON ({@link Format#JSON}). {@code --log-level} sets the level of this project's loggers ({@code
 * io.egresstunnel}); everything else (Netty, fabric8, the HTTP clients) runs quieter: WARN at
 * {@code info}, INFO at {@code debug}, DEBUG at {@code trace}. docs/configuration.md, "Logging".
 *
 * <p>The {@code logback.xml} the commands ship gives the same as {@code configure(TEXT, INFO)}, for
 * what is logged before the flags are read.
 */
public final class Logging {
  /** One readable line: time, level, thread, logger's short name, message. */
  public static final String TEXT_PATTERN =
      "%d{yyyy-MM-dd'T'HH:mm:ss.SSSXXX} %-5level [%thread] %logger{0} - %msg%n";

  /** This project's loggers, the ones {@code --log-level} sets. */
  public static final String PROJECT_LOGGERS = "io.egresstunnel";

  private Logging() {}

  /** How each event is written. */
  public enum Format {
    /** {@link #TEXT_PATTERN}. */
    TEXT,
    /**
     * One JSON object per line (logback's {@code JsonEncoder}): {@code timestamp} (epoch
     * milliseconds), {@code level}, {@code threadName}, {@code loggerName}, {@code mdc}, {@code
     * formattedMessage} and, for an exception, {@code throwable}.
     */
    JSON
  }

  /** {@code --log-level}. */
  public enum Level {
    TRACE,
    DEBUG,
    INFO,
    WARN,
    ERROR;

    ch.qos.logback.classic.Level logback() {
      return ch.qos.logback.classic.Level.toLevel(name());
    }

    /** The level of the libraries' loggers when ours run at this one. */
    ch.qos.logback.classic.Level libraries() {
      return switch (this) {
        case TRACE -> ch.qos.logback.classic.Level.DEBUG;
        case DEBUG -> ch.qos.logback.classic.Level.INFO;
        case INFO, WARN -> ch.qos.logback.classic.Level.WARN;
        case ERROR -> ch.qos.logback.classic.Level.ERROR;
      };
    }
  }

  /**
   * Replaces the logging configuration with {@code format} on stderr at {@code level}. Does nothing
   * when logback is not the SLF4J backend (an embedding application configures its own).
   */
  public static void configure(Format format, Level level) {
    ILoggerFactory factory = LoggerFactory.getILoggerFactory();
    if (!(factory instanceof LoggerContext context)) {
      return;
    }
    ConsoleAppender<ILoggingEvent> console = new ConsoleAppender<>();
    console.setTarget("System.err");
    configure(context, format, level, console);
  }

  /** As {@link #configure(Format, Level)}, on {@code context} through {@code appender}. */
  public static void configure(
      LoggerContext context,
      Format format,
      Level level,
      OutputStreamAppender<ILoggingEvent> appender) {
    context.reset();
    Encoder<ILoggingEvent> encoder = encoder(context, format);
    appender.setContext(context);
    appender.setName("console");
    appender.setEncoder(encoder);
    appender.start();
    ch.qos.logback.classic.Logger root = context.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    root.setLevel(level.libraries());
    root.addAppender(appender);
    context.getLogger(PROJECT_LOGGERS).setLevel(level.logback());
  }

  private static Encoder<ILoggingEvent> encoder(LoggerContext context, Format format) {
    if (format == Format.JSON) {
      JsonEncoder json = new JsonEncoder();
      json.setContext(context);
      json.setWithSequenceNumber(false);
      json.setWithNanoseconds(false);
      json.setWithContext(false);
      json.setWithMessage(false);
      json.setWithArguments(false);
      json.setWithFormattedMessage(true);
      json.start();
      return json;
    }
    PatternLayoutEncoder text = new PatternLayoutEncoder();
    text.setContext(context);
    text.setPattern(TEXT_PATTERN);
    text.start();
    return text;
  }
}
