package io.egresstunnel.agent;

import io.egresstunnel.proto.session.TunnelSession;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

/**
 * The servers this agent holds a tunnel to, by server id, shared by every {@link ServerConnection}:
 * at most one session per server id. A session is held from its hello until it closes or its server
 * announces a go-away, so a server that drains or restarts can be reached again at once.
 *
 * <p>It also knows how many servers serve the cluster: the largest server count among the held
 * sessions' hellos and the latest hello seen, so a scale-up is followed at once and a scale-down
 * once the servers that announced the old count are gone.
 */
final class ServerSet {
  private final ConcurrentMap<String, TunnelSession> byId = new ConcurrentHashMap<>();
  private final int urls;
  private volatile int lastSeenCount;

  /**
   * @param urls how many server URLs the agent was given
   */
  ServerSet(int urls) {
    this.urls = urls;
  }

  /**
   * Takes the server of an established session. Returns null if the session now holds its server,
   * or the session that already does (the new one is a duplicate).
   */
  TunnelSession claim(TunnelSession session) {
    lastSeenCount = session.serverHello().serverCount();
    return byId.putIfAbsent(serverId(session), session);
  }

  /** Frees the session's server, if this session holds it. */
  void release(TunnelSession session) {
    byId.remove(serverId(session), session);
  }

  /** The held sessions, one per server. */
  List<TunnelSession> sessions() {
    return List.copyOf(byId.values());
  }

  /** The ids of the servers held, sorted. */
  Set<String> ids() {
    return new TreeSet<>(byId.keySet());
  }

  int held() {
    return byId.size();
  }

  /** How many servers serve the cluster, as far as the hellos tell; 1 until the first hello. */
  int serverCount() {
    int count = Math.max(1, lastSeenCount);
    for (TunnelSession s : byId.values()) {
      count = Math.max(count, s.serverHello().serverCount());
    }
    return count;
  }

  /** Whether fewer servers are held than serve the cluster. */
  boolean missing() {
    return held() < serverCount();
  }

  /**
   * How many tunnels each URL keeps (connected, connecting or waiting to retry): one when the agent
   * was given at least as many URLs as there are servers (one URL per server), otherwise enough for
   * one URL to reach every server the other URLs do not.
   */
  int tunnelsPerUrl() {
    int count = serverCount();
    return urls >= count ? 1 : count - urls + 1;
  }

  static String serverId(TunnelSession session) {
    return session.serverHello().serverId();
  }
}
