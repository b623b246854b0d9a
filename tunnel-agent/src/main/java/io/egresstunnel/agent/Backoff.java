package io.egresstunnel.agent;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Exponential reconnect backoff with jitter: the n-th delay is drawn from [d/2, d] where d doubles
 * from the minimum up to the maximum. Jitter spreads the reconnects of many agents after a server
 * restart; {@link #reset()} after a successful session.
 */
final class Backoff {
  private final long minMillis;
  private final long maxMillis;
  private int attempt;

  Backoff(Duration min, Duration max) {
    this.minMillis = Math.max(1, min.toMillis());
    this.maxMillis = Math.max(minMillis, max.toMillis());
  }

  /** The next delay, in milliseconds. */
  long nextDelayMillis() {
    long ceiling = minMillis << Math.min(attempt, 30);
    if (ceiling <= 0 || ceiling > maxMillis) {
      ceiling = maxMillis;
    } else {
      attempt++;
    }
    return ThreadLocalRandom.current().nextLong(ceiling / 2, ceiling + 1);
  }

  void reset() {
    attempt = 0;
  }
}
