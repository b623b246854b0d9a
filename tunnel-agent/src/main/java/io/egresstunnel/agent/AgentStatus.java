package io.egresstunnel.agent;

import com.fasterxml.jackson.core.JsonProcessingException;
import io.egresstunnel.proto.session.SessionStatus;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.proto.status.StatusJson;
import io.egresstunnel.proto.status.StatusText;
import java.net.URI;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * What the agent is doing: its connections to servers and the streams it carries. Served as JSON on
 * the agent's admin listener's {@code /status}, and shown as tables by {@code tunnel-agent status}.
 * Each session is asked on its own event loop.
 */
public final class AgentStatus {
  private AgentStatus() {}

  /**
   * A connection to a server.
   *
   * @param url the {@code --server} URL it went through
   * @param serverId the server's id (null while connecting)
   * @param address the server's address (host:port), or null while connecting
   * @param state {@code connecting}, {@code established} or {@code draining} (either side sent
   *     GO_AWAY; it ends when its streams have)
   * @param since when the hellos were exchanged (ISO-8601), or null while connecting
   * @param streams streams dialling or open on it now
   * @param streamsTotal streams it has carried
   * @param bytesToServer payload bytes sent to the server (what the targets sent)
   * @param bytesFromServer payload bytes received from the server (what went to the targets)
   * @param lastHeardMillisAgo time since anything arrived from the server, or -1 while connecting
   */
  public record Session(
      String url,
      String serverId,
      String address,
      String state,
      String since,
      int streams,
      long streamsTotal,
      long bytesToServer,
      long bytesFromServer,
      long lastHeardMillisAgo) {}

  /**
   * A stream.
   *
   * @param target host:port
   * @param serverId the server that asked for it
   * @param state its state (docs/protocol.md)
   * @param ageMillis time since the dial arrived
   * @param bytesToTarget payload bytes that went to the target
   * @param bytesFromTarget payload bytes that came from the target
   */
  public record Stream(
      String target,
      String serverId,
      String state,
      long ageMillis,
      long bytesToTarget,
      long bytesFromTarget) {}

  /**
   * Everything {@code /status} says.
   *
   * @param node the node this agent speaks for
   * @param serversHeld how many servers it holds a session to
   * @param serverCount how many servers serve the cluster, as their hellos say
   */
  public record Report(
      String node,
      int serversHeld,
      int serverCount,
      List<Session> sessions,
      List<Stream> streams) {}

  static CompletableFuture<Report> collect(TunnelAgent agent) {
    List<URI> urls = new ArrayList<>();
    List<CompletableFuture<SessionStatus>> asks = new ArrayList<>();
    for (ServerConnection c : agent.connections()) {
      for (TunnelSession s : c.connections()) {
        urls.add(c.uri());
        // null while connecting, or if the session closed meanwhile
        asks.add(s == null ? CompletableFuture.completedFuture(null) : s.status());
      }
    }
    return CompletableFuture.allOf(asks.toArray(CompletableFuture[]::new))
        .thenApply(
            done -> {
              List<Session> sessions = new ArrayList<>();
              List<Stream> streams = new ArrayList<>();
              for (int i = 0; i < asks.size(); i++) {
                SessionStatus s = asks.get(i).join();
                String url = urls.get(i).toString();
                if (s == null) {
                  sessions.add(new Session(url, null, null, "connecting", null, 0, 0, 0, 0, -1));
                  continue;
                }
                sessions.add(
                    new Session(
                        url,
                        s.serverId(),
                        s.remote(),
                        s.draining() ? "draining" : "established",
                        Instant.ofEpochMilli(s.connectedAtMillis()).toString(),
                        s.streams().size(),
                        s.streamsOpened(),
                        s.bytesToPeer(),
                        s.bytesFromPeer(),
                        s.lastHeardMillisAgo()));
                for (SessionStatus.Stream st : s.streams()) {
                  streams.add(
                      new Stream(
                          st.target(),
                          s.serverId(),
                          st.state(),
                          st.ageMillis(),
                          st.bytesFromPeer(),
                          st.bytesToPeer()));
                }
              }
              sessions.sort(
                  Comparator.comparing(Session::url)
                      .thenComparing(Session::serverId, Comparator.nullsLast(String::compareTo)));
              streams.sort(Comparator.comparingLong(Stream::ageMillis).reversed());
              return new Report(
                  agent.config().nodeName(),
                  agent.sessions().size(),
                  agent.serverCount(),
                  sessions,
                  streams);
            });
  }

