package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.routing.EgressMode;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The metrics move as traffic flows: one server and one agent (node-m, 127.0.1.21, pods
 * 127.1.21.0/24), each scraped at {@code /metrics} on its admin listener, the exposition text
 * parsed, and the differences checked. Counts only, never durations.
 */
class MetricsTest {
  private static final String S = "egress_tunnel_server_";
  private static final String A = "egress_tunnel_agent_";
  private static final int CONNECTS = 3;
  private static final long BYTES = 1 << 20; // each way, beyond the 256 KiB window: credit moves

  private static final HttpClient http =
      HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  private static TunnelFixture fx;
  private static TunnelAgent agent;
  private static TestTarget echo;

  @BeforeAll
  static void start() throws Exception {
    InetSocketAddress any = new InetSocketAddress("127.0.0.1", 0);
    fx = new TunnelFixture(ServerConfig.plain(EgressMode.POD, any, any).withAdminListen(any));
    agent =
        fx.startAgent(
            fx.agentConfig("node-m", "127.0.1.21", "127.1.21.0/24", EgressMode.POD)
                .withAdminListen(any));
    echo = new TestTarget("127.1.21.10", 0, TestTarget::echo);
  }

  @AfterAll
  static void stop() throws Exception {
    echo.close();
    fx.close();
  }

  @Test
  void oneAgentIsConnected() throws Exception {
    assertThat(server().get(S + "agents_connected")).isEqualTo(1);
    assertThat(agent().get(A + "sessions_connected")).isEqualTo(1);
    assertThat(agent().get(A + "servers")).isEqualTo(1);
  }

  @Test
  void bothSidesExportBuildInfoWithVersionTransportAndMode() throws Exception {
    String version = io.egresstunnel.proto.metrics.BuildInfo.version();
    assertThat(version).matches("\\d+\\.\\d+\\.\\d+.*");
    String transport = io.egresstunnel.proto.net.Transport.name();
    assertThat(transport).isIn("epoll", "nio");
    String[] labels = {"version", version, "transport", transport, "mode", "pod"};
    assertThat(server().get(S + "build_info", labels)).isEqualTo(1);
    assertThat(agent().get(A + "build_info", labels)).isEqualTo(1);
    assertThat(get(agent.adminAddress(), "/metrics").body())
        .contains("# TYPE " + A + "build_info gauge");
    assertThat(get(fx.server.adminAddress(), "/metrics").body())
        .contains("# TYPE " + S + "build_info gauge");
  }

  @Test
  void successfulConnectsMoveStreamsBytesAndFramesOnBothSides() throws Exception {
    Scrape server0 = server();
    Scrape agent0 = agent();
    for (int i = 0; i < CONNECTS; i++) {
      ConnectClient.Answer a =
          ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
      assertThat(a.status()).isEqualTo(200);
      try (Socket s = a.socket()) {
        Transfers.Result r = Transfers.echo(s, BYTES, i);
        assertThat(r.receivedSha()).isEqualTo(r.sentSha());
      }
    }
    await()
        .atMost(Duration.ofSeconds(20))
        .until(
            () ->
                server().delta(server0, S + "streams_total", "outcome", "ok") == CONNECTS
                    && agent().delta(agent0, A + "streams_total", "outcome", "ok") == CONNECTS);
    Scrape server1 = server();
    Scrape agent1 = agent();

    assertThat(server1.get(S + "streams_open")).isZero();
    assertThat(server1.get(S + "pending_dials")).isZero();
    assertThat(server1.delta(server0, S + "connect_requests_total", "code", "200"))
        .isEqualTo(CONNECTS);
    assertThat(
            server1.delta(
                server0,
                S + "dial_duration_seconds_count",
                "protocol",
                "connect",
                "route",
                "agent",
                "outcome",
                "ok"))
        .isEqualTo(CONNECTS);
    assertThat(
            server1.delta(server0, S + "bytes_total", "route", "agent", "direction", "to_target"))
        .isGreaterThanOrEqualTo(CONNECTS * BYTES);
    assertThat(
            server1.delta(server0, S + "bytes_total", "route", "agent", "direction", "to_client"))
        .isGreaterThanOrEqualTo(CONNECTS * BYTES);
    for (String type : new String[] {"dial", "data", "fin"}) {
      assertThat(server1.delta(server0, S + "frames_total", "direction", "sent", "type", type))
          .as("server sent " + type)
          .isGreaterThanOrEqualTo(CONNECTS);
    }
    for (String type : new String[] {"dial_result", "data", "window_update", "fin"}) {
      assertThat(server1.delta(server0, S + "frames_total", "direction", "received", "type", type))
          .as("server received " + type)
          .isGreaterThanOrEqualTo(CONNECTS);
    }

    assertThat(agent1.get(A + "streams_open")).isZero();
    assertThat(agent1.get(A + "pending_dials")).isZero();
    assertThat(agent1.delta(agent0, A + "dials_total", "outcome", "ok")).isEqualTo(CONNECTS);
    assertThat(agent1.delta(agent0, A + "dial_duration_seconds_count", "outcome", "ok"))
        .isEqualTo(CONNECTS);
    assertThat(agent1.delta(agent0, A + "bytes_total", "direction", "to_target"))
        .isGreaterThanOrEqualTo(CONNECTS * BYTES);
    assertThat(agent1.delta(agent0, A + "bytes_total", "direction", "to_client"))
        .isGreaterThanOrEqualTo(CONNECTS * BYTES);
    for (String type : new String[] {"dial", "data", "window_update", "fin"}) {
      assertThat(agent1.delta(agent0, A + "frames_total", "direction", "received", "type", type))
          .as("agent received " + type)
          .isGreaterThanOrEqualTo(CONNECTS);
    }
    for (String type : new String[] {"dial_result", "data", "window_update", "fin"}) {
      assertThat(agent1.delta(agent0, A + "frames_total", "direction", "sent", "type", type))
          .as("agent sent " + type)
          .isGreaterThanOrEqualTo(CONNECTS);
    }
  }

