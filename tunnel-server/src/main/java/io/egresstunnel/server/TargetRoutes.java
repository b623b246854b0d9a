package io.egresstunnel.server;

import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.routing.Route;
import io.egresstunnel.routing.Router;
import io.egresstunnel.server.agents.AgentRegistry;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Decides where a dial goes, for the frontends and for {@code /routez} alike: the mode's route to a
 * node (the Kubernetes API's or the agents' hellos), then a network an agent serves, then {@code
 * --default-route} for what no node owns. For the default route it also picks the agents to try.
 */
public final class TargetRoutes {

  /** What kind of decision: the {@code kind} label of the routes metric. */
  public enum Kind {
    NODE,
    NETWORK,
    DEFAULT_ROUTE,
    DIRECT,
    REJECTED;

    public final String label = name().toLowerCase(java.util.Locale.ROOT);
  }

  /**
   * A decision.
   *
   * @param kind what kind of route
   * @param node the node whose agent carries it ({@link Kind#NODE}, {@link Kind#NETWORK}), or null
   * @param agents for {@link Kind#DEFAULT_ROUTE}: the sessions to try, in order (the first is the
   *     choice, the rest the fail-over); empty when no agent offering a default route can take it
   * @param eligible for {@link Kind#DEFAULT_ROUTE}: how many agents offer one and can take it
   * @param reason why, in words, for a refusal, {@code /routez} and the logs
   */
  public record Decision(
      Kind kind, String node, List<TunnelSession> agents, int eligible, String reason) {}

  /** At most this many agents are tried for one default-route dial. */
  static final int MAX_DEFAULT_ROUTE_TRIES = 3;

  private final Router router;
  private final AgentRegistry registry;
  private final ServerConfig config;

  TargetRoutes(Router router, AgentRegistry registry, ServerConfig config) {
    this.router = router;
    this.registry = registry;
    this.config = config;
  }

  /** The mode's route alone: a node, a served network, {@link Route#DIRECT} or the default. */
  public Route route(String host, int port) {
    return router.route(host, port);
  }

  /** Where a dial to {@code host:port} goes now. */
  public Decision decide(String host, int port) {
    Route route = router.route(host, port);
    if (route instanceof Route.ViaAgent via) {
      return new Decision(Kind.NODE, via.node(), List.of(), 0, "the mode routes it to its node");
    }
    if (route instanceof Route.ViaNetwork net) {
      return new Decision(
          Kind.NETWORK,
          net.node(),
          List.of(),
          0,
          "in a network that node " + net.node() + " serves");
    }
    if (route == Route.DIRECT) {
      return new Decision(
          Kind.DIRECT,
          null,
          List.of(),
          0,
          config.mode() == io.egresstunnel.routing.EgressMode.DISABLED
              ? "mode disabled"
              : "the server's own node");
    }
    ServerConfig.DefaultRoute policy = config.routing().defaultRoute();
    return switch (policy) {
      case DIRECT -> direct("--default-route direct");
      case REJECT ->
          new Decision(
              Kind.REJECTED,
              null,
              List.of(),
              0,
              host
                  + ":"
                  + port
                  + " belongs to no node and no agent serves it (--default-route reject)");
      case AGENTS -> viaDefaultRoute();
      case AUTO ->
          registry.defaultRouteExpected()
              ? viaDefaultRoute()
              : direct("no agent offers a default route (--default-route auto)");
    };
  }

  private static Decision direct(String why) {
    return new Decision(Kind.DIRECT, null, List.of(), 0, "no node owns it; " + why);
  }

  /**
   * The agents to try, by power of two choices: two offering sessions at random, the one with fewer
   * streams (open and dialling) first and the other as the fail-over, then one more at random.
   * Draining and saturated sessions are skipped.
   */
  private Decision viaDefaultRoute() {
    List<TunnelSession> eligible = new ArrayList<>();
    int maxStreams = config.limits().maxStreamsPerAgent();
    int maxPending = config.limits().maxPendingDialsPerAgent();
    for (TunnelSession s : registry.defaultRouteSessions()) {
      if (s.isEstablished()
          && !s.isDraining()
          && s.streamCount() < maxStreams
          && s.pendingDials() < maxPending) {
        eligible.add(s);
      }
    }
    if (eligible.isEmpty()) {
      return new Decision(
          Kind.DEFAULT_ROUTE,
          null,
          List.of(),
          0,
          "no node owns it, and no agent offering a default route is connected (or each is"
              + " draining or full)");
    }
    ThreadLocalRandom random = ThreadLocalRandom.current();
    List<TunnelSession> tries = new ArrayList<>(MAX_DEFAULT_ROUTE_TRIES);
    int n = eligible.size();
    int a = random.nextInt(n);
    if (n == 1) {
      tries.add(eligible.get(a));
    } else {
      int b = (a + 1 + random.nextInt(n - 1)) % n;
      TunnelSession first = eligible.get(a);
      TunnelSession second = eligible.get(b);
      if (load(second) < load(first)) {
        TunnelSession t = first;
        first = second;
        second = t;
      }
      tries.add(first);
      tries.add(second);
      if (n > 2) {
        int c;
        do {
          c = random.nextInt(n);
        } while (c == a || c == b);
        tries.add(eligible.get(c));
      }
    }
    return new Decision(
        Kind.DEFAULT_ROUTE,
        null,
        List.copyOf(tries),
        n,
        "no node owns it; default route through one of " + n + " agent(s)");
  }

  /** Streams dialling or open: read off the session's loop, a recent value is enough here. */
  private static int load(TunnelSession s) {
    return s.streamCount();
  }
}
