package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.proto.session.UpgradeRefusal;
import io.egresstunnel.routing.EgressMode;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Agents authenticate with a bearer token at the upgrade, before any frame is read. */
class AgentAuthenticationTest {
  private static final String TOKEN_A = "token-for-node-a-0123456789";
  private static final String TOKEN_ANY = "token-for-any-node-abcdefghij";

  private static TunnelServer server(Path dir) throws Exception {
    Path tokens = dir.resolve("tokens");
    Files.writeString(tokens, "# agents\n" + TOKEN_A + " node-a\n\n" + TOKEN_ANY + "\n");
    return new TunnelServer(
            ServerConfig.plain(
                    EgressMode.AGENT,
                    new InetSocketAddress("127.0.0.1", 0),
                    new InetSocketAddress("127.0.0.1", 0))
                .withAgentTokenFile(tokens))
        .start();
  }

  /** A websocket upgrade as an agent sends it; returns the status line and body. */
  static String upgrade(TunnelServer server, String token, String node) throws Exception {
    try (Socket s = new Socket()) {
      s.connect(server.agentAddress(), 5_000);
      s.setSoTimeout(10_000);
      return upgrade(s, token, node);
    }
  }

  /** The same over a connected socket (plain or TLS). */
  static String upgrade(Socket s, String token, String node) throws Exception {
    String request =
        "GET /v1/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + (node == null ? "" : "X-Egress-Tunnel-Node: " + node + "\r\n")
            + (token == null ? "" : "Authorization: Bearer " + token + "\r\n")
            + "\r\n";
    s.getOutputStream().write(request.getBytes(StandardCharsets.US_ASCII));
    s.getOutputStream().flush();
    InputStream in = s.getInputStream();
    byte[] buf = new byte[4096];
    int n = in.read(buf);
    return new String(buf, 0, Math.max(n, 0), StandardCharsets.UTF_8);
  }

  @Test
  void missingOrWrongTokenGets401AndNoSession(@TempDir Path dir) throws Exception {
    try (TunnelServer server = server(dir)) {
      assertThat(upgrade(server, null, "node-a"))
          .startsWith("HTTP/1.1 401")
          .containsIgnoringCase("X-Egress-Tunnel-Refusal: no_credentials\r\n")
          .contains("a bearer token is required");
      assertThat(upgrade(server, "not-the-token-at-all-xxxx", "node-a"))
          .startsWith("HTTP/1.1 401")
          .containsIgnoringCase("X-Egress-Tunnel-Refusal: bad_token\r\n")
          .contains("not valid");
      assertThat(server.registry().agentCount()).isZero();
      MetricsTest.Scrape metrics = MetricsTest.Scrape.of(server.metrics().registry());
      String refused = "egress_tunnel_server_agent_upgrades_refused_total";
      assertThat(metrics.get(refused, "code", "401", "reason", "no_credentials")).isEqualTo(1);
      assertThat(metrics.get(refused, "code", "401", "reason", "bad_token")).isEqualTo(1);
      assertThat(metrics.samples())
          .containsEntry(refused + "{code=\"503\",reason=\"draining\"}", 0.0);
    }
  }

  /** A retrying agent with a wrong token: every refusal counted, the log not flooded. */
  @Test
  void aFloodOfRefusedUpgradesIsCountedAndLoggedOnce(@TempDir Path dir) throws Exception {
    ch.qos.logback.classic.Logger logger =
        (ch.qos.logback.classic.Logger)
            org.slf4j.LoggerFactory.getLogger(io.egresstunnel.server.agents.AgentAuthHandler.class);
    ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> lines =
        new ch.qos.logback.core.read.ListAppender<>();
    lines.start();
    logger.addAppender(lines);
    io.prometheus.metrics.model.registry.PrometheusRegistry metrics =
        new io.prometheus.metrics.model.registry.PrometheusRegistry();
    Path tokens = dir.resolve("tokens");
    Files.writeString(tokens, TOKEN_A + " node-a\n");
    try (TunnelServer server =
        new TunnelServer(
                ServerConfig.plain(
                        EgressMode.AGENT,
                        new InetSocketAddress("127.0.0.1", 0),
                        new InetSocketAddress("127.0.0.1", 0))
                    .withAgentTokenFile(tokens),
                metrics)
            .start()) {
      for (int i = 0; i < 200; i++) {
        assertThat(upgrade(server, "not-the-token-at-all-xxxx", "node-a"))
            .startsWith("HTTP/1.1 401");
      }
      assertThat(upgrade(server, TOKEN_A, "node-b")).startsWith("HTTP/1.1 403");
      MetricsTest.Scrape scrape = MetricsTest.Scrape.of(metrics);
      assertThat(
              scrape.get(
                  "egress_tunnel_server_agent_upgrades_refused_total",
                  "code",
                  "401",
                  "reason",
                  "bad_token"))
          .isEqualTo(200.0);
      assertThat(
              scrape.get(
                  "egress_tunnel_server_agent_upgrades_refused_total",
                  "code",
                  "403",
                  "reason",
                  "wrong_node"))
          .isEqualTo(1.0);
      assertThat(lines.list)
          .extracting(ch.qos.logback.classic.spi.ILoggingEvent::getFormattedMessage)
          .filteredOn(m -> m.startsWith("refused agent upgrade"))
          .hasSize(2)
          .anySatisfy(m -> assertThat(m).contains("401 bad_token: the bearer token is not valid"))
          .anySatisfy(
              m ->
                  assertThat(m)
                      .contains("403 wrong_node: this token may not speak for node node-b"));
    } finally {
      logger.detachAppender(lines);
    }
  }

