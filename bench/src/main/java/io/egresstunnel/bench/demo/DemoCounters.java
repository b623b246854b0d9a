package io.egresstunnel.bench.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What the running server and agents counted, read from their admin listeners: the server's and
 * each agent's {@code /metrics} (Prometheus text), and the server's {@code /status} for its bytes
 * per agent session (its metrics have no node label). The demo reads them before and after each
 * request to show which process dialled it, and at the end to show where the bytes went.
 */
final class DemoCounters {
  private static final Pattern LABEL = Pattern.compile("(\\w+)=\"((?:[^\"\\\\]|\\\\.)*)\"");
  private static final ObjectMapper JSON = new ObjectMapper();

  private final HttpClient http =
      HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  private final String serverAdmin;
  private final Map<String, String> agentAdmins;

  /**
   * @param serverAdmin the server's admin listener, host:port
   * @param agentAdmins each node's agent admin listener, host:port, by node name
   */
  DemoCounters(String serverAdmin, Map<String, String> agentAdmins) {
    this.serverAdmin = serverAdmin;
    this.agentAdmins = new LinkedHashMap<>(agentAdmins);
  }

  /** Payload bytes one way and the other. */
  record Bytes(long toTarget, long toClient) {
    long total() {
      return toTarget + toClient;
    }
  }

  /**
   * One reading of every counter the demo shows.
   *
   * @param serverViaAgents {@code egress_tunnel_server_bytes_total{route="agent"}}
   * @param serverDirect {@code egress_tunnel_server_bytes_total{route="direct"}}
   * @param serverDirectDials {@code
   *     egress_tunnel_server_dial_duration_seconds_count{route="direct"}}
   * @param serverPerNode the server's {@code /status}: bytes to and from each node's agent session,
   *     as to target and to client
   * @param agentBytes each agent's {@code egress_tunnel_agent_bytes_total}, by node
   * @param agentDials each agent's {@code egress_tunnel_agent_dials_total}, all outcomes, by node
   */
  record Snapshot(
      Bytes serverViaAgents,
      Bytes serverDirect,
      long serverDirectDials,
      Map<String, Bytes> serverPerNode,
      Map<String, Bytes> agentBytes,
      Map<String, Long> agentDials) {

    /** The processes whose dial counters moved between {@code before} and this: nodes or direct. */
    String dialledBy(Snapshot before) {
      StringBuilder who = new StringBuilder();
      agentDials.forEach(
          (node, dials) -> {
            if (dials > before.agentDials.getOrDefault(node, 0L)) {
              who.append(who.length() == 0 ? "" : "+").append(node);
            }
          });
      if (serverDirectDials > before.serverDirectDials) {
        who.append(who.length() == 0 ? "" : "+").append("direct");
      }
      return who.length() == 0 ? "nobody" : who.toString();
    }
  }

  Snapshot read() throws IOException, InterruptedException {
    String server = get(serverAdmin, "/metrics");
    Map<String, Bytes> agentBytes = new LinkedHashMap<>();
    Map<String, Long> agentDials = new LinkedHashMap<>();
    for (Map.Entry<String, String> a : agentAdmins.entrySet()) {
      String text = get(a.getValue(), "/metrics");
      agentBytes.put(
          a.getKey(),
          new Bytes(
              sum(text, "egress_tunnel_agent_bytes_total", Map.of("direction", "to_target")),
              sum(text, "egress_tunnel_agent_bytes_total", Map.of("direction", "to_client"))));
      agentDials.put(a.getKey(), sum(text, "egress_tunnel_agent_dials_total", Map.of()));
    }
    Map<String, Bytes> perNode = new LinkedHashMap<>();
    for (JsonNode agent : JSON.readTree(get(serverAdmin, "/status")).path("agents")) {
      String node = agent.path("node").asText();
      Bytes b =
          new Bytes(agent.path("bytesToAgent").asLong(), agent.path("bytesFromAgent").asLong());
      perNode.merge(node, b, (x, y) -> new Bytes(x.toTarget + y.toTarget, x.toClient + y.toClient));
    }
    return new Snapshot(
        serverBytes(server, "agent"),
        serverBytes(server, "direct"),
        sum(server, "egress_tunnel_server_dial_duration_seconds_count", Map.of("route", "direct")),
        perNode,
        agentBytes,
        agentDials);
  }

  private static Bytes serverBytes(String text, String route) {
    return new Bytes(
        sum(
            text,
            "egress_tunnel_server_bytes_total",
            Map.of("route", route, "direction", "to_target")),
        sum(
            text,
            "egress_tunnel_server_bytes_total",
            Map.of("route", route, "direction", "to_client")));
  }

  private String get(String hostPort, String path) throws IOException, InterruptedException {
    HttpResponse<String> r =
        http.send(
            HttpRequest.newBuilder(URI.create("http://" + hostPort + path))
                .timeout(Duration.ofSeconds(10))
                .build(),
            HttpResponse.BodyHandlers.ofString());
    if (r.statusCode() != 200) {
      throw new IOException("GET http://" + hostPort + path + " answered " + r.statusCode());
    }
    return r.body();
  }

  /**
   * The sum of the samples of {@code name} in Prometheus text whose labels include {@code labels}
   * (0 if there is none), as a whole number: the counters read here count bytes and dials.
   */
  static long sum(String text, String name, Map<String, String> labels) {
    double total = 0;
    for (String line : text.split("\n")) {
      if (line.isEmpty() || line.charAt(0) == '#' || !line.startsWith(name)) {
        continue;
      }
      int brace = line.indexOf('{');
      int end = brace >= 0 ? brace : line.indexOf(' ');
      if (end != name.length()) {
        continue; // another metric whose name starts with this one
      }
      Map<String, String> have = new HashMap<>();
      String rest = line.substring(end);
      if (brace >= 0) {
        int close = line.lastIndexOf('}');
        Matcher m = LABEL.matcher(line.substring(brace + 1, close));
        while (m.find()) {
          have.put(m.group(1), m.group(2));
        }
        rest = line.substring(close + 1);
      }
      if (!have.entrySet().containsAll(labels.entrySet())) {
        continue;
      }
      total += Double.parseDouble(rest.trim().split(" ")[0]);
    }
    return Math.round(total);
  }
}
