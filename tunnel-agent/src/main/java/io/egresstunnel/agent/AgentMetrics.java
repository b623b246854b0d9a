package io.egresstunnel.agent;

import io.egresstunnel.proto.metrics.BuildInfo;
import io.egresstunnel.proto.metrics.TunnelMetrics;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.proto.session.UpgradeRefusal;
import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.util.function.IntSupplier;

/**
 * tunnel-agent's metrics (docs/metrics.md): the tunnel's own ({@link TunnelMetrics}, prefix {@code
 * egress_tunnel_agent_}, with the agent's dials by outcome and their latency), plus sessions held,
 * servers announced and reconnects.
 */
public final class AgentMetrics {
  static final String PREFIX = "egress_tunnel_agent_";

  private final PrometheusRegistry registry;
  private final TunnelMetrics tunnel;
  private final Counter reconnects;
  private final CounterDataPoint[] upgradesRefused =
      new CounterDataPoint[UpgradeRefusal.values().length];

  /**
   * Registers the agent's metrics in {@code registry}; {@code sessions} (sessions held now) and
   * {@code servers} (servers the hellos announce) are read at each scrape; {@code mode} (the {@code
   * --mode} value) labels {@code build_info}.
   */
  AgentMetrics(
      PrometheusRegistry registry, IntSupplier sessions, IntSupplier servers, String mode) {
    this.registry = registry;
    this.tunnel = new TunnelMetrics(registry, PREFIX, TunnelSession.Role.AGENT);
    BuildInfo.register(registry, PREFIX, mode);
    GaugeWithCallback.builder()
        .name(PREFIX + "sessions_connected")
        .help("Sessions established now, one per server held.")
        .callback(cb -> cb.call(sessions.getAsInt()))
        .register(registry);
    GaugeWithCallback.builder()
        .name(PREFIX + "servers")
        .help("Servers serving the cluster, as their hellos announce (1 before any hello).")
        .callback(cb -> cb.call(servers.getAsInt()))
        .register(registry);
    reconnects =
        Counter.builder()
            .name(PREFIX + "reconnects_total")
            .help("Reconnects scheduled after a connection failed, closed or reached a duplicate.")
            .withoutExemplars()
            .register(registry);
    Counter refused =
        Counter.builder()
            .name(PREFIX + "upgrades_refused_total")
            .help(
                "Websocket upgrades a server refused, by the reason it named (no_credentials,"
                    + " bad_token, wrong_node, ...; other when it named none).")
            .labelNames("reason")
            .withoutExemplars()
            .register(registry);
    for (UpgradeRefusal r : UpgradeRefusal.values()) {
      upgradesRefused[r.ordinal()] = refused.labelValues(r.label);
    }
  }

  public PrometheusRegistry registry() {
    return registry;
  }

  /** What every session reports. */
  public TunnelMetrics tunnel() {
    return tunnel;
  }

  /** A server refused an upgrade, for {@code reason}. */
  void upgradeRefused(UpgradeRefusal reason) {
    upgradesRefused[reason.ordinal()].inc();
  }

  /** A tunnel will connect again. */
  void reconnecting() {
    reconnects.inc();
  }
}
