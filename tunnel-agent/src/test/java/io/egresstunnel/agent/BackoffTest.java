package io.egresstunnel.agent;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import org.junit.jupiter.api.Test;

class BackoffTest {

  @Test
  void delaysDoubleFromTheMinimumWithJitterUpToTheCap() {
    Backoff b = new Backoff(Duration.ofMillis(100), Duration.ofSeconds(30));
    long ceiling = 100;
    for (int i = 0; i < 20; i++) {
      long d = b.nextDelayMillis();
      assertThat(d).as("attempt " + i).isBetween(ceiling / 2, ceiling);
      ceiling = Math.min(ceiling * 2, 30_000);
    }
    // Capped: every later delay lies in [15 s, 30 s].
    for (int i = 0; i < 100; i++) {
      assertThat(b.nextDelayMillis()).isBetween(15_000L, 30_000L);
    }
  }

  @Test
  void resetStartsOverAndJitterSpreadsAgents() {
    Backoff b = new Backoff(Duration.ofMillis(100), Duration.ofSeconds(30));
    for (int i = 0; i < 10; i++) {
      b.nextDelayMillis();
    }
    b.reset();
    assertThat(b.nextDelayMillis()).isBetween(50L, 100L);
    java.util.Set<Long> seen = new java.util.HashSet<>();
    for (int i = 0; i < 50; i++) {
      Backoff fresh = new Backoff(Duration.ofMillis(1000), Duration.ofSeconds(30));
      seen.add(fresh.nextDelayMillis());
    }
    assertThat(seen).hasSizeGreaterThan(10); // many agents do not reconnect in lockstep
  }
}