  @Test
  void connectsToClosedPortsCountRefusedDials() throws Exception {
    Scrape server0 = server();
    Scrape agent0 = agent();
    assertThat(ConnectClient.connect(fx.proxy(), "127.1.21.10:1").status()).isEqualTo(502);
    assertThat(ConnectClient.connect(fx.proxy(), "127.0.0.1:1").status()).isEqualTo(502);
    Scrape server1 = server();
    Scrape agent1 = agent();

    assertThat(
            server1.delta(
                server0,
                S + "dial_failures_total",
                "protocol",
                "connect",
                "route",
                "agent",
                "reason",
                "refused"))
        .isEqualTo(1);
    assertThat(
            server1.delta(
                server0,
                S + "dial_duration_seconds_count",
                "protocol",
                "connect",
                "route",
                "agent",
                "outcome",
                "refused"))
        .isEqualTo(1);
    assertThat(
            server1.delta(
                server0,
                S + "dial_failures_total",
                "protocol",
                "connect",
                "route",
                "direct",
                "reason",
                "refused"))
        .isEqualTo(1);
    assertThat(
            server1.delta(
                server0,
                S + "dial_duration_seconds_count",
                "protocol",
                "connect",
                "route",
                "direct",
                "outcome",
                "refused"))
        .isEqualTo(1);
    assertThat(server1.delta(server0, S + "connect_requests_total", "code", "502")).isEqualTo(2);
    assertThat(server1.delta(server0, S + "streams_total", "outcome", "dial_failed")).isEqualTo(1);
    assertThat(server1.get(S + "pending_dials")).isZero();

    assertThat(agent1.delta(agent0, A + "dials_total", "outcome", "refused")).isEqualTo(1);
    assertThat(agent1.delta(agent0, A + "dial_duration_seconds_count", "outcome", "refused"))
        .isEqualTo(1);
    assertThat(agent1.delta(agent0, A + "streams_total", "outcome", "dial_failed")).isEqualTo(1);
  }

  @Test
  void aStalledReaderRaisesTheCreditStallCounters() throws Exception {
    Scrape agent0 = agent();
    try (TestTarget source =
        new TestTarget(
            "127.1.21.30",
            0,
            s -> {
              byte[] chunk = new byte[64 * 1024];
              OutputStream out = s.getOutputStream();
              for (int i = 0; i < 4096; i++) { // up to 256 MiB, far beyond every buffer
                out.write(chunk);
              }
            })) {
      ConnectClient.Answer stalled =
          ConnectClient.connect(fx.proxy(), source.address() + ":" + source.port());
      assertThat(stalled.status()).isEqualTo(200);
      try (Socket never = stalled.socket()) {
        never.setReceiveBufferSize(64 * 1024);
        await()
            .atMost(Duration.ofSeconds(30))
            .until(
                () -> {
                  Scrape now = agent();
                  return now.delta(agent0, A + "stream_credit_stalls_total") >= 1
                      && now.get(A + "streams_credit_stalled") == 1;
                });
      }
      // The stream ends while stalled: its stall ends with it, and its time is counted.
      await()
          .atMost(Duration.ofSeconds(20))
          .until(
              () -> {
                Scrape now = agent();
                return now.get(A + "streams_credit_stalled") == 0
                    && now.get(A + "streams_open") == 0;
              });
      assertThat(agent().delta(agent0, A + "stream_credit_stall_seconds_total")).isPositive();
    }
  }

