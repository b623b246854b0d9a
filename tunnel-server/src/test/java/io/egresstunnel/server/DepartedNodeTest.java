package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.routing.Route;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * A node whose agent has left, with routes from agent hellos alone: its kubelet targets answer 503
 * at once and are never dialled around the tunnel, until the node is forgotten (TTL, cap), or
 * unless --fallback-direct says to dial them directly.
 */
class DepartedNodeTest {
  private static final HttpClient http = HttpClient.newHttpClient();

  private static ServerConfig config(ServerConfig.Routing routing) {
    return ServerConfig.plain(
            EgressMode.AGENT,
            new InetSocketAddress("127.0.0.1", 0),
            new InetSocketAddress("127.0.0.1", 0))
        .withAdminListen(new InetSocketAddress("127.0.0.1", 0))
        .withRouting(routing);
  }

  /**
   * Starts an agent for {@code node} at {@code ip} whose kubelet is {@code kubelet}, then stops it.
   */
  private static void agentComesAndGoes(TunnelFixture fx, String node, TestTarget kubelet)
      throws Exception {
    AgentConfig c = fx.agentConfig(node, kubelet.address(), null, EgressMode.AGENT);
    TunnelAgent agent = fx.startAgent(c.withKubeletPort(kubelet.port()));
    agent.close();
    fx.agents.remove(agent);
    await().atMost(Duration.ofSeconds(10)).until(() -> fx.session(node) == null);
  }

  @Test
  void aNodeWhoseAgentLeftAnswers503AndIsNeverDialledDirectly() throws Exception {
    try (TunnelFixture fx = new TunnelFixture(config(ServerConfig.Routing.defaults()));
        TestTarget kubelet = new TestTarget("127.0.5.1", 0, TestTarget::echo)) {
      agentComesAndGoes(fx, "node-gone", kubelet);
      String target = kubelet.address() + ":" + kubelet.port();

      ConnectClient.Answer answer = ConnectClient.connect(fx.proxy(), target);
      assertThat(answer.status()).isEqualTo(503);
      assertThat(answer.body()).contains("no agent connected for node node-gone");
      assertThat(routez(fx, target)).isEqualTo("no-agent node-gone");
      // By name too, as the apiserver dials a node's kubelet.
      assertThat(ConnectClient.connect(fx.proxy(), "node-gone:" + kubelet.port()).status())
          .isEqualTo(503);
      assertThat(kubelet.accepted.get()).isZero();
      assertThat(fx.server.registry().departedNodes()).isEqualTo(1);
    }
  }

  @Test
  void aDepartedNodeIsForgottenAfterItsTtl() throws Exception {
    try (TunnelFixture fx =
            new TunnelFixture(
                config(new ServerConfig.Routing(Duration.ofMillis(300), 100, false)));
        TestTarget kubelet = new TestTarget("127.0.5.2", 0, TestTarget::echo)) {
      agentComesAndGoes(fx, "node-ttl", kubelet);
      assertThat(fx.server.routes().route(kubelet.address(), kubelet.port()))
          .isEqualTo(new Route.ViaAgent("node-ttl"));
      await()
          .atMost(Duration.ofSeconds(10))
          .until(
              () -> fx.server.routes().route(kubelet.address(), kubelet.port()) == Route.DEFAULT);
      assertThat(fx.server.registry().departedNodes()).isZero();
    }
  }

  @Test
  void theCapForgetsTheLongestGoneFirstAndAReturningAgentIsKnownAgain() throws Exception {
    try (TunnelFixture fx =
            new TunnelFixture(config(new ServerConfig.Routing(Duration.ofHours(1), 1, false)));
        TestTarget first = new TestTarget("127.0.5.3", 0, TestTarget::echo);
        TestTarget second = new TestTarget("127.0.5.4", 0, TestTarget::echo)) {
      agentComesAndGoes(fx, "node-first", first);
      agentComesAndGoes(fx, "node-second", second);
      await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> fx.server.routes().route(first.address(), first.port()) == Route.DEFAULT);
      assertThat(fx.server.routes().route(second.address(), second.port()))
          .isEqualTo(new Route.ViaAgent("node-second"));

      // The first node's agent comes back: it is routed through its agent again.
      AgentConfig c = fx.agentConfig("node-first", first.address(), null, EgressMode.AGENT);
      fx.startAgent(c.withKubeletPort(first.port()));
      ConnectClient.Answer via =
          ConnectClient.connect(fx.proxy(), first.address() + ":" + first.port());
      assertThat(via.status()).isEqualTo(200);
      via.socket().close();
      assertThat(routez(fx, first.address() + ":" + first.port())).isEqualTo("via node-first");
    }
  }

  @Test
  void fallbackDirectDialsTheNodeItselfAndCountsIt() throws Exception {
    PrometheusRegistry metrics = new PrometheusRegistry();
    ServerConfig cfg = config(new ServerConfig.Routing(Duration.ofHours(1), 100, true));
    try (TunnelFixture fx = new TunnelFixture(new TunnelServer(cfg, metrics).start());
        TestTarget kubelet = new TestTarget("127.0.5.5", 0, TestTarget::echo)) {
      agentComesAndGoes(fx, "node-fallback", kubelet);
      String target = kubelet.address() + ":" + kubelet.port();

      assertThat(routez(fx, target)).isEqualTo("direct (fallback: no-agent node-fallback)");
      ConnectClient.Answer answer = ConnectClient.connect(fx.proxy(), target);
      assertThat(answer.status()).isEqualTo(200);
      answer.socket().close();
      // The kernel accepted the dial before the target's thread took it: wait for that.
      await().atMost(Duration.ofSeconds(10)).until(() -> kubelet.accepted.get() == 1);
      assertThat(counter(metrics, "egress_tunnel_server_fallback_direct_dials")).isEqualTo(1.0);
    }
  }

  private static double counter(PrometheusRegistry registry, String name) {
    return registry.scrape(name::equals).stream()
        .filter(CounterSnapshot.class::isInstance)
        .map(CounterSnapshot.class::cast)
        .flatMap(s -> s.getDataPoints().stream())
        .mapToDouble(CounterSnapshot.CounterDataPointSnapshot::getValue)
        .sum();
  }

  private static String routez(TunnelFixture fx, String target) throws Exception {
    HttpResponse<String> r =
        http.send(
            HttpRequest.newBuilder(
                    URI.create(
                        "http://127.0.0.1:"
                            + fx.server.adminAddress().getPort()
                            + "/routez?target="
                            + target))
                .timeout(Duration.ofSeconds(10))
                .build(),
            HttpResponse.BodyHandlers.ofString());
    assertThat(r.statusCode()).isEqualTo(200);
    return r.body().trim();
  }
}
