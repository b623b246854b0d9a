package io.egresstunnel.server.admin;

import com.fasterxml.jackson.core.JsonProcessingException;
import io.egresstunnel.proto.session.SessionStatus;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.proto.status.StatusJson;
import io.egresstunnel.proto.status.StatusText;
import io.egresstunnel.server.TunnelServer;
import io.egresstunnel.server.agents.AgentAuthHandler;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * What the server is doing: its agents and its open streams. Served as JSON on the admin listener's
 * {@code /status}, and shown as tables by {@code tunnel-server status}. Each session is asked on
 * its own event loop, so nothing is read across threads.
 */
public final class ServerStatus {
  private ServerStatus() {}

  /**
   * An agent session.
   *
   * @param node the node it speaks for
   * @param address where it connects from
   * @param connectedSince when its session was established (ISO-8601)
   * @param streams streams dialling or open now
   * @param streamsTotal streams it has carried
   * @param bytesToAgent payload bytes sent to it
   * @param bytesFromAgent payload bytes received from it
   * @param lastHeardMillisAgo time since anything (a frame or a pong) arrived from it
   * @param draining whether either side has sent GO_AWAY
   * @param carries what it carries besides its node: {@code default route}, served networks and
   *     hosts, or empty
   * @param addresses the node's addresses, as its hello declares them
   * @param kubeletPort the node's kubelet port, as its hello declares it
   * @param authenticatedAs how the server admitted it: {@code anonymous} (the server requires no
   *     credentials), {@code token (--agent-token-file)}, {@code certificate CN=...} or {@code
   *     ServiceAccount token of ...}
   */
  public record Agent(
      String node,
      String address,
      String connectedSince,
      int streams,
      long streamsTotal,
      long bytesToAgent,
      long bytesFromAgent,
      long lastHeardMillisAgo,
      boolean draining,
      String carries,
      List<String> addresses,
      int kubeletPort,
      String authenticatedAs) {}

  private static List<String> addresses(io.egresstunnel.proto.AgentHello h) {
    return h == null
        ? List.of()
        : h.addresses().stream().map(java.net.InetAddress::getHostAddress).toList();
  }

  /** What an agent's hello says it carries besides its node. */
  static String carries(io.egresstunnel.proto.AgentHello h) {
    if (h == null) {
      return "";
    }
    List<String> parts = new ArrayList<>();
    if (h.offersDefaultRoute()) {
      parts.add("default route");
    }
    h.servedCidrs().forEach(c -> parts.add(c.toString()));
    parts.addAll(h.servedHosts());
    return String.join(", ", parts);
  }

  /**
   * An open stream.
   *
   * @param target host:port
   * @param node the agent's node, or null for a direct stream
   * @param ageMillis time since it was opened
   * @param bytesToTarget payload bytes sent towards the target (null when not counted: direct)
   * @param bytesFromTarget payload bytes received from the target (null when not counted)
   * @param state its state (docs/protocol.md), or {@code direct}
   * @param protocol the apiserver's protocol: {@code connect} or {@code grpc}
   */
  public record Stream(
      String target,
      String node,
      long ageMillis,
      Long bytesToTarget,
      Long bytesFromTarget,
      String state,
      String protocol) {}

  /** Everything {@code /status} says. */
  public record Report(
      String serverId,
      String mode,
      boolean ready,
      boolean draining,
      List<Agent> agents,
      List<Stream> streams) {}

  public static CompletableFuture<Report> collect(TunnelServer server) {
    List<CompletableFuture<SessionStatus>> asks = new ArrayList<>();
    List<String> carried = new ArrayList<>();
    List<io.egresstunnel.proto.AgentHello> hellos = new ArrayList<>();
    List<String> identities = new ArrayList<>();
    for (TunnelSession s : server.registry().allSessions()) {
      carried.add(carries(s.agentHello()));
      hellos.add(s.agentHello());
      identities.add(AgentAuthHandler.authenticatedAs(s.channel()));
      asks.add(s.status()); // null if the session closed meanwhile
    }
    return CompletableFuture.allOf(asks.toArray(CompletableFuture[]::new))
        .thenApply(
            done -> {
              List<Agent> agents = new ArrayList<>();
              List<Stream> streams = new ArrayList<>();
              for (int i = 0; i < asks.size(); i++) {
                SessionStatus s = asks.get(i).join();
                if (s == null) {
                  continue;
                }
                agents.add(
                    new Agent(
                        s.node(),
                        s.remote(),
                        Instant.ofEpochMilli(s.connectedAtMillis()).toString(),
                        s.streams().size(),
                        s.streamsOpened(),
                        s.bytesToPeer(),
                        s.bytesFromPeer(),
                        s.lastHeardMillisAgo(),
                        s.draining(),
                        carried.get(i),
                        addresses(hellos.get(i)),
                        hellos.get(i) == null ? 0 : hellos.get(i).kubeletPort(),
                        identities.get(i)));
                for (SessionStatus.Stream st : s.streams()) {
                  streams.add(
                      new Stream(
                          st.target(),
                          s.node(),
                          st.ageMillis(),
                          st.bytesToPeer(),
                          st.bytesFromPeer(),
                          st.state(),
                          st.protocol()));
                }
              }
              long now = System.nanoTime();
              for (TunnelServer.DirectStream d : server.directStreams().values()) {
                streams.add(
                    new Stream(
                        d.target(),
                        null,
                        (now - d.startNanos()) / 1_000_000,
                        null,
                        null,
                        "direct",
                        d.protocol()));
              }
              agents.sort(Comparator.comparing(Agent::node));
              streams.sort(Comparator.comparingLong(Stream::ageMillis).reversed());
              return new Report(
                  server.config().serverId(),
                  server.config().mode().flagValue(),
                  server.isReady(),
                  server.isDraining(),
                  agents,
                  streams);
            });
  }

