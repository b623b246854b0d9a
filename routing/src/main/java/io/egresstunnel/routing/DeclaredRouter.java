package io.egresstunnel.routing;

import io.egresstunnel.proto.Cidr;
import io.netty.util.NetUtil;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;

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
 * Everything else is {@link Route#DIRECT}. When nodes declare the same address, name or pod CIDR,
 * the most recently upserted one owns it; replacing or removing a node leaves the others' claims in
 * place. IP literals are parsed without name resolution, and an IPv4-mapped IPv6 literal such as
 * {@code ::ffff:10.0.0.1} counts as its IPv4 address.
 *
 * <p>{@link #route} reads an immutable snapshot without locking; writers are serialized and publish
 * a new snapshot, so writes are meant to be rare (once per agent connect or disconnect).
 */
public final class DeclaredRouter implements Router {

  /** The container runtime's streaming port (exec, attach, port-forward), also a kubelet port. */
  public static final int STREAMING_PORT = 10010;

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
    if (mode == EgressMode.DISABLED) {
      return Route.DIRECT;
    }
    Snapshot s = snapshot;
    InetAddress ip = parseLiteral(host);
    NodeInfo kubeletNode =
        ip == null ? s.byLowerName.get(host.toLowerCase(Locale.ROOT)) : s.byAddress.get(ip);
    if (kubeletNode != null && (port == kubeletNode.kubeletPort() || port == STREAMING_PORT)) {
      return new Route.ViaAgent(kubeletNode.name());
    }
    if (ip != null && (mode == EgressMode.POD || mode == EgressMode.CLUSTER)) {
      NodeInfo podNode = s.podNode(ip);
      if (podNode != null) {
        return new Route.ViaAgent(podNode.name());
      }
    }
    return Route.DIRECT;
  }

  /** The address of an IP literal (IPv4-mapped IPv6 as IPv4), or null for a host name. */
  private static InetAddress parseLiteral(String host) {
    byte[] raw = NetUtil.createByteArrayFromIpAddressString(host);
    return raw == null ? null : toAddress(raw);
  }

  /** Same address, with an IPv4-mapped IPv6 address turned into IPv4. */
  private static InetAddress normalize(InetAddress address) {
    return toAddress(address.getAddress());
  }

  /** {@link InetAddress#getByAddress(byte[])}, which turns IPv4-mapped IPv6 into IPv4. */
  private static InetAddress toAddress(byte[] raw) {
    try {
      return InetAddress.getByAddress(raw);
    } catch (UnknownHostException e) {
      throw new IllegalArgumentException("IP address of " + raw.length + " bytes", e);
    }
  }

  /** Immutable lookup tables, built from the nodes in upsert order so later claims win. */
  private static final class Snapshot {
    final Map<String, NodeInfo> byName;
    final Map<String, NodeInfo> byLowerName;
    final Map<InetAddress, NodeInfo> byAddress;
    final Map<Cidr, NodeInfo> byPodCidr;

    /** Distinct pod CIDR prefix lengths per family, longest first. */
    final int[] ipv4PrefixLengths;

    final int[] ipv6PrefixLengths;

    Snapshot(Map<String, NodeInfo> nodes) {
      Map<String, NodeInfo> lowerNames = new HashMap<>();
      Map<InetAddress, NodeInfo> addresses = new HashMap<>();
      Map<Cidr, NodeInfo> podCidrs = new HashMap<>();
      TreeSet<Integer> ipv4Lengths = new TreeSet<>();
      TreeSet<Integer> ipv6Lengths = new TreeSet<>();
      for (NodeInfo node : nodes.values()) {
        lowerNames.put(node.name().toLowerCase(Locale.ROOT), node);
        for (InetAddress address : node.addresses()) {
          addresses.put(normalize(address), node);
        }
        for (Cidr cidr : node.podCidrs()) {
          podCidrs.put(cidr, node);
          (cidr.isIpv4() ? ipv4Lengths : ipv6Lengths).add(cidr.prefixLength());
        }
      }
      byName = Map.copyOf(nodes);
      byLowerName = Map.copyOf(lowerNames);
      byAddress = Map.copyOf(addresses);
      byPodCidr = Map.copyOf(podCidrs);
      ipv4PrefixLengths = descending(ipv4Lengths);
      ipv6PrefixLengths = descending(ipv6Lengths);
    }

    /** The node whose pod CIDR holds {@code ip} with the longest prefix, or null. */
    NodeInfo podNode(InetAddress ip) {
      byte[] raw = ip.getAddress();
      for (int length : raw.length == 4 ? ipv4PrefixLengths : ipv6PrefixLengths) {
        NodeInfo node = byPodCidr.get(new Cidr(network(raw, length), length));
        if (node != null) {
          return node;
        }
      }
      return null;
    }

    /**
     * The first {@code length} bits of {@code raw}, the rest zero, in the family of {@code raw}.
     */
    private static InetAddress network(byte[] raw, int length) {
      byte[] net = raw.clone();
      for (int i = length >>> 3; i < net.length; i++) {
        int keep = i == length >>> 3 ? (0xFF00 >>> (length & 7)) & 0xFF : 0;
        net[i] &= (byte) keep;
      }
      if (net.length == 4) {
        return toAddress(net);
      }
      try {
        // Not InetAddress.getByAddress: it would turn an IPv4-mapped prefix into IPv4.
        return Inet6Address.getByAddress(null, net, -1);
      } catch (UnknownHostException e) {
        throw new IllegalArgumentException("IPv6 address of " + net.length + " bytes", e);
      }
    }

    private static int[] descending(TreeSet<Integer> lengths) {
      return lengths.descendingSet().stream().mapToInt(Integer::intValue).toArray();
    }
  }
}
