package io.egresstunnel.proto.config;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.util.LogbackMDCAdapter;
import ch.qos.logback.core.OutputStreamAppender;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;

class LoggingTest {

  /** Logging set up on a context of its own (the tests' global one stays as it is). */
  private static final class Captured {
    final LoggerContext context = new LoggerContext();
    final ByteArrayOutputStream out = new ByteArrayOutputStream();

    Captured(Logging.Format format, Logging.Level level) {
      context.setMDCAdapter(new LogbackMDCAdapter());
      OutputStreamAppender<ILoggingEvent> appender = new OutputStreamAppender<>();
      appender.setOutputStream(out);
      Logging.configure(context, format, level, appender);
    }

    Logger logger(String name) {
      return context.getLogger(name);
    }

    String text() {
      context.stop();
      return out.toString(StandardCharsets.UTF_8);
    }
  }

  @Test
  void textIsOneReadableLinePerEvent() {
    Captured c = new Captured(Logging.Format.TEXT, Logging.Level.INFO);
    c.logger("io.egresstunnel.server.TunnelServer").info("listening on {}", "127.0.0.1:8090");
    assertThat(c.text())
        .matches(
            "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}(Z|[+-]\\d\\d:\\d\\d) INFO  \\["
                + java.util.regex.Pattern.quote(Thread.currentThread().getName())
                + "\\] TunnelServer - listening on 127.0.0.1:8090\\n");
  }

  @Test
  void theLevelIsOursLibrariesStayQuieter() {
    Captured info = new Captured(Logging.Format.TEXT, Logging.Level.INFO);
    info.logger("io.egresstunnel.a.Ours").info("ours at info");
    info.logger("io.egresstunnel.a.Ours").debug("ours at debug");
    info.logger("io.netty.Lib").info("lib at info");
    info.logger("io.fabric8.Lib").warn("lib at warn");
    assertThat(info.text())
        .contains("ours at info", "lib at warn")
        .doesNotContain("ours at debug", "lib at info");

    Captured debug = new Captured(Logging.Format.TEXT, Logging.Level.DEBUG);
    debug.logger("io.egresstunnel.a.Ours").debug("ours at debug");
    debug.logger("io.egresstunnel.a.Ours").trace("ours at trace");
    debug.logger("io.netty.Lib").info("lib at info");
    debug.logger("io.netty.Lib").debug("lib at debug");
    assertThat(debug.text())
        .contains("ours at debug", "lib at info")
        .doesNotContain("ours at trace", "lib at debug");

    Captured trace = new Captured(Logging.Format.TEXT, Logging.Level.TRACE);
    trace.logger("io.egresstunnel.a.Ours").trace("ours at trace");
    trace.logger("io.netty.Lib").debug("lib at debug");
    assertThat(trace.text()).contains("ours at trace", "lib at debug");

    Captured error = new Captured(Logging.Format.TEXT, Logging.Level.ERROR);
    error.logger("io.egresstunnel.a.Ours").warn("ours at warn");
    error.logger("io.netty.Lib").warn("lib at warn");
    error.logger("io.egresstunnel.a.Ours").error("ours at error");
    assertThat(error.text()).contains("ours at error").doesNotContain("at warn");
  }

  @Test
  void jsonIsOneObjectPerLine() {
    Captured c = new Captured(Logging.Format.JSON, Logging.Level.INFO);
    c.logger("io.egresstunnel.a.Ours").info("first {}", 1);
    c.logger("io.egresstunnel.a.Ours").warn("second");
    String[] lines = c.text().split("\n");
    assertThat(lines).hasSize(2);
    assertThat(lines[0])
        .startsWith("{")
        .endsWith("}")
        .contains("\"level\":\"INFO\"")
        .contains("\"loggerName\":\"io.egresstunnel.a.Ours\"")
        .contains("\"formattedMessage\":\"first 1\"")
        .doesNotContain("\"context\"", "\"sequenceNumber\"");
  }
}