  static String toJson(Report report) {
    return StatusJson.write(report);
  }

  public static Report fromJson(String json) throws JsonProcessingException {
    return StatusJson.read(json, Report.class);
  }

  /** The report as aligned tables, for a terminal. */
  public static String toTable(Report r) {
    return toTable(r, null, 0);
  }

  /**
   * The report as aligned tables, with bytes per second for each agent and in total when {@code
   * previous} (the report before, taken {@code elapsedNanos} earlier) is given. An agent's rate is
   * the change of its byte counters; one that was not in {@code previous} (a new session) shows
   * {@code -}.
   */
  public static String toTable(Report r, Report previous, long elapsedNanos) {
    boolean rates = previous != null && elapsedNanos > 0;
    double seconds = elapsedNanos / 1e9;
    Map<String, Agent> before = new HashMap<>();
    if (rates) {
      for (Agent a : previous.agents()) {
        before.put(sessionKey(a), a);
      }
    }
    StringBuilder b = new StringBuilder();
    b.append("server ")
        .append(r.serverId())
        .append(", mode ")
        .append(r.mode())
        .append(r.draining() ? ", draining" : "")
        .append(r.ready() ? ", ready" : ", NOT ready")
        .append("\n\n");
    List<String> header =
        new ArrayList<>(
            List.of("NODE", "ADDRESS", "CONNECTED", "STREAMS", "TOTAL", "BYTES OUT", "BYTES IN"));
    if (rates) {
      header.addAll(List.of("OUT/S", "IN/S"));
    }
    header.addAll(List.of("LAST HEARD", "CARRIES"));
    List<String[]> rows = new ArrayList<>();
    rows.add(header.toArray(String[]::new));
    long totalOut = 0;
    long totalIn = 0;
    int streams = 0;
    for (Agent a : r.agents()) {
      streams += a.streams();
      List<String> row =
          new ArrayList<>(
              List.of(
                  a.node() + (a.draining() ? " (draining)" : ""),
                  StatusText.address(a.address()),
                  StatusText.age(
                          Duration.between(Instant.parse(a.connectedSince()), Instant.now())
                              .toMillis())
                      + " ago",
                  Integer.toString(a.streams()),
                  Long.toString(a.streamsTotal()),
                  StatusText.bytes(a.bytesToAgent()),
                  StatusText.bytes(a.bytesFromAgent())));
      if (rates) {
        Agent p = before.get(sessionKey(a));
        if (p == null) {
          row.addAll(List.of("-", "-"));
        } else {
          long out = Math.max(0, a.bytesToAgent() - p.bytesToAgent());
          long in = Math.max(0, a.bytesFromAgent() - p.bytesFromAgent());
          totalOut += out;
          totalIn += in;
          row.add(StatusText.rate(out / seconds));
          row.add(StatusText.rate(in / seconds));
        }
      }
      row.add(StatusText.age(a.lastHeardMillisAgo()) + " ago");
      row.add(a.carries() == null || a.carries().isEmpty() ? "-" : a.carries());
      rows.add(row.toArray(String[]::new));
    }
    b.append(r.agents().size()).append(" agent(s)");
    if (rates) {
      b.append(", ")
          .append(streams)
          .append(" stream(s) through them, total ")
          .append(StatusText.rate(totalOut / seconds))
          .append(" out, ")
          .append(StatusText.rate(totalIn / seconds))
          .append(" in");
    }
    b.append('\n');
    StatusText.table(b, rows);
    rows.clear();
    rows.add(new String[] {"TARGET", "NODE", "PROTOCOL", "AGE", "BYTES OUT", "BYTES IN", "STATE"});
    for (Stream s : r.streams()) {
      rows.add(
          new String[] {
            s.target(),
            s.node() == null ? "(direct)" : s.node(),
            s.protocol() == null ? "-" : s.protocol(),
            StatusText.age(s.ageMillis()),
            s.bytesToTarget() == null ? "-" : StatusText.bytes(s.bytesToTarget()),
            s.bytesFromTarget() == null ? "-" : StatusText.bytes(s.bytesFromTarget()),
            s.state()
          });
    }
    b.append('\n').append(r.streams().size()).append(" open stream(s)\n");
    StatusText.table(b, rows);
    return b.toString();
  }

  /** One session of an agent: the same node, address and start in two reports. */
  private static String sessionKey(Agent a) {
    return a.node() + " " + a.address() + " " + a.connectedSince();
  }
}
