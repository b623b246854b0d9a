package io.egresstunnel.server.admin;

import io.egresstunnel.proto.DialStatus;
import io.egresstunnel.proto.metrics.BuildInfo;
import io.egresstunnel.proto.metrics.TunnelMetrics;
import io.egresstunnel.proto.net.TargetDialer;
import io.egresstunnel.proto.session.DialFailedException;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.proto.session.UpgradeRefusal;
import io.egresstunnel.server.TargetRoutes;
import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.datapoints.DistributionDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.Unit;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.IntSupplier;

/**
 * tunnel-server's metrics (docs/metrics.md): the tunnel's own ({@link TunnelMetrics}, prefix {@code
 * egress_tunnel_server_}), plus agents connected, CONNECT answers by status code, and dial latency
 * and failures by route and reason. Every labelled child is resolved here, once.
 */
public final class ServerMetrics {
  static final String PREFIX = "egress_tunnel_server_";

  /** Why a dial failed, or {@code OK}: the {@code outcome} and {@code reason} label values. */
  enum DialOutcome {
    OK,
    REFUSED,
    UNREACHABLE,
    TIMEOUT,
    FORBIDDEN,
    TOO_MANY_STREAMS,
    RESOLVE_FAILED,
    DRAINING,
    INTERNAL_ERROR,
    SESSION_LOST,
    CANCELLED,
    NO_AGENT;

    public final String label = name().toLowerCase(Locale.ROOT);

    static DialOutcome of(Throwable cause) {
      if (cause == null) {
        return OK;
      }
      if (cause instanceof DialFailedException dfe) {
        return dfe.sessionLost() ? SESSION_LOST : of(dfe.status());
      }
      return of(TargetDialer.classify(cause));
    }

    static DialOutcome of(DialStatus status) {
      return switch (status) {
        case OK -> OK;
        case REFUSED -> REFUSED;
        case UNREACHABLE -> UNREACHABLE;
        case TIMEOUT -> TIMEOUT;
        case FORBIDDEN -> FORBIDDEN;
        case TOO_MANY_STREAMS -> TOO_MANY_STREAMS;
        case RESOLVE_FAILED -> RESOLVE_FAILED;
        case DRAINING -> DRAINING;
        case INTERNAL_ERROR -> INTERNAL_ERROR;
      };
    }
  }

  /** The apiserver's protocol: the {@code protocol} label value. */
  public enum Protocol {
    CONNECT,
    GRPC;

    public final String label = name().toLowerCase(Locale.ROOT);
  }

  /** The status codes a CONNECT is answered with (README, "CONNECT statuses"); others: "other". */
  private static final int[] CODES = {200, 400, 403, 405, 408, 414, 431, 502, 503, 504, 505};

  private static final int OUTCOMES = DialOutcome.values().length;

  private final PrometheusRegistry registry;
  private final TunnelMetrics tunnel;
  private final CounterDataPoint[] connectAnswers = new CounterDataPoint[CODES.length + 1];
  private final Counter dialFailures;
  private final CounterDataPoint fallbackDirect;
  private final CounterDataPoint[] upgradesRefused =
      new CounterDataPoint[UpgradeRefusal.values().length];
  private final CounterDataPoint[] routes = new CounterDataPoint[TargetRoutes.Kind.values().length];
  private final Histogram dialSeconds;
  // By route * OUTCOMES + outcome, resolved on first use: most pairs never occur, and need no
  // empty series. The arrays publish each child safely to the other event loops.
  private final AtomicReferenceArray<CounterDataPoint> failures =
      new AtomicReferenceArray<>(4 * OUTCOMES);
  private final AtomicReferenceArray<DistributionDataPoint> durations =
      new AtomicReferenceArray<>(4 * OUTCOMES);
  private final CounterDataPoint grpcDialsOk;
  private final CounterDataPoint grpcDialsFailed;

