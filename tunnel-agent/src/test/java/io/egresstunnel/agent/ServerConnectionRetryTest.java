package io.egresstunnel.agent;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.proto.AgentHello;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.net.TargetDialer;
import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.routing.EgressMode;
import io.netty.channel.EventLoopGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import java.net.InetAddress;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The agent's connect loop keeps trying whatever an attempt throws. */
class ServerConnectionRetryTest {

  @Test
  void anAttemptThatThrowsIsRetriedWithBackoff() throws Exception {
    AgentConfig config =
        AgentConfig.simple(
            URI.create("ws://127.0.0.1:1"),
            "node-a",
            List.of(InetAddress.getByName("127.0.0.2")),
            EgressMode.AGENT);
    PrometheusRegistry registry = new PrometheusRegistry();
    AgentMetrics metrics = new AgentMetrics(registry, () -> 0, () -> 1, "agent");
    EventLoopGroup group = Transport.newGroup(1, new DefaultThreadFactory("retry-test", true));
    TargetDialer dialer = new TargetDialer(1);
    AgentHello hello =
        new AgentHello(
            Limits.MIN_VERSION,
            Limits.MAX_VERSION,
            0,
            Limits.DEFAULT_INITIAL_WINDOW,
            Limits.DEFAULT_MAX_FRAME_PAYLOAD,
            10250,
            "node-a",
            List.of(),
            List.of());
    // A URL AgentConfig would refuse: Netty's connect throws at once instead of failing a future,
    // the way an unforeseen fault in an attempt would.
    ServerConnection connection =
        new ServerConnection(
            URI.create("ws://127.0.0.1:99999"),
            config,
            group,
            null,
            hello,
            new DialHandler(() -> null, dialer, Duration.ofSeconds(1)),
            new ServerSet(1),
            () -> {},
            metrics);
    try {
      connection.start();
      await()
          .atMost(Duration.ofSeconds(30))
          .untilAsserted(() -> assertThat(reconnects(registry)).isGreaterThanOrEqualTo(3));
      assertThat(connection.failure()).isNull();
    } finally {
      connection.stop();
      group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
      dialer.close();
    }
  }

  private static double reconnects(PrometheusRegistry registry) {
    for (MetricSnapshot s : registry.scrape()) {
      if (s.getMetadata().getPrometheusName().startsWith("egress_tunnel_agent_reconnects")) {
        return ((CounterSnapshot) s).getDataPoints().get(0).getValue();
      }
    }
    return 0;
  }
}
