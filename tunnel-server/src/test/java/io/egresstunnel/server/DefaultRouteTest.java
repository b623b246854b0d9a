package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.agent.policy.AllowRule;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.admin.ServerStatus;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Targets that no node owns (a Service's ClusterIP, a webhook's name, an external address): {@code
 * --default-route} sends them through the agents that offer one, spread over them and failing over,
 * or directly, or refuses them; networks that an agent serves route to it in every mode. Targets
 * live on 127.8.0.0/16, which no node's pod CIDR covers; the agents allow it.
 */
class DefaultRouteTest {
  private static final HttpClient http = HttpClient.newHttpClient();

  private static TunnelFixture server(ServerConfig.DefaultRoute policy, EgressMode mode)
      throws Exception {
    ServerConfig c =
        ServerConfig.plain(
                mode, new InetSocketAddress("127.0.0.1", 0), new InetSocketAddress("127.0.0.1", 0))
            .withAdminListen(new InetSocketAddress("127.0.0.1", 0));
    return new TunnelFixture(c.withRouting(c.routing().withDefaultRoute(policy)));
  }

  private static AgentConfig carrier(TunnelFixture fx, String node, String ip) {
    return fx.agentConfig(node, ip, null, EgressMode.POD)
        .withAllow(List.of(AllowRule.parse("127.8.0.0/16")))
        .withEgress(new AgentConfig.Egress(true, List.of(), List.of()));
  }

  /** CONNECT, one byte each way through the echo, close; the status. */
  private static int echoOnce(TunnelFixture fx, TestTarget echo) throws Exception {
    ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
    if (a.status() != 200) {
      return a.status();
    }
    try (Socket s = a.socket()) {
      s.getOutputStream().write(42);
      InputStream in = s.getInputStream();
      assertThat(in.read()).isEqualTo(42);
    }
    return 200;
  }

  private static long opened(TunnelFixture fx, String node) {
    return fx.session(node).streamsOpened();
  }

  @Test
  void autoSpreadsDialsOverTheOfferingAgentsAndKeepsWorkingWhenOneIsGone() throws Exception {
    try (TunnelFixture fx = server(ServerConfig.DefaultRoute.AUTO, EgressMode.POD);
        TestTarget echo = new TestTarget("127.8.9.10", 0, TestTarget::echo)) {
      TunnelAgent a = fx.startAgent(carrier(fx, "node-a", "127.0.8.1"));
      fx.startAgent(carrier(fx, "node-b", "127.0.8.2"));
      String target = echo.address() + ":" + echo.port();
      assertThat(ServerStatus.collect(fx.server).get(10, TimeUnit.SECONDS).agents())
          .extracting(ServerStatus.Agent::carries)
          .containsExactly("default route", "default route");
      assertThat(routez(fx, target))
          .matches(
              "via node-[ab] \\(default route: 2 eligible agent\\(s\\), offering: node-a, node-b\\)");

      for (int i = 0; i < 200; i++) {
        assertThat(echoOnce(fx, echo)).isEqualTo(200);
      }
      long viaA = opened(fx, "node-a");
      long viaB = opened(fx, "node-b");
      assertThat(viaA + viaB).isEqualTo(200);
      assertThat(viaA).as("dials through node-a").isGreaterThanOrEqualTo(40);
      assertThat(viaB).as("dials through node-b").isGreaterThanOrEqualTo(40);

      a.close();
      await().atMost(Duration.ofSeconds(10)).until(() -> fx.session("node-a") == null);
      for (int i = 0; i < 20; i++) {
        assertThat(echoOnce(fx, echo)).isEqualTo(200);
      }
      assertThat(opened(fx, "node-b")).isEqualTo(viaB + 20);
      assertThat(
              MetricsTest.Scrape.parse(metrics(fx))
                  .get("egress_tunnel_server_routes_total", "kind", "default_route"))
          .isEqualTo(220.0);
    }
  }

  @Test
  void aFullAgentFailsOverToTheNextOne() throws Exception {
    try (TunnelFixture fx = server(ServerConfig.DefaultRoute.AGENTS, EgressMode.POD);
        TestTarget echo = new TestTarget("127.8.9.11", 0, TestTarget::echo)) {
      // node-a takes one stream at most (its own limit, which the server does not know).
      AgentConfig full = carrier(fx, "node-a", "127.0.8.1");
      fx.startAgent(full.withLimits(full.limits().withMaxStreams(1)));
      fx.startAgent(carrier(fx, "node-b", "127.0.8.2"));
      // Streams held open until node-a has its one and node-b at least two: node-a then looks
      // the less loaded to the server.
      List<Socket> held = new ArrayList<>();
      while (fx.streams("node-a").size() < 1 || fx.streams("node-b").size() < 2) {
        ConnectClient.Answer ok =
            ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
        assertThat(ok.status()).isEqualTo(200);
        held.add(ok.socket());
      }
      assertThat(fx.streams("node-a")).hasSize(1);
      long beforeA = opened(fx, "node-a");
      long beforeB = opened(fx, "node-b");
      for (int i = 0; i < 10; i++) {
        assertThat(echoOnce(fx, echo)).isEqualTo(200);
      }
      // Each new dial tried node-a first (the one with fewer streams), was refused as full, and
      // went through node-b.
      assertThat(opened(fx, "node-a")).isEqualTo(beforeA + 10);
      assertThat(opened(fx, "node-b")).isEqualTo(beforeB + 10);
      for (Socket s : held) {
        s.close();
      }
    }
  }

