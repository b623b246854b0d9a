package io.egresstunnel.server.agents;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.RemovalCause;
import com.github.benmanes.caffeine.cache.Scheduler;
import io.egresstunnel.proto.AgentHello;
import io.egresstunnel.proto.ErrorCode;
import io.egresstunnel.proto.GoAway;
import io.egresstunnel.proto.config.RateLimitedLog;
import io.egresstunnel.proto.net.Addresses;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.routing.DeclaredRouter;
import io.egresstunnel.routing.KubernetesRouteSource;
import io.egresstunnel.routing.NodeInfo;
import io.egresstunnel.routing.ServedNetworks;
import java.time.Duration;
import java.util.Collection;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agents connected to this server, by node. A node may briefly have two sessions (an agent that
 * reconnects before its old session is noticed dead); the newest live one carries new streams.
 * Feeds the embedded route source with what each agent declares.
 *
 * <p>Without the Kubernetes API, a node stays known after its last agent leaves, so that its
 * kubelet targets fail with 503 instead of silently bypassing the tunnel: for {@code
 * departedNodeTtl}, and at most {@code maxDepartedNodes} such nodes (the longest gone are forgotten
 * first). The networks an agent serves ({@code --serve-cidr}, {@code --serve-host}) are remembered
 * the same way, with or without the API.
 *
 * <p>It also keeps the sessions whose agents offer a default route, for targets that no node owns.
 */
public final class AgentRegistry implements TunnelSession.Listener {
  private static final Logger log = LoggerFactory.getLogger(AgentRegistry.class);

  private final RateLimitedLog duplicateIds = new RateLimitedLog(log, Duration.ofMinutes(1));

  private final Map<String, Deque<TunnelSession>> byNode = new ConcurrentHashMap<>();
  private final DeclaredRouter declaredRoutes;
  private final KubernetesRouteSource apiRoutes;
  private final ServedNetworks servedNetworks;
  private final Duration departedNodeTtl;

  /** Established sessions whose agents offer a default route, in no particular order. */
  private final List<TunnelSession> offering = new CopyOnWriteArrayList<>();

  /** When the last agent offering a default route left (System.nanoTime), or 0: none has. */
  private volatile long offeringLeftNanos;

  private volatile boolean everOffered;
  private final int maxAgents;
  private final AtomicInteger established = new AtomicInteger();

  /** Declared nodes whose last agent has left, until they are forgotten. */
  private final Cache<String, Boolean> departed;

  /**
   * @param apiRoutes the Kubernetes source, or null: then what agents declare is the routing
   * @param maxAgents most sessions established at once; further hellos are refused
   * @param departedNodeTtl how long a declared node is remembered after its last agent left
   * @param maxDepartedNodes the most departed nodes remembered
   */
  public AgentRegistry(
      DeclaredRouter declaredRoutes,
      KubernetesRouteSource apiRoutes,
      ServedNetworks servedNetworks,
      int maxAgents,
      Duration departedNodeTtl,
      int maxDepartedNodes) {
    this.declaredRoutes = declaredRoutes;
    this.apiRoutes = apiRoutes;
    this.servedNetworks = servedNetworks;
    this.departedNodeTtl = departedNodeTtl;
    this.maxAgents = maxAgents;
    this.departed =
        Caffeine.newBuilder()
            .expireAfterWrite(departedNodeTtl)
            .maximumSize(maxDepartedNodes)
            .scheduler(Scheduler.systemScheduler())
            .<String, Boolean>removalListener((node, v, cause) -> forget(node, cause))
            .build();
  }

  /** Drops an expired or evicted departed node from the routes, unless its agent is back. */
  private synchronized void forget(String node, RemovalCause cause) {
    if (cause.wasEvicted() && !byNode.containsKey(node)) {
      declaredRoutes.remove(node);
      servedNetworks.remove(node);
      log.info("forgot node {}: no agent for it since {} ({})", node, cause, departedSummary());
    }
  }

