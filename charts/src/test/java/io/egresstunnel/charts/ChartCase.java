package io.egresstunnel.charts;

import java.util.List;

/**
 * One set of chart values and what it should give, worked out here from the values (and the chart's
 * defaults) independently of the templates.
 */
record ChartCase(String name, Values values) {

  static ChartCase of(String name, Values values) {
    return new ChartCase(name, values);
  }

  String mode() {
    return values.getString("mode", "agent");
  }

  String serverKind() {
    return values.getString("server.kind", "DaemonSet");
  }

  boolean serverHostNetwork() {
    return serverKind().equals("DaemonSet");
  }

  String transport() {
    String t = values.getString("server.connect.transport", "");
    return !t.isEmpty() ? t : serverHostNetwork() ? "uds" : "tcp";
  }

  boolean tls() {
    return values.getBoolean("tls.enabled", false);
  }

  boolean agents() {
    return values.getBoolean("agent.enabled", true) && !mode().equals("disabled");
  }

  /** The agent authentication in force, or null without agents. */
  String auth() {
    return agents() ? values.getString("agentAuth.type", "serviceAccountToken") : null;
  }

  boolean serverWatchApi() {
    return values.getBoolean("server.watchApi", true);
  }

  /** The server talks to the API: for routes (mode needs some) or TokenReviews. */
  boolean serverInCluster() {
    return !mode().equals("disabled") && (serverWatchApi() || "serviceAccountToken".equals(auth()));
  }

  boolean agentWatchApi() {
    if (!agents()) {
      return false;
    }
    Object v = values.get("agent.watchApi", null);
    return v instanceof Boolean b ? b : List.of("pod", "cluster").contains(mode());
  }

  int serverCount() {
    return serverKind().equals("Deployment")
        ? ((Number) values.get("server.replicas", 2)).intValue()
        : ((Number) values.get("server.count", 1)).intValue();
  }

  boolean serviceMonitor() {
    return values.getBoolean("metrics.serviceMonitor.enabled", false);
  }

  boolean networkPolicy() {
    return values.getBoolean("networkPolicy.enabled", false);
  }

  boolean hostIPs() {
    return values.getBoolean("agent.hostIPs", false);
  }

  @Override
  public String toString() {
    return name + " " + values;
  }
}