  /**
   * Registers the server's metrics in {@code registry}; {@code agentsConnected} is read at each
   * scrape, and {@code mode} (the {@code --mode} value) labels {@code build_info}.
   */
  public ServerMetrics(PrometheusRegistry registry, IntSupplier agentsConnected, String mode) {
    this.registry = registry;
    this.tunnel = new TunnelMetrics(registry, PREFIX, TunnelSession.Role.SERVER);
    BuildInfo.register(registry, PREFIX, mode);
    GaugeWithCallback.builder()
        .name(PREFIX + "agents_connected")
        .help("Agent sessions established now.")
        .callback(cb -> cb.call(agentsConnected.getAsInt()))
        .register(registry);
    Counter connects =
        Counter.builder()
            .name(PREFIX + "connect_requests_total")
            .help("CONNECT requests answered, by HTTP status code (200 when the tunnel opened).")
            .labelNames("code")
            .withoutExemplars()
            .register(registry);
    for (int i = 0; i < CODES.length; i++) {
      connectAnswers[i] = connects.labelValues(Integer.toString(CODES[i]));
    }
    connectAnswers[CODES.length] = connects.labelValues("other");
    fallbackDirect =
        Counter.builder()
            .name(PREFIX + "fallback_direct_dials_total")
            .help(
                "CONNECTs that the mode routes through an agent, dialled directly because no agent"
                    + " was connected for the node (--fallback-direct).")
            .withoutExemplars()
            .register(registry)
            .labelValues();
    dialFailures =
        Counter.builder()
            .name(PREFIX + "dial_failures_total")
            .help(
                "Dials (CONNECT or GRPC) whose target could not be connected, by protocol, route"
                    + " (agent, direct) and reason (refused, timeout, no_agent, ...).")
            .labelNames("protocol", "route", "reason")
            .withoutExemplars()
            .register(registry);
    dialSeconds =
        Histogram.builder()
            .name(PREFIX + "dial_duration_seconds")
            .help(
                "Time from a routed dial (CONNECT or GRPC) to its result, by protocol, route"
                    + " (agent, direct) and outcome (ok or the failure reason).")
            .unit(Unit.SECONDS)
            .labelNames("protocol", "route", "outcome")
            .classicOnly()
            .classicUpperBounds(TunnelMetrics.DIAL_SECONDS_BUCKETS)
            .withoutExemplars()
            .register(registry);
    Counter grpcDials =
        Counter.builder()
            .name(PREFIX + "grpc_dials_total")
            .help(
                "GRPC dials answered with DIAL_RSP, by result: ok (a connection id) or error (a"
                    + " reason).")
            .labelNames("result")
            .withoutExemplars()
            .register(registry);
    grpcDialsOk = grpcDials.labelValues("ok");
    Counter refusals =
        Counter.builder()
            .name(PREFIX + "agent_upgrades_refused_total")
            .help(
                "Agent websocket upgrades refused, by HTTP status and reason: 401 no_credentials,"
                    + " bad_token; 403 bad_certificate, wrong_node, no_node, not_allowed; 503"
                    + " review_failed, draining, max_agents. The log shows the first of each kind"
                    + " per 10 s.")
            .labelNames("code", "reason")
            .withoutExemplars()
            .register(registry);
    for (UpgradeRefusal r : UpgradeRefusal.values()) {
      if (r != UpgradeRefusal.OTHER) {
        upgradesRefused[r.ordinal()] = refusals.labelValues(Integer.toString(r.code), r.label);
      }
    }
    Counter routed =
        Counter.builder()
            .name(PREFIX + "routes_total")
            .help(
                "Dials by how they were routed: node (the mode's route to a node's agent), network"
                    + " (a network an agent serves), default_route (an agent offering a default"
                    + " route), direct, rejected (--default-route reject).")
            .labelNames("kind")
            .withoutExemplars()
            .register(registry);
    for (TargetRoutes.Kind k : TargetRoutes.Kind.values()) {
      routes[k.ordinal()] = routed.labelValues(k.label);
    }
    grpcDialsFailed = grpcDials.labelValues("error");
    // The series everyone graphs exist from the start, at zero.
    for (Protocol protocol : Protocol.values()) {
      for (int route = 0; route < 2; route++) {
        duration(protocol, route, DialOutcome.OK);
        failure(protocol, route, DialOutcome.REFUSED);
        failure(protocol, route, DialOutcome.TIMEOUT);
      }
      failure(protocol, 0, DialOutcome.NO_AGENT);
    }
  }

  /** A GRPC dial was answered: with a connection id, or with an error. */
  public void grpcDialAnswered(boolean ok) {
    (ok ? grpcDialsOk : grpcDialsFailed).inc();
  }

  public PrometheusRegistry registry() {
    return registry;
  }

  /** What every agent session reports. */
  public TunnelMetrics tunnel() {
    return tunnel;
  }

  /** A CONNECT was answered with {@code code}. */
  public void connectAnswered(int code) {
    for (int i = 0; i < CODES.length; i++) {
      if (CODES[i] == code) {
        connectAnswers[i].inc();
        return;
      }
    }
    connectAnswers[CODES.length].inc();
  }

  /**
   * A dial ended, {@code startNanos} after the CONNECT was routed: with success if {@code cause} is
   * null. A failed dial through an agent whose client is gone was cancelled by the client leaving.
   */
  public void dialFinished(
      Protocol protocol, boolean viaAgent, Throwable cause, long startNanos, boolean clientActive) {
    int route = viaAgent ? 0 : 1;
    DialOutcome outcome =
        cause != null && viaAgent && !clientActive ? DialOutcome.CANCELLED : DialOutcome.of(cause);
    duration(protocol, route, outcome).observe(Unit.nanosToSeconds(System.nanoTime() - startNanos));
    if (outcome != DialOutcome.OK) {
      failure(protocol, route, outcome).inc();
    }
  }

  /** No agent is connected for the target's node: the CONNECT fails without a dial. */
  public void noAgent(Protocol protocol) {
    failure(protocol, 0, DialOutcome.NO_AGENT).inc();
  }

  /** A target of a node without an agent is dialled directly (--fallback-direct). */
  public void fallbackDirect() {
    fallbackDirect.inc();
  }

  /** An agent's upgrade was refused, for {@code reason} (never {@link UpgradeRefusal#OTHER}). */
  public void agentUpgradeRefused(UpgradeRefusal reason) {
    upgradesRefused[reason.ordinal()].inc();
  }

  /** A dial was routed so (before it is dialled). */
  public void routed(TargetRoutes.Kind kind) {
    routes[kind.ordinal()].inc();
  }

  private CounterDataPoint failure(Protocol protocol, int route, DialOutcome outcome) {
    int i = (protocol.ordinal() * 2 + route) * OUTCOMES + outcome.ordinal();
    CounterDataPoint p = failures.get(i);
    if (p == null) {
      // labelValues returns the one child for these labels: a racing thread stores the same one.
      p = dialFailures.labelValues(protocol.label, routeLabel(route), outcome.label);
      failures.set(i, p);
    }
    return p;
  }

  private DistributionDataPoint duration(Protocol protocol, int route, DialOutcome outcome) {
    int i = (protocol.ordinal() * 2 + route) * OUTCOMES + outcome.ordinal();
    DistributionDataPoint p = durations.get(i);
    if (p == null) {
      p = dialSeconds.labelValues(protocol.label, routeLabel(route), outcome.label);
      durations.set(i, p);
    }
    return p;
  }

  private static String routeLabel(int route) {
    return route == 0 ? TunnelMetrics.ROUTE_AGENT : TunnelMetrics.ROUTE_DIRECT;
  }
}