  private String departedSummary() {
    return departed.estimatedSize() + " departed node(s) remembered";
  }

  /** The nodes remembered without an agent (an estimate, for status pages). */
  public long departedNodes() {
    return departed.estimatedSize();
  }

  /** The session that should carry a new stream to {@code node}, or null if none is connected. */
  public TunnelSession session(String node) {
    Deque<TunnelSession> sessions = byNode.get(node);
    if (sessions == null) {
      return null;
    }
    for (TunnelSession s : sessions) {
      if (s.isEstablished() && !s.isDraining()) {
        return s;
      }
    }
    return null;
  }

  /**
   * The sessions that may take a new stream for a target that no node owns: established, not
   * draining, offering a default route. A snapshot, in no particular order.
   */
  public List<TunnelSession> defaultRouteSessions() {
    return offering;
  }

  /**
   * Whether targets that no node owns should go to agents under {@code --default-route auto}: an
   * agent offering a default route is connected, or the last one left less than the departed-node
   * TTL ago (its targets then get 503 rather than a silent direct dial).
   */
  public boolean defaultRouteExpected() {
    if (!offering.isEmpty()) {
      return true;
    }
    return everOffered && System.nanoTime() - offeringLeftNanos < departedNodeTtl.toNanos();
  }

  /** Another session of {@code node} that could take a new stream instead of {@code than}. */
  public TunnelSession otherSession(String node, TunnelSession than) {
    Deque<TunnelSession> sessions = byNode.get(node);
    if (sessions == null) {
      return null;
    }
    for (TunnelSession s : sessions) {
      if (s != than && s.isEstablished() && !s.isDraining()) {
        return s;
      }
    }
    return null;
  }

  /** Agent sessions established now. */
  public int agentCount() {
    return established.get();
  }

  @Override
  public String refuse(TunnelSession session, AgentHello hello) {
    String authenticated = session.channel().attr(AgentAuthHandler.AUTHENTICATED_NODE).get();
    if (authenticated != null && !authenticated.equals(hello.nodeName())) {
      log.warn(
          "agent authenticated for node {} declared node {}; refused",
          authenticated,
          hello.nodeName());
      return "authenticated for node " + authenticated + " but declared node " + hello.nodeName();
    }
    if (established.get() >= maxAgents) {
      log.warn("refused the agent for node {}: {} agents connected", hello.nodeName(), maxAgents);
      return "this server already holds its maximum of " + maxAgents + " agents";
    }
    return null;
  }

  @Override
  public void onEstablished(TunnelSession session) {
    AgentHello hello = session.agentHello();
    established.incrementAndGet();
    NodeInfo declared =
        new NodeInfo(hello.nodeName(), hello.addresses(), hello.podCidrs(), hello.kubeletPort());
    ServedNetworks.Served served =
        new ServedNetworks.Served(hello.servedCidrs(), hello.servedHosts());
    synchronized (this) {
      Deque<TunnelSession> sessions =
          byNode.computeIfAbsent(hello.nodeName(), n -> new ConcurrentLinkedDeque<>());
      logTakeover(session, sessions);
      sessions.addFirst(session);
      departed.invalidate(hello.nodeName());
      if (apiRoutes == null) {
        declaredRoutes.upsert(declared);
      }
      servedNetworks.upsert(hello.nodeName(), served);
      if (hello.offersDefaultRoute()) {
        everOffered = true;
        offering.add(session);
      }
    }
    if (apiRoutes != null) {
      checkAgainstApi(declared);
    }
    log.info(
        "agent connected: node {} from {}, addresses {}, pod CIDRs {}, kubelet port {}{}{}",
        hello.nodeName(),
        Addresses.text(session.channel().remoteAddress()),
        Addresses.text(hello.addresses()),
        hello.podCidrs(),
        hello.kubeletPort(),
        served.isEmpty()
            ? ""
            : ", serves networks " + served.cidrs() + " and hosts " + served.hosts(),
        hello.offersDefaultRoute() ? ", offers a default route" : "");
  }