  @Test
  void aTokenMaySpeakOnlyForItsNodes(@TempDir Path dir) throws Exception {
    try (TunnelServer server = server(dir)) {
      assertThat(upgrade(server, TOKEN_A, "node-b"))
          .startsWith("HTTP/1.1 403")
          .containsIgnoringCase("X-Egress-Tunnel-Refusal: wrong_node\r\n")
          .contains("may not speak for node node-b");
      assertThat(upgrade(server, TOKEN_A, null))
          .startsWith("HTTP/1.1 403")
          .containsIgnoringCase("X-Egress-Tunnel-Refusal: no_node\r\n");
      assertThat(upgrade(server, TOKEN_A, "node-a")).startsWith("HTTP/1.1 101");
      assertThat(upgrade(server, TOKEN_ANY, "node-z")).startsWith("HTTP/1.1 101");
    }
  }

  /**
   * A refused agent learns why: the server's reason reaches its log (at WARN, once a minute however
   * often it retries), its metrics, {@link TunnelAgent#lastRefusal()} and its {@code /readyz}.
   */
  @Test
  void agentsWithTheirTokenFileConnectAndOthersDoNot(@TempDir Path dir) throws Exception {
    ch.qos.logback.classic.Logger agentLog =
        (ch.qos.logback.classic.Logger)
            org.slf4j.LoggerFactory.getLogger("io.egresstunnel.agent.ServerConnection");
    ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> lines =
        new ch.qos.logback.core.read.ListAppender<>();
    lines.start();
    agentLog.addAppender(lines);
    try (TunnelServer server = server(dir)) {
      Path tokenA = Files.writeString(dir.resolve("a.token"), TOKEN_A + "\n");
      URI url = URI.create("ws://127.0.0.1:" + server.agentAddress().getPort());
      AgentConfig a =
          withToken(
              AgentConfig.simple(
                  url, "node-a", List.of(Cidr.parseAddress("127.0.7.1")), EgressMode.AGENT),
              tokenA);
      AgentConfig impostor =
          withToken(
                  AgentConfig.simple(
                      url, "node-b", List.of(Cidr.parseAddress("127.0.7.2")), EgressMode.AGENT),
                  tokenA)
              .withAdminListen(new InetSocketAddress("127.0.0.1", 0));
      AgentConfig anonymous =
          AgentConfig.simple(
              url, "node-c", List.of(Cidr.parseAddress("127.0.7.3")), EgressMode.AGENT);
      try (TunnelAgent good = new TunnelAgent(a).start();
          TunnelAgent bad = new TunnelAgent(impostor).start();
          TunnelAgent none = new TunnelAgent(anonymous).start()) {
        await()
            .atMost(Duration.ofSeconds(20))
            .until(() -> server.registry().session("node-a") != null);
        // The others keep retrying with backoff and never get a session.
        await()
            .during(Duration.ofSeconds(1))
            .atMost(Duration.ofSeconds(5))
            .until(() -> server.registry().agentCount() == 1);
        assertThat(bad.sessions()).isEmpty();
        assertThat(none.sessions()).isEmpty();

        String agentRefused = "egress_tunnel_agent_upgrades_refused_total";
        await()
            .atMost(Duration.ofSeconds(20))
            .until(
                () ->
                    MetricsTest.Scrape.of(bad.metrics().registry())
                                .get(agentRefused, "reason", "wrong_node")
                            >= 3
                        && MetricsTest.Scrape.of(none.metrics().registry())
                                .get(agentRefused, "reason", "no_credentials")
                            >= 3);
        assertThat(good.lastRefusal()).isNull();
        assertThat(bad.lastRefusal().code()).isEqualTo(403);
        assertThat(bad.lastRefusal().reason()).isEqualTo(UpgradeRefusal.WRONG_NODE);
        assertThat(bad.lastRefusal().message())
            .isEqualTo("this token may not speak for node node-b");
        assertThat(none.lastRefusal().reason()).isEqualTo(UpgradeRefusal.NO_CREDENTIALS);
        assertThat(none.lastRefusal().toString())
            .isEqualTo("401 no_credentials: a bearer token is required");

        // Each refused agent retried at least three times and logged it once, at WARN.
        assertThat(lines.list)
            .filteredOn(e -> e.getFormattedMessage().contains("refused the tunnel for node node-b"))
            .singleElement()
            .satisfies(
                e -> {
                  assertThat(e.getLevel()).isEqualTo(ch.qos.logback.classic.Level.WARN);
                  assertThat(e.getFormattedMessage())
                      .contains("403 (wrong_node): this token may not speak for node node-b");
                });
        assertThat(lines.list)
            .filteredOn(e -> e.getFormattedMessage().contains("refused the tunnel for node node-c"))
            .hasSize(1);

        java.net.http.HttpResponse<String> ready =
            java.net.http.HttpClient.newHttpClient()
                .send(
                    java.net.http.HttpRequest.newBuilder(
                            URI.create(
                                "http://127.0.0.1:" + bad.adminAddress().getPort() + "/readyz"))
                        .build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString());
        assertThat(ready.statusCode()).isEqualTo(503);
        assertThat(ready.body())
            .startsWith("not ready: 0/1 servers; " + url)
            .contains(
                "refused the tunnel: 403 wrong_node: this token may not speak for node node-b");
      }
    } finally {
      agentLog.detachAppender(lines);
    }
  }

  private static AgentConfig withToken(AgentConfig c, Path token) {
    return c.withCredentials(c.caCert(), new AgentConfig.Credentials(token, null, null));
  }
}
