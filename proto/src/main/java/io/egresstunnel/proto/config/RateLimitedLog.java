package io.egresstunnel.proto.config;

import java.time.Duration;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.event.Level;

/**
 * Log lines that repeat for one cause are written at most once per interval, each saying how many
 * like it were held back since the last one: a flood of refused connections (a misconfigured agent
 * retrying, a scanner) cannot drown the log. Causes are keys chosen by the caller (a status and a
 * reason, say); at most {@link #MAX_KEYS} are tracked, beyond which all share one. Thread-safe.
 * Count such events in a metric as well: the log shows the first of each kind, the metric all.
 */
public final class RateLimitedLog {
  /** Causes tracked at once; more share one budget. */
  public static final int MAX_KEYS = 1024;

  private static final String OVERFLOW = "\u0000other";

  private final Logger log;
  private final long intervalNanos;
  private final java.util.function.LongSupplier nanoClock;
  private final ConcurrentHashMap<String, Window> windows = new ConcurrentHashMap<>();

  private static final class Window {
    long lastNanos;
    boolean logged;
    long held;
  }

  public RateLimitedLog(Logger log, Duration interval) {
    this(log, interval, System::nanoTime);
  }

  /** With a clock of its own, for tests. */
  RateLimitedLog(Logger log, Duration interval, java.util.function.LongSupplier nanoClock) {
    this.log = log;
    this.intervalNanos = interval.toNanos();
    this.nanoClock = nanoClock;
  }

  /** Logs at WARN unless a line for {@code cause} was logged within the interval. */
  public void warn(String cause, String format, Object... args) {
    log(Level.WARN, cause, format, args);
  }

  /** As {@link #warn}, at INFO. */
  public void info(String cause, String format, Object... args) {
    log(Level.INFO, cause, format, args);
  }

  private void log(Level level, String cause, String format, Object... args) {
    if (!log.isEnabledForLevel(level)) {
      return;
    }
    String key = cause;
    if (!windows.containsKey(key) && windows.size() >= MAX_KEYS) {
      key = OVERFLOW;
    }
    Window w = windows.computeIfAbsent(key, k -> new Window());
    long held;
    synchronized (w) {
      long now = nanoClock.getAsLong();
      if (w.logged && now - w.lastNanos < intervalNanos) {
        w.held++;
        return;
      }
      held = w.held;
      w.held = 0;
      w.logged = true;
      w.lastNanos = now;
    }
    String line =
        held == 0
            ? format
            : format + " (" + held + " more like it in the last " + seconds() + " s not logged)";
    log.atLevel(level).log(line, args);
  }

  private long seconds() {
    return Math.max(1, Duration.ofNanos(intervalNanos).toSeconds());
  }
}
