package io.egresstunnel.proto.config;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

class RateLimitedLogTest {

  @Test
  void oneLinePerCausePerIntervalSayingHowManyWereHeldBack() {
    Logger logger = (Logger) LoggerFactory.getLogger("rate-limited-log-test");
    ListAppender<ILoggingEvent> lines = new ListAppender<>();
    lines.start();
    logger.addAppender(lines);
    try {
      java.util.concurrent.atomic.AtomicLong now = new java.util.concurrent.atomic.AtomicLong();
      RateLimitedLog log = new RateLimitedLog(logger, Duration.ofMillis(300), now::get);
      for (int i = 0; i < 500; i++) {
        log.warn("401", "refused agent upgrade from {}: 401 unknown token", "10.0.0." + i);
        log.warn("403", "refused agent upgrade from {}: 403 wrong node", "10.0.1." + i);
      }
      assertThat(lines.list)
          .extracting(ILoggingEvent::getFormattedMessage)
          .containsExactly(
              "refused agent upgrade from 10.0.0.0: 401 unknown token",
              "refused agent upgrade from 10.0.1.0: 403 wrong node");
      now.addAndGet(Duration.ofMillis(400).toNanos());
      log.warn("401", "refused agent upgrade from {}: 401 unknown token", "10.0.2.1");
      assertThat(lines.list.get(2).getFormattedMessage())
          .isEqualTo(
              "refused agent upgrade from 10.0.2.1: 401 unknown token (499 more like it in the"
                  + " last 1 s not logged)");
    } finally {
      logger.detachAppender(lines);
    }
  }

  @Test
  void theNumberOfCausesTrackedIsBounded() {
    Logger logger = (Logger) LoggerFactory.getLogger("rate-limited-log-test-keys");
    ListAppender<ILoggingEvent> lines = new ListAppender<>();
    lines.start();
    logger.addAppender(lines);
    try {
      RateLimitedLog log = new RateLimitedLog(logger, Duration.ofHours(1));
      for (int i = 0; i < 3 * RateLimitedLog.MAX_KEYS; i++) {
        log.warn("cause-" + i, "line {}", i);
      }
      // Every tracked cause logged once, and all the rest shared one more line.
      assertThat(lines.list).hasSize(RateLimitedLog.MAX_KEYS + 1);
    } finally {
      logger.detachAppender(lines);
    }
  }
}