  @Test
  void rejectAnswers503AtOnceAndDirectDialsItself() throws Exception {
    try (TunnelFixture fx = server(ServerConfig.DefaultRoute.REJECT, EgressMode.AGENT);
        TestTarget echo = new TestTarget("127.8.9.12", 0, TestTarget::echo)) {
      fx.startAgent(carrier(fx, "node-a", "127.0.8.1"));
      String target = echo.address() + ":" + echo.port();
      ConnectClient.Answer refused = ConnectClient.connect(fx.proxy(), target);
      assertThat(refused.status()).isEqualTo(503);
      assertThat(refused.body())
          .contains(target + " belongs to no node and no agent serves it (--default-route reject)");
      assertThat(routez(fx, target)).startsWith("rejected (");
      assertThat(opened(fx, "node-a")).isZero();
    }
    try (TunnelFixture fx = server(ServerConfig.DefaultRoute.DIRECT, EgressMode.AGENT);
        TestTarget echo = new TestTarget("127.8.9.12", 0, TestTarget::echo)) {
      fx.startAgent(carrier(fx, "node-a", "127.0.8.1"));
      assertThat(echoOnce(fx, echo)).isEqualTo(200);
      assertThat(opened(fx, "node-a")).isZero();
      assertThat(routez(fx, echo.address() + ":" + echo.port()))
          .isEqualTo("direct (no node owns it; --default-route direct)");
    }
  }

  /**
   * auto: direct while no agent ever offered a default route; once one did, its leaving gives 503
   * (for the departed-node TTL), never a silent direct dial.
   */
  @Test
  void autoIsDirectUntilAnAgentOffersAndThen503WhenItLeaves() throws Exception {
    try (TunnelFixture fx = server(ServerConfig.DefaultRoute.AUTO, EgressMode.POD);
        TestTarget echo = new TestTarget("127.8.9.13", 0, TestTarget::echo)) {
      String target = echo.address() + ":" + echo.port();
      assertThat(routez(fx, target))
          .isEqualTo(
              "direct (no node owns it; no agent offers a default route (--default-route auto))");
      assertThat(echoOnce(fx, echo)).isEqualTo(200);
      TunnelAgent a = fx.startAgent(carrier(fx, "node-a", "127.0.8.1"));
      assertThat(echoOnce(fx, echo)).isEqualTo(200);
      assertThat(opened(fx, "node-a")).isEqualTo(1);
      a.close();
      await().atMost(Duration.ofSeconds(10)).until(() -> fx.session("node-a") == null);
      ConnectClient.Answer gone = ConnectClient.connect(fx.proxy(), target);
      assertThat(gone.status()).isEqualTo(503);
      assertThat(gone.body()).contains("no agent offering a default route is connected");
    }
  }

  /**
   * A network an agent serves routes to it in agent mode too (where a pod address would go to the
   * default), a served host name as well; the agent refuses a served name that resolves to loopback
   * with 403 and says why.
   */
  @Test
  void servedNetworksRouteToTheirAgentAndItsPolicyStillApplies() throws Exception {
    try (TunnelFixture fx = server(ServerConfig.DefaultRoute.REJECT, EgressMode.AGENT);
        TestTarget db = new TestTarget("127.8.50.7", 0, TestTarget::echo)) {
      fx.startAgent(
          fx.agentConfig("site-gw", "127.0.8.3", null, EgressMode.AGENT)
              .withEgress(
                  new AgentConfig.Egress(
                      false, List.of(Cidr.parse("127.8.50.0/24")), List.of("localhost"))));
      String target = db.address() + ":" + db.port();
      assertThat(routez(fx, target)).isEqualTo("via site-gw (a network it serves)");
      assertThat(ServerStatus.toTable(ServerStatus.collect(fx.server).get(10, TimeUnit.SECONDS)))
          .contains("127.8.50.0/24, localhost");
      assertThat(echoOnce(fx, db)).isEqualTo(200);
      assertThat(opened(fx, "site-gw")).isEqualTo(1);

      assertThat(routez(fx, "LOCALHOST:" + db.port()))
          .isEqualTo("via site-gw (a network it serves)");
      ConnectClient.Answer refused = ConnectClient.connect(fx.proxy(), "localhost:" + db.port());
      assertThat(refused.status()).isEqualTo(403);
      assertThat(refused.body()).contains("is a loopback address, which a served host never dials");
      // Anything else is still the default route's: rejected here.
      assertThat(ConnectClient.connect(fx.proxy(), "127.8.51.7:80").status()).isEqualTo(503);
    }
  }

  private static String routez(TunnelFixture fx, String target) throws Exception {
    return get(fx, "/routez?target=" + target).trim();
  }

  private static String metrics(TunnelFixture fx) throws Exception {
    return get(fx, "/metrics");
  }

  private static String get(TunnelFixture fx, String path) throws Exception {
    HttpResponse<String> r =
        http.send(
            HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + fx.server.adminAddress().getPort() + path))
                .timeout(Duration.ofSeconds(10))
                .build(),
            HttpResponse.BodyHandlers.ofString());
    assertThat(r.statusCode()).isEqualTo(200);
    return r.body();
  }
}
