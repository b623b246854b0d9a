package io.egresstunnel.agent;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.routing.EgressMode;
import java.io.RandomAccessFile;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The agent's /healthz: 200 while it keeps retrying, 503 once a tunnel cannot go on. */
class TunnelAgentHealthTest {
  @TempDir Path dir;

  @Test
  void healthyWhileRetryingUnhealthyOnceATunnelCannotRetry() throws Exception {
    int closed;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
      closed = s.getLocalPort(); // nothing listens here afterwards: every attempt is refused
    }
    Path token = Files.writeString(dir.resolve("token"), "a-token-of-some-length\n");
    AgentConfig config =
        AgentConfig.simple(
                URI.create("ws://127.0.0.1:" + closed),
                "node-a",
                List.of(InetAddress.getByName("127.0.0.2")),
                EgressMode.AGENT)
            .withCredentials(null, new AgentConfig.Credentials(token, null, null))
            .withAdminListen(new InetSocketAddress("127.0.0.1", 0));
    HttpClient http = HttpClient.newHttpClient();
    try (TunnelAgent agent = new TunnelAgent(config).start()) {
      URI healthz = URI.create("http://127.0.0.1:" + agent.adminAddress().getPort() + "/healthz");
      assertThat(get(http, healthz).statusCode()).isEqualTo(200);

      // A token file too large to read makes the next attempt fail with an Error (out of
      // memory), which no retry can be trusted to survive: the agent says it is broken.
      try (RandomAccessFile f = new RandomAccessFile(token.toFile(), "rw")) {
        f.setLength(3L << 30); // sparse: takes no disk
      }
      await()
          .atMost(Duration.ofSeconds(30))
          .untilAsserted(
              () -> {
                HttpResponse<String> r = get(http, healthz);
                assertThat(r.statusCode()).isEqualTo(503);
                assertThat(r.body()).startsWith("unhealthy: tunnel to ws://127.0.0.1:" + closed);
              });
      assertThat(agent.failure()).contains("OutOfMemoryError");
    }
  }

  private static HttpResponse<String> get(HttpClient http, URI uri) throws Exception {
    return http.send(
        HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(5)).build(),
        HttpResponse.BodyHandlers.ofString());
  }
}