  @Override
  public void onGoAway(TunnelSession session, GoAway goAway) {
    leaveDefaultRoute(session); // a draining session takes no new streams
    if (goAway.code() == ErrorCode.DUPLICATE_SERVER_ID) {
      // The agent retries every sync interval while the ids clash: one line a minute.
      duplicateIds.warn(
          goAway.message(),
          "agent for node {} at {} closed its session: {}. Two servers share this server's id;"
              + " the agent cannot keep a tunnel to both (give each server its own --server-id)",
          nodeOf(session),
          Addresses.text(session.channel().remoteAddress()),
          goAway.message());
      return;
    }
    log.info("agent for node {} is draining: {}", nodeOf(session), goAway.message());
  }

  @Override
  public void onClosed(TunnelSession session) {
    AgentHello hello = session.agentHello();
    if (hello == null) {
      return; // never established
    }
    boolean[] removed = {false};
    byNode.computeIfPresent(
        hello.nodeName(),
        (node, sessions) -> {
          removed[0] = sessions.remove(session);
          return sessions.isEmpty() ? null : sessions;
        });
    if (removed[0]) {
      established.decrementAndGet();
    }
    leaveDefaultRoute(session);
    boolean servesNetworks = !hello.servedCidrs().isEmpty() || !hello.servedHosts().isEmpty();
    if ((apiRoutes == null || servesNetworks) && !byNode.containsKey(hello.nodeName())) {
      departed.put(hello.nodeName(), Boolean.TRUE); // its 503s last until it is forgotten
    }
    log.info(
        "agent disconnected: node {} ({})",
        hello.nodeName(),
        Addresses.text(session.channel().remoteAddress()));
  }

  /**
   * A node's newest session takes its new streams. Say so when another is still there: during a
   * rolling update the old one is draining (INFO); a live one means two agents speak for one node,
   * or a reconnect before the old session was seen dead (WARN).
   */
  private static void logTakeover(TunnelSession session, Deque<TunnelSession> earlier) {
    for (TunnelSession old : earlier) {
      if (!old.isEstablished()) {
        continue;
      }
      String line =
          "node {}: the new session from {} takes its new streams; the session from {} keeps"
              + " its open streams{}";
      Object[] args = {
        nodeOf(session),
        Addresses.text(session.channel().remoteAddress()),
        Addresses.text(old.channel().remoteAddress()),
        old.isDraining() ? " (draining)" : " and is still live: two agents for one node?"
      };
      if (old.isDraining()) {
        log.info(line, args);
      } else {
        log.warn(line, args);
      }
    }
  }

  private void leaveDefaultRoute(TunnelSession session) {
    if (offering.remove(session) && offering.isEmpty()) {
      offeringLeftNanos = System.nanoTime();
    }
  }

  /** The API wins: an agent whose hello contradicts its Node object is logged, not believed. */
  private void checkAgainstApi(NodeInfo declared) {
    var known = apiRoutes.node(declared.name());
    if (known.isEmpty()) {
      if (apiRoutes.isSynced()) {
        log.warn("agent declares node {}, which the Kubernetes API does not know", declared.name());
      }
      return;
    }
    NodeInfo api = known.get();
    if (!new java.util.HashSet<>(api.addresses()).containsAll(declared.addresses())
        || api.kubeletPort() != declared.kubeletPort()) {
      log.warn(
          "agent for node {} declares addresses {} and kubelet port {}, but its Node object says"
              + " {} and {}; routing follows the API",
          declared.name(),
          declared.addresses(),
          declared.kubeletPort(),
          api.addresses(),
          api.kubeletPort());
    }
  }

  /** All sessions, flattened. */
  public List<TunnelSession> allSessions() {
    return byNode.values().stream().flatMap(Collection::stream).toList();
  }

  /** The node an agent session speaks for, or {@code ?} before its hello. */
  public static String nodeOf(TunnelSession s) {
    AgentHello h = s.agentHello();
    return h == null ? "?" : h.nodeName();
  }
}