  @Test
  void theAgentAdminListenerAnswersHealthReadinessAndUnknownPaths() throws Exception {
    assertThat(get(agent.adminAddress(), "/healthz").statusCode()).isEqualTo(200);
    HttpResponse<String> ready = get(agent.adminAddress(), "/readyz");
    assertThat(ready.statusCode()).isEqualTo(200);
    assertThat(ready.body()).isEqualTo("ok: 1/1 servers\n");
    HttpResponse<String> missing = get(agent.adminAddress(), "/nope");
    assertThat(missing.statusCode()).isEqualTo(404);
    assertThat(missing.body()).contains("/healthz", "/readyz", "/metrics");
    HttpResponse<String> metrics = get(fx.server.adminAddress(), "/metrics");
    assertThat(metrics.headers().firstValue("content-type"))
        .hasValue("text/plain; version=0.0.4; charset=utf-8");
    assertThat(metrics.body()).contains("# TYPE " + S + "dial_duration_seconds histogram");
  }

  // ---- scraping ----------------------------------------------------------------------------

  private static Scrape server() throws Exception {
    return scrape(fx.server.adminAddress());
  }

  private static Scrape agent() throws Exception {
    return scrape(agent.adminAddress());
  }

  private static HttpResponse<String> get(InetSocketAddress admin, String path) throws Exception {
    return http.send(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + admin.getPort() + path))
            .timeout(Duration.ofSeconds(10))
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  private static Scrape scrape(InetSocketAddress admin) throws Exception {
    HttpResponse<String> r = get(admin, "/metrics");
    assertThat(r.statusCode()).isEqualTo(200);
    return Scrape.parse(r.body());
  }

  /** One scrape's samples, keyed by name and labels in name order: {@code name{a="1",b="2"}}. */
  record Scrape(Map<String, Double> samples) {
    private static final Pattern LABEL = Pattern.compile("(\\w+)=\"((?:[^\"\\\\]|\\\\.)*)\"");

    /** What {@code registry} holds now, through the text format. */
    static Scrape of(io.prometheus.metrics.model.registry.PrometheusRegistry registry)
        throws java.io.IOException {
      var out = new java.io.ByteArrayOutputStream();
      io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter.create()
          .write(out, registry.scrape());
      return parse(out.toString(java.nio.charset.StandardCharsets.UTF_8));
    }

    /** Parses the text format: {@code name{labels} value} lines; comments and blanks skipped. */
    static Scrape parse(String text) {
      Map<String, Double> samples = new HashMap<>();
      for (String line : text.split("\n")) {
        if (line.isBlank() || line.startsWith("#")) {
          continue;
        }
        int brace = line.indexOf('{');
        int nameEnd = brace >= 0 ? brace : line.indexOf(' ');
        String name = line.substring(0, nameEnd);
        Map<String, String> labels = new TreeMap<>();
        int valueStart = nameEnd;
        if (brace >= 0) {
          int close = line.lastIndexOf('}');
          Matcher m = LABEL.matcher(line.substring(brace + 1, close));
          while (m.find()) {
            labels.put(m.group(1), m.group(2));
          }
          valueStart = close + 1;
        }
        String value = line.substring(valueStart).trim().split(" ")[0];
        samples.put(key(name, labels), parseValue(value));
      }
      return new Scrape(samples);
    }

    private static double parseValue(String v) {
      return switch (v) {
        case "+Inf" -> Double.POSITIVE_INFINITY;
        case "-Inf" -> Double.NEGATIVE_INFINITY;
        default -> Double.parseDouble(v);
      };
    }

    private static String key(String name, Map<String, String> sortedLabels) {
      if (sortedLabels.isEmpty()) {
        return name;
      }
      StringBuilder b = new StringBuilder(name).append('{');
      sortedLabels.forEach((k, v) -> b.append(k).append("=\"").append(v).append("\","));
      b.setLength(b.length() - 1);
      return b.append('}').toString();
    }

    /** The sample's value; 0 for a series not exposed (yet). */
    double get(String name, String... labelPairs) {
      Map<String, String> labels = new TreeMap<>();
      for (int i = 0; i < labelPairs.length; i += 2) {
        labels.put(labelPairs[i], labelPairs[i + 1]);
      }
      return samples.getOrDefault(key(name, labels), 0.0);
    }

    /** How much the sample grew since {@code before}. */
    double delta(Scrape before, String name, String... labelPairs) {
      return get(name, labelPairs) - before.get(name, labelPairs);
    }
  }
}
