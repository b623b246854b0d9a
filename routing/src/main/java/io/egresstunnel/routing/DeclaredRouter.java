package io.egresstunnel.routing;

import io.egresstunnel.routing.index.RouteIndex;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The routing source fed from agent hellos: each connected agent {@linkplain #upsert declares} its
 * node, and the node is {@linkplain #remove removed} when the agent goes away. Routes follow K3s's
 * {@code --egress-selector-mode}:
 *
 * <ul>
 *   <li>{@link EgressMode#DISABLED}: every connection is {@link Route#DIRECT}.
 *   <li>{@link EgressMode#AGENT}: a kubelet connection goes through its node's agent. It is one
 *       whose host is one of the node's addresses or its name (case-insensitively), and whose port
 *       is the node's kubelet port or {@link #STREAMING_PORT}.
 *   <li>{@link EgressMode#POD}: as {@code AGENT}, plus any port of an address inside a node's pod
 *       CIDRs goes through that node's agent; the longest matching prefix wins.
 *   <li>{@link EgressMode#CLUSTER}: hellos carry no per-pod data, so this source routes it like
 *       {@code POD}. Pod IPs and endpoint addresses come with the Kubernetes API source.
 * </ul>
 *
 * Everything else is {@link Route#DEFAULT} (no node owns it), or {@link Route#DIRECT} in {@code
 * disabled} mode. When nodes declare the same address, name or pod CIDR, the most recently upserted
 * one owns it; replacing or removing a node leaves the others' claims in place. IP literals are
 * parsed without name resolution, and an IPv4-mapped IPv6 literal such as {@code ::ffff:10.0.0.1}
 * counts as its IPv4 address.
 *
 * <p>{@link #route} reads an immutable {@link RouteIndex} without locking and allocates nothing;
 * writers are serialized and publish a new index, so writes are meant to be rare (once per agent
 * connect or disconnect).
 */
public final class DeclaredRouter implements Router {

  /** The container runtime's streaming port (exec, attach, port-forward), also a kubelet port. */
  public static final int STREAMING_PORT = RouteIndex.STREAMING_PORT;

  private final EgressMode mode;

  /** Every node by name, oldest upsert first; guarded by {@code this}. */
  private final LinkedHashMap<String, NodeInfo> declared = new LinkedHashMap<>();

  private volatile Snapshot snapshot = new Snapshot(declared);

  public DeclaredRouter(EgressMode mode) {
    if (mode == null) {
      throw new IllegalArgumentException("egress selector mode is missing");
    }
    this.mode = mode;
  }

  /** The mode this router applies. */
  public EgressMode mode() {
    return mode;
  }

  /** Adds {@code node}, or replaces the node of that name together with its addresses and CIDRs. */
  public synchronized void upsert(NodeInfo node) {
    declared.remove(node.name());
    declared.put(node.name(), node);
    snapshot = new Snapshot(declared);
  }

  /** Removes the node called {@code nodeName}, if present. */
  public synchronized void remove(String nodeName) {
    if (declared.remove(nodeName) != null) {
      snapshot = new Snapshot(declared);
    }
  }

  /** The node called exactly {@code name}, if present. */
  public Optional<NodeInfo> node(String name) {
    return Optional.ofNullable(snapshot.byName.get(name));
  }

  /** Every node, as of now (an unmodifiable copy). */
  public Collection<NodeInfo> nodes() {
    return snapshot.byName.values();
  }

  @Override
  public Route route(String host, int port) {
    return snapshot.index.route(host, port, mode);
  }

  /** Immutable lookup state, built from the nodes in upsert order so later claims win. */
  private static final class Snapshot {
    final Map<String, NodeInfo> byName;
    final RouteIndex index;

    Snapshot(Map<String, NodeInfo> nodes) {
      byName = Map.copyOf(nodes);
      RouteIndex.Builder b = RouteIndex.builder();
      nodes.values().forEach(b::node);
      index = b.build();
    }
  }
}