  static String toJson(Report report) {
    return StatusJson.write(report);
  }

  static Report fromJson(String json) throws JsonProcessingException {
    return StatusJson.read(json, Report.class);
  }

  /**
   * The report as aligned tables; with {@code previous} (taken {@code elapsedNanos} earlier) also
   * bytes per second per session and in total.
   */
  static String toTable(Report r, Report previous, long elapsedNanos) {
    boolean rates = previous != null && elapsedNanos > 0;
    double seconds = elapsedNanos / 1e9;
    Map<String, Session> before = new HashMap<>();
    if (rates) {
      for (Session s : previous.sessions()) {
        before.put(s.url() + " " + s.address() + " " + s.since(), s);
      }
    }
    StringBuilder b = new StringBuilder();
    b.append("agent for node ")
        .append(r.node())
        .append(", ")
        .append(r.serversHeld())
        .append(" of ")
        .append(r.serverCount())
        .append(" server(s) held\n\n");
    List<String> header =
        new ArrayList<>(
            List.of(
                "SERVER",
                "ADDRESS",
                "STATE",
                "SINCE",
                "STREAMS",
                "TOTAL",
                "BYTES TO SERVER",
                "BYTES FROM SERVER"));
    if (rates) {
      header.addAll(List.of("TO/S", "FROM/S"));
    }
    header.addAll(List.of("LAST HEARD", "URL"));
    List<String[]> rows = new ArrayList<>();
    rows.add(header.toArray(String[]::new));
    long totalTo = 0;
    long totalFrom = 0;
    for (Session s : r.sessions()) {
      boolean up = s.since() != null;
      List<String> row =
          new ArrayList<>(
              List.of(
                  s.serverId() == null ? "-" : s.serverId(),
                  up ? StatusText.address(s.address()) : "-",
                  s.state(),
                  up
                      ? StatusText.age(
                              Duration.between(Instant.parse(s.since()), Instant.now()).toMillis())
                          + " ago"
                      : "-",
                  Integer.toString(s.streams()),
                  Long.toString(s.streamsTotal()),
                  StatusText.bytes(s.bytesToServer()),
                  StatusText.bytes(s.bytesFromServer())));
      if (rates) {
        Session p = up ? before.get(s.url() + " " + s.address() + " " + s.since()) : null;
        if (p == null) {
          row.addAll(List.of("-", "-"));
        } else {
          long to = Math.max(0, s.bytesToServer() - p.bytesToServer());
          long from = Math.max(0, s.bytesFromServer() - p.bytesFromServer());
          totalTo += to;
          totalFrom += from;
          row.add(StatusText.rate(to / seconds));
          row.add(StatusText.rate(from / seconds));
        }
      }
      row.add(up ? StatusText.age(s.lastHeardMillisAgo()) + " ago" : "-");
      row.add(s.url());
      rows.add(row.toArray(String[]::new));
    }
    b.append(r.sessions().size()).append(" connection(s)");
    if (rates) {
      b.append(", total ")
          .append(StatusText.rate(totalTo / seconds))
          .append(" to servers, ")
          .append(StatusText.rate(totalFrom / seconds))
          .append(" from servers");
    }
    b.append('\n');
    StatusText.table(b, rows);
    rows.clear();
    rows.add(
        new String[] {"TARGET", "SERVER", "AGE", "BYTES TO TARGET", "BYTES FROM TARGET", "STATE"});
    for (Stream s : r.streams()) {
      rows.add(
          new String[] {
            s.target(),
            s.serverId() == null ? "-" : s.serverId(),
            StatusText.age(s.ageMillis()),
            StatusText.bytes(s.bytesToTarget()),
            StatusText.bytes(s.bytesFromTarget()),
            s.state()
          });
    }
    b.append('\n').append(r.streams().size()).append(" open stream(s)\n");
    StatusText.table(b, rows);
    return b.toString();
  }
}
