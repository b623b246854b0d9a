package io.egresstunnel.routing;

import java.util.Locale;

/**
 * What the server sends through agents, as K3s's {@code --egress-selector-mode}. Everything a mode
 * does not route through an agent is dialled directly by the server.
 */
public enum EgressMode {
  /** Nothing goes through agents: the server is a plain CONNECT proxy. */
  DISABLED("nothing goes through agents; the server dials every target itself"),
  /**
   * Kubelet connections (node address or name, on the kubelet ports) go through the node's agent.
   */
  AGENT("kubelet connections go through the node's agent"),
  /** As {@link #AGENT}, plus destinations in a node's pod CIDRs. */
  POD("kubelet connections and the node's pod CIDRs go through the node's agent"),
  /** As {@link #AGENT}, plus pod IPs and EndpointSlice addresses, each to its node. */
  CLUSTER("kubelet connections, pod IPs and endpoint addresses go through their node's agent");

  private final String description;

  EgressMode(String description) {
    this.description = description;
  }

  /** One line that says what the mode routes. */
  public String description() {
    return description;
  }

  /** The flag value: {@code disabled}, {@code agent}, {@code pod} or {@code cluster}. */
  public String flagValue() {
    return name().toLowerCase(Locale.ROOT);
  }

  /** Parses a flag value, case-insensitively, with an error that lists the valid values. */
  public static EgressMode parse(String value) {
    for (EgressMode m : values()) {
      if (m.flagValue().equalsIgnoreCase(value.trim())) {
        return m;
      }
    }
    throw new IllegalArgumentException(
        "unknown egress selector mode '" + value + "'; expected disabled, agent, pod or cluster");
  }
}
