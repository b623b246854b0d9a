package io.egresstunnel.server;

import io.egresstunnel.proto.session.SessionPipeline;
import io.netty.handler.codec.http.HttpResponseStatus;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Checks agents' bearer tokens at the websocket upgrade, before any frame is read. The token file
 * (--agent-token-file) has one token per line, optionally followed by the nodes that token may
 * speak for ({@code TOKEN node-a,node-b}); a token without nodes may speak for any node. Blank
 * lines and lines starting with # are ignored. Every presented token is compared with every known
 * one in constant time, so neither a token nor its position leaks through timing.
 */
final class AgentAuthenticator {
  private record Entry(byte[] token, Set<String> nodes) {}

  /** The verdict: {@code status} null means admitted. */
  record Verdict(HttpResponseStatus status, String reason) {
    boolean admitted() {
      return status == null;
    }
  }

  private final List<Entry> entries;

  private AgentAuthenticator(List<Entry> entries) {
    this.entries = entries;
  }

  static AgentAuthenticator fromFile(Path file) throws IOException {
    List<Entry> entries = new ArrayList<>();
    int lineNo = 0;
    for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
      lineNo++;
      String l = line.strip();
      if (l.isEmpty() || l.startsWith("#")) {
        continue;
      }
      String[] parts = l.split("\\s+");
      if (parts.length > 2 || parts[0].length() < 16) {
        throw new IllegalArgumentException(
            file
                + " line "
                + lineNo
                + ": expected 'TOKEN [NODE,...]' with a token of 16+ characters");
      }
      Set<String> nodes = parts.length == 2 ? Set.of(parts[1].split(",")) : null;
      entries.add(new Entry(parts[0].getBytes(StandardCharsets.UTF_8), nodes));
    }
    if (entries.isEmpty()) {
      throw new IllegalArgumentException(file + " holds no token");
    }
    return new AgentAuthenticator(entries);
  }

  /** Judges an upgrade request's Authorization header and node header. */
  Verdict check(String authorization, String node) {
    if (authorization == null || !authorization.regionMatches(true, 0, "Bearer ", 0, 7)) {
      return new Verdict(HttpResponseStatus.UNAUTHORIZED, "a bearer token is required");
    }
    byte[] presented = authorization.substring(7).strip().getBytes(StandardCharsets.UTF_8);
    Entry match = null;
    for (Entry e : entries) {
      if (MessageDigest.isEqual(e.token(), presented) && match == null) {
        match = e; // keep comparing: the time taken must not tell which entry matched
      }
    }
    if (match == null) {
      return new Verdict(HttpResponseStatus.UNAUTHORIZED, "the bearer token is not valid");
    }
    if (node == null || node.isBlank()) {
      return new Verdict(
          HttpResponseStatus.FORBIDDEN,
          "the agent must name its node in " + SessionPipeline.NODE_HEADER);
    }
    if (match.nodes() != null && !match.nodes().contains(node)) {
      return new Verdict(HttpResponseStatus.FORBIDDEN, "this token may not speak for node " + node);
    }
    return new Verdict(null, null);
  }
}
