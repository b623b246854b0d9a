package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.proto.Cidr;
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
          .contains("a bearer token is required");
      assertThat(upgrade(server, "not-the-token-at-all-xxxx", "node-a"))
          .startsWith("HTTP/1.1 401")
          .contains("not valid");
      assertThat(server.registry().agentCount()).isZero();
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
      assertThat(
              MetricsTest.Scrape.of(metrics)
                  .get("egress_tunnel_server_agent_upgrades_refused_total", "code", "401"))
          .isEqualTo(200.0);
      assertThat(lines.list)
          .extracting(ch.qos.logback.classic.spi.ILoggingEvent::getFormattedMessage)
          .filteredOn(m -> m.startsWith("refused agent upgrade"))
          .hasSize(2)
          .anySatisfy(m -> assertThat(m).contains("401"))
          .anySatisfy(m -> assertThat(m).contains("403"));
    } finally {
      logger.detachAppender(lines);
    }
  }

  @Test
  void aTokenMaySpeakOnlyForItsNodes(@TempDir Path dir) throws Exception {
    try (TunnelServer server = server(dir)) {
      assertThat(upgrade(server, TOKEN_A, "node-b"))
          .startsWith("HTTP/1.1 403")
          .contains("may not speak for node node-b");
      assertThat(upgrade(server, TOKEN_A, null)).startsWith("HTTP/1.1 403");
      assertThat(upgrade(server, TOKEN_A, "node-a")).startsWith("HTTP/1.1 101");
      assertThat(upgrade(server, TOKEN_ANY, "node-z")).startsWith("HTTP/1.1 101");
    }
  }

  @Test
  void agentsWithTheirTokenFileConnectAndOthersDoNot(@TempDir Path dir) throws Exception {
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
              tokenA);
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
      }
    }
  }

  private static AgentConfig withToken(AgentConfig c, Path token) {
    return c.withCredentials(c.caCert(), new AgentConfig.Credentials(token, null, null));
  }
}
