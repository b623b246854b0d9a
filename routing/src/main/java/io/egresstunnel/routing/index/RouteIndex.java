package io.egresstunnel.routing.index;

import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.routing.NodeInfo;
import io.egresstunnel.routing.Route;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * An immutable index from destinations to nodes, with lookups that allocate nothing: exact-address
 * tables for node addresses (kubelet routes) and pod or endpoint IPs, one table per prefix length
 * for longest-prefix match over pod CIDRs, and a case-insensitive table of node names. IPv4 and
 * IPv6 alike; an IPv4-mapped IPv6 literal counts as IPv4. Sources build a new index when their data
 * change; readers use whichever index they hold.
 *
 * <p>A route through an agent is one of:
 *
 * <ul>
 *   <li>a node's address or name on its kubelet port or {@link #STREAMING_PORT} (every mode but
 *       {@code disabled});
 *   <li>a pod or endpoint IP added with {@link Builder#podIp} ({@code cluster} mode);
 *   <li>an address inside a pod CIDR of a node ({@code pod} and {@code cluster} modes; a source
 *       that knows pod IPs in cluster mode does not add CIDRs).
 * </ul>
 *
 * Then, in every mode but {@code disabled}, a network that an agent serves ({@link
 * Builder#servedCidr}, longest prefix first; {@link Builder#servedHost}) routes any port through
 * that agent ({@link Route.ViaNetwork}). Anything else is {@link Route#DEFAULT}: no node owns it.
 * When claims collide, the one added last wins.
 */
public final class RouteIndex {
  /** The container runtime's streaming port (exec, attach, port-forward), also a kubelet port. */
  public static final int STREAMING_PORT = 10010;

  private static final ThreadLocal<AddressParser> PARSER =
      ThreadLocal.withInitial(AddressParser::new);

  private final Route[] routes;
  private final Route[] networkRoutes;
  private final int[] kubeletPorts;
  private final IntIntTable nodeV4;
  private final LongPairIntTable nodeV6;
  private final IntIntTable podV4;
  private final LongPairIntTable podV6;
  private final int[] v4Lengths;
  private final IntIntTable[] cidrV4;
  private final int[] v6Lengths;
  private final LongPairIntTable[] cidrV6;
  private final NameTable names;
  private final int podEntries;
  private final int[] servedV4Lengths;
  private final IntIntTable[] servedV4;
  private final int[] servedV6Lengths;
  private final LongPairIntTable[] servedV6;
  private final NameTable servedNames;

  private RouteIndex(Builder b) {
    int n = b.nodeNames.size();
    routes = new Route[n];
    networkRoutes = new Route[n];
    kubeletPorts = new int[n];
    for (int i = 0; i < n; i++) {
      routes[i] = new Route.ViaAgent(b.nodeNames.get(i));
      networkRoutes[i] = new Route.ViaNetwork(b.nodeNames.get(i));
      kubeletPorts[i] = b.kubeletPorts.get(i);
    }
    nodeV4 = b.nodeAddresses.v4Table();
    nodeV6 = b.nodeAddresses.v6Table();
    podV4 = b.podAddresses.v4Table();
    podV6 = b.podAddresses.v6Table();
    podEntries = b.podAddresses.size();
    v4Lengths = lengths(b.cidrV4);
    cidrV4 =
        b.cidrV4.descendingMap().values().stream()
            .map(Addresses::v4Table)
            .toArray(IntIntTable[]::new);
    v6Lengths = lengths(b.cidrV6);
    cidrV6 =
        b.cidrV6.descendingMap().values().stream()
            .map(Addresses::v6Table)
            .toArray(LongPairIntTable[]::new);
    names = nameTable(b.nameKeys, b.nameValues);
    servedV4Lengths = lengths(b.servedV4);
    servedV4 =
        b.servedV4.descendingMap().values().stream()
            .map(Addresses::v4Table)
            .toArray(IntIntTable[]::new);
    servedV6Lengths = lengths(b.servedV6);
    servedV6 =
        b.servedV6.descendingMap().values().stream()
            .map(Addresses::v6Table)
            .toArray(LongPairIntTable[]::new);
    servedNames = nameTable(b.servedHostKeys, b.servedHostValues);
  }

  /** The prefix lengths of {@code byLength}, longest first. */
  private static int[] lengths(TreeMap<Integer, Addresses> byLength) {
    return byLength.descendingKeySet().stream().mapToInt(Integer::intValue).toArray();
  }

  private static NameTable nameTable(List<String> keys, List<Integer> values) {
    return new NameTable(
        keys.toArray(String[]::new),
        values.stream().mapToInt(Integer::intValue).toArray(),
        keys.size());
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Where a connection to {@code host:port} goes in {@code mode}. Allocates nothing. */
  public Route route(CharSequence host, int port, EgressMode mode) {
    if (mode == EgressMode.DISABLED) {
      return Route.DIRECT;
    }
    AddressParser p = PARSER.get();
    int node;
    switch (p.parse(host)) {
      case AddressParser.V4 -> {
        int a = p.v4;
        node = nodeV4.get(a);
        if (node >= 0 && isKubeletPort(node, port)) {
          return routes[node];
        }
        if (mode != EgressMode.AGENT) {
          if (mode == EgressMode.CLUSTER && (node = podV4.get(a)) >= 0) {
            return routes[node];
          }
          if ((node = longestV4(v4Lengths, cidrV4, a)) >= 0) {
            return routes[node];
          }
        }
        node = longestV4(servedV4Lengths, servedV4, a);
        return node >= 0 ? networkRoutes[node] : Route.DEFAULT;
      }
      case AddressParser.V6 -> {
        long hi = p.hi;
        long lo = p.lo;
        node = nodeV6.get(hi, lo);
        if (node >= 0 && isKubeletPort(node, port)) {
          return routes[node];
        }
        if (mode != EgressMode.AGENT) {
          if (mode == EgressMode.CLUSTER && (node = podV6.get(hi, lo)) >= 0) {
            return routes[node];
          }
          if ((node = longestV6(v6Lengths, cidrV6, hi, lo)) >= 0) {
            return routes[node];
          }
        }
        node = longestV6(servedV6Lengths, servedV6, hi, lo);
        return node >= 0 ? networkRoutes[node] : Route.DEFAULT;
      }
      default -> {
        node = names.get(host);
        if (node >= 0 && isKubeletPort(node, port)) {
          return routes[node];
        }
        node = servedNames.get(host);
        return node >= 0 ? networkRoutes[node] : Route.DEFAULT;
      }
    }
  }

  /** The node of the longest prefix in {@code tables} that holds {@code a}, or -1. */
  private static int longestV4(int[] lengths, IntIntTable[] tables, int a) {
    for (int i = 0; i < lengths.length; i++) {
      int len = lengths[i];
      int node = tables[i].get(a & (len == 0 ? 0 : -1 << (32 - len)));
      if (node >= 0) {
        return node;
      }
    }
    return -1;
  }

  private static int longestV6(int[] lengths, LongPairIntTable[] tables, long hi, long lo) {
    for (int i = 0; i < lengths.length; i++) {
      int node = tables[i].get(hi & hiMask(lengths[i]), lo & loMask(lengths[i]));
      if (node >= 0) {
        return node;
      }
    }
    return -1;
  }

  private boolean isKubeletPort(int node, int port) {
    return kubeletPorts[node] > 0 && (port == kubeletPorts[node] || port == STREAMING_PORT);
  }

  /** Pod and endpoint IPs held. */
  public int podEntries() {
    return podEntries;
  }

  /** Bytes of the address tables (excluding node names), for capacity planning. */
  public long tableBytes() {
    long total = nodeV4.bytes() + nodeV6.bytes() + podV4.bytes() + podV6.bytes();
    for (IntIntTable t : cidrV4) {
      total += t.bytes();
    }
    for (LongPairIntTable t : cidrV6) {
      total += t.bytes();
    }
    return total;
  }

  static long hiMask(int len) {
    return len == 0 ? 0 : len >= 64 ? -1L : -1L << (64 - len);
  }

  static long loMask(int len) {
    return len <= 64 ? 0 : len == 128 ? -1L : -1L << (128 - len);
  }

  /** Collects claims in order; later claims win. Not thread-safe. */
  public static final class Builder {
    private final List<String> nodeNames = new ArrayList<>();
    private final List<Integer> kubeletPorts = new ArrayList<>();
    private final Map<String, Integer> nodeIndex = new HashMap<>();
    private final Addresses nodeAddresses = new Addresses();
    private final Addresses podAddresses = new Addresses();
    private final TreeMap<Integer, Addresses> cidrV4 = new TreeMap<>();
    private final TreeMap<Integer, Addresses> cidrV6 = new TreeMap<>();
    private final List<String> nameKeys = new ArrayList<>();
    private final List<Integer> nameValues = new ArrayList<>();
    private final TreeMap<Integer, Addresses> servedV4 = new TreeMap<>();
    private final TreeMap<Integer, Addresses> servedV6 = new TreeMap<>();
    private final List<String> servedHostKeys = new ArrayList<>();
    private final List<Integer> servedHostValues = new ArrayList<>();

    private int indexOf(String node) {
      Integer i = nodeIndex.get(node);
      if (i == null) {
        i = nodeNames.size();
        nodeIndex.put(node, i);
        nodeNames.add(node);
        kubeletPorts.add(0);
      }
      return i;
    }

    /** A node: its name and addresses route kubelet ports, its pod CIDRs route any port. */
    public Builder node(NodeInfo node) {
      int i = indexOf(node.name());
      kubeletPorts.set(i, node.kubeletPort());
      nameKeys.add(node.name());
      nameValues.add(i);
      for (InetAddress a : node.addresses()) {
        nodeAddresses.add(a.getAddress(), i);
      }
      for (Cidr c : node.podCidrs()) {
        addCidr(c.isIpv4() ? cidrV4 : cidrV6, c, i);
      }
      return this;
    }

    private static void addCidr(TreeMap<Integer, Addresses> byLength, Cidr c, int node) {
      byLength
          .computeIfAbsent(c.prefixLength(), k -> new Addresses())
          .add(c.address().getAddress(), node);
    }

    /** A network that the agent of {@code node} serves: any port of any address in it. */
    public Builder servedCidr(Cidr cidr, String node) {
      addCidr(cidr.isIpv4() ? servedV4 : servedV6, cidr, indexOf(node));
      return this;
    }

    /** A host name that the agent of {@code node} serves, on any port (case-insensitive). */
    public Builder servedHost(String name, String node) {
      servedHostKeys.add(name);
      servedHostValues.add(indexOf(node));
      return this;
    }

    /**
     * Another name of {@code node} (a Hostname, InternalDNS or ExternalDNS address): routes its
     * kubelet ports like the node's own name. Add it after the node.
     */
    public Builder alias(String name, String node) {
      nameKeys.add(name);
      nameValues.add(indexOf(node));
      return this;
    }

    /** A pod or endpoint IP that lives on {@code node} (cluster mode). */
    public Builder podIp(InetAddress ip, String node) {
      podAddresses.add(ip.getAddress(), indexOf(node));
      return this;
    }

    public RouteIndex build() {
      return new RouteIndex(this);
    }
  }

  /** Growable parallel arrays of addresses and node indices, by family. */
  private static final class Addresses {
    private int[] v4 = new int[16];
    private int[] v4Nodes = new int[16];
    private int v4Count;
    private long[] v6Hi = new long[16];
    private long[] v6Lo = new long[16];
    private int[] v6Nodes = new int[16];
    private int v6Count;

    void add(byte[] raw, int node) {
      if (raw.length == 16 && isMapped(raw)) {
        raw = java.util.Arrays.copyOfRange(raw, 12, 16);
      }
      if (raw.length == 4) {
        if (v4Count == v4.length) {
          v4 = java.util.Arrays.copyOf(v4, v4Count * 2);
          v4Nodes = java.util.Arrays.copyOf(v4Nodes, v4Count * 2);
        }
        v4[v4Count] =
            ((raw[0] & 0xFF) << 24)
                | ((raw[1] & 0xFF) << 16)
                | ((raw[2] & 0xFF) << 8)
                | (raw[3] & 0xFF);
        v4Nodes[v4Count++] = node;
      } else {
        if (v6Count == v6Hi.length) {
          v6Hi = java.util.Arrays.copyOf(v6Hi, v6Count * 2);
          v6Lo = java.util.Arrays.copyOf(v6Lo, v6Count * 2);
          v6Nodes = java.util.Arrays.copyOf(v6Nodes, v6Count * 2);
        }
        v6Hi[v6Count] = longAt(raw, 0);
        v6Lo[v6Count] = longAt(raw, 8);
        v6Nodes[v6Count++] = node;
      }
    }

    int size() {
      return v4Count + v6Count;
    }

    IntIntTable v4Table() {
      return new IntIntTable(v4, v4Nodes, v4Count);
    }

    LongPairIntTable v6Table() {
      return new LongPairIntTable(v6Hi, v6Lo, v6Nodes, v6Count);
    }

    private static boolean isMapped(byte[] raw) {
      for (int i = 0; i < 10; i++) {
        if (raw[i] != 0) {
          return false;
        }
      }
      return raw[10] == (byte) 0xFF && raw[11] == (byte) 0xFF;
    }

    private static long longAt(byte[] raw, int off) {
      long v = 0;
      for (int i = 0; i < 8; i++) {
        v = (v << 8) | (raw[off + i] & 0xFF);
      }
      return v;
    }
  }
}
