package io.egresstunnel.agent.policy;

import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import io.netty.util.NetUtil;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.StringJoiner;

/**
 * Which dials the agent performs for the server: every DIAL is checked against the agent's own node
 * before it dials, and a refusal fails only that stream. Allowed are the node's addresses on the
 * kubelet ports (the kubelet port and {@value #STREAMING_PORT}), the node's pod CIDRs on any port
 * in {@link EgressMode#POD} and {@link EgressMode#CLUSTER} mode, whatever an {@code --allow} rule
 * covers, and any address in a network the agent serves ({@code --serve-cidr}). An agent that
 * offers a default route ({@code --default-route}) also dials any other address, and host names
 * (resolved with its own resolver), except the {@linkplain #isDeniedByDefault addresses a default
 * route never reaches} unless an {@code --allow} rule covers them; a served host name ({@code
 * --serve-host}) is dialled likewise. Without either, a host name other than the node's own is
 * refused. Loopback is not implicitly allowed. Immutable and thread-safe.
 */
public final class DialPolicy {

  /** The container runtime's streaming port, allowed on node addresses like the kubelet port. */
  public static final int STREAMING_PORT = 10010;

  /** The result of {@link #check}: whether the dial may go ahead, and why (or why not). */
  public record Decision(boolean allowed, String reason) {

    static Decision allow(String reason) {
      return new Decision(true, reason);
    }

    static Decision refuse(String reason) {
      return new Decision(false, reason);
    }
  }

  private final EgressMode mode;
  private final String nodeName;
  private final List<InetAddress> nodeAddresses;
  private final List<Cidr> podCidrs;
  private final int kubeletPort;
  private final List<AllowRule> extraRules;
  private final boolean defaultRoute;
  private final List<Cidr> servedCidrs;
  private final List<String> servedHosts;

  private final boolean podCidrsDialled;
  private final String kubeletPortList;
  private final byte[][] nodeBytes;
  private final byte[][] podNets;
  private final int[] podLengths;
  private final byte[][] ruleNets;
  private final int[] ruleLengths;
  private final int[] ruleFrom;
  private final int[] ruleTo;
  private final Decision kubeletAllowed;
  private final Decision podAllowed;
  private final Decision[] ruleAllowed;
  private final byte[][] servedNets;
  private final int[] servedLengths;
  private final Decision[] servedAllowed;
  private final Decision defaultRouteAllowed;
  private final Decision servedHostAllowed;
  private final Decision nodeNameAllowed;

  /** A policy without a default route or served networks. */
  public DialPolicy(
      EgressMode mode,
      String nodeName,
      List<InetAddress> nodeAddresses,
      List<Cidr> podCidrs,
      int kubeletPort,
      List<AllowRule> extraRules) {
    this(
        mode,
        nodeName,
        nodeAddresses,
        podCidrs,
        kubeletPort,
        extraRules,
        false,
        List.of(),
        List.of());
  }

  /**
   * @param mode the egress selector mode; pod CIDRs are dialled in {@code pod} and {@code cluster}
   * @param nodeName the node the agent speaks for
   * @param nodeAddresses the node's addresses (IPv4-mapped IPv6 ones are stored as IPv4)
   * @param podCidrs the node's pod CIDRs
   * @param kubeletPort the kubelet's port, 1..65535
   * @param extraRules the {@code --allow} rules
   * @param defaultRoute whether the agent offers a default route ({@code --default-route})
   * @param servedCidrs networks the agent serves ({@code --serve-cidr}), on any port
   * @param servedHosts host names the agent serves ({@code --serve-host}), on any port
   */
  public DialPolicy(
      EgressMode mode,
      String nodeName,
      List<InetAddress> nodeAddresses,
      List<Cidr> podCidrs,
      int kubeletPort,
      List<AllowRule> extraRules,
      boolean defaultRoute,
      List<Cidr> servedCidrs,
      List<String> servedHosts) {
    this.mode = Objects.requireNonNull(mode, "mode");
    if (nodeName == null || nodeName.isBlank()) {
      throw new IllegalArgumentException("node name is missing");
    }
    if (kubeletPort < AllowRule.MIN_PORT || kubeletPort > AllowRule.MAX_PORT) {
      throw new IllegalArgumentException(
          "kubelet port " + kubeletPort + " is outside the allowed range 1..65535");
    }
    this.nodeName = nodeName;
    this.kubeletPort = kubeletPort;
    List<InetAddress> addresses = new ArrayList<>(nodeAddresses.size());
    for (InetAddress address : nodeAddresses) {
      addresses.add(IpBytes.normalize(Objects.requireNonNull(address, "node address")));
    }
    this.nodeAddresses = List.copyOf(addresses);
    List<Cidr> cidrs = new ArrayList<>(podCidrs.size());
    for (Cidr cidr : podCidrs) {
      cidrs.add(IpBytes.normalize(Objects.requireNonNull(cidr, "pod CIDR")));
    }
    this.podCidrs = List.copyOf(cidrs);
    this.extraRules = List.copyOf(extraRules);
    this.podCidrsDialled = mode == EgressMode.POD || mode == EgressMode.CLUSTER;
    this.kubeletPortList =
        kubeletPort == STREAMING_PORT
            ? Integer.toString(kubeletPort)
            : kubeletPort + ", " + STREAMING_PORT;

    nodeBytes = new byte[this.nodeAddresses.size()][];
    for (int i = 0; i < nodeBytes.length; i++) {
      nodeBytes[i] = this.nodeAddresses.get(i).getAddress();
    }
    podNets = new byte[this.podCidrs.size()][];
    podLengths = new int[podNets.length];
    for (int i = 0; i < podNets.length; i++) {
      podNets[i] = this.podCidrs.get(i).address().getAddress();
      podLengths[i] = this.podCidrs.get(i).prefixLength();
    }
    int rules = this.extraRules.size();
    ruleNets = new byte[rules][];
    ruleLengths = new int[rules];
    ruleFrom = new int[rules];
    ruleTo = new int[rules];
    ruleAllowed = new Decision[rules];
    for (int i = 0; i < rules; i++) {
      AllowRule rule = this.extraRules.get(i);
      Cidr cidr = rule.cidr();
      ruleNets[i] = cidr.address().getAddress();
      ruleLengths[i] = cidr.prefixLength();
      ruleFrom[i] = rule.fromPort();
      ruleTo[i] = rule.toPort();
      ruleAllowed[i] = Decision.allow("allowed by --allow " + rule);
    }
    kubeletAllowed = Decision.allow("kubelet port (" + kubeletPortList + ") of node " + nodeName);
    podAllowed = Decision.allow("in a pod CIDR of node " + nodeName);
    this.defaultRoute = defaultRoute;
    this.servedCidrs = servedCidrs.stream().map(IpBytes::normalize).toList();
    this.servedHosts = List.copyOf(servedHosts);
    servedNets = new byte[this.servedCidrs.size()][];
    servedLengths = new int[servedNets.length];
    servedAllowed = new Decision[servedNets.length];
    for (int i = 0; i < servedNets.length; i++) {
      Cidr c = this.servedCidrs.get(i);
      servedNets[i] = c.address().getAddress();
      servedLengths[i] = c.prefixLength();
      servedAllowed[i] = Decision.allow("in a network this agent serves (--serve-cidr " + c + ")");
    }
    defaultRouteAllowed = Decision.allow("this agent offers a default route (--default-route)");
    servedHostAllowed = Decision.allow("a host this agent serves (--serve-host)");
    nodeNameAllowed = Decision.allow("the name of node " + nodeName);
  }

  /**
   * Decides whether the agent may dial {@code target:port}. An IPv4-mapped IPv6 target is matched
   * as IPv4. Allowed decisions are preallocated; only a refusal builds its reason.
   */
  public Decision check(InetAddress target, int port) {
    return check(target, port, false);
  }

  private Decision check(InetAddress target, int port, boolean servedHost) {
    byte[] ip = IpBytes.normalized(target);
    boolean nodeAddress = false;
    for (byte[] node : nodeBytes) {
      if (IpBytes.inPrefix(node, node.length * 8, ip)) {
        nodeAddress = true;
        break;
      }
    }
    if (nodeAddress && (port == kubeletPort || port == STREAMING_PORT)) {
      return kubeletAllowed;
    }
    boolean inPodCidr = false;
    for (int i = 0; i < podNets.length; i++) {
      if (IpBytes.inPrefix(podNets[i], podLengths[i], ip)) {
        inPodCidr = true;
        break;
      }
    }
    if (inPodCidr && podCidrsDialled) {
      return podAllowed;
    }
    for (int i = 0; i < ruleNets.length; i++) {
      if (port >= ruleFrom[i]
          && port <= ruleTo[i]
          && IpBytes.inPrefix(ruleNets[i], ruleLengths[i], ip)) {
        return ruleAllowed[i];
      }
    }
    for (int i = 0; i < servedNets.length; i++) {
      if (IpBytes.inPrefix(servedNets[i], servedLengths[i], ip)) {
        return servedAllowed[i];
      }
    }
    if (defaultRoute || servedHost) {
      String denied = isDeniedByDefault(target);
      if (denied == null) {
        return servedHost ? servedHostAllowed : defaultRouteAllowed;
      }
      return Decision.refuse(
          NetUtil.toSocketAddressString(NetUtil.toAddressString(target), port)
              + " is "
              + denied
              + ", which "
              + (servedHost ? "a served host" : "the default route")
              + " never dials unless an --allow rule covers it");
    }
    return Decision.refuse(refusal(target, port, nodeAddress, inPodCidr));
  }

  /**
   * Decides whether the agent may dial {@code target:port}, an address it resolved from a host name
   * that {@link #checkName} admitted; {@code name} is that host name, or null for a literal.
   */
  public Decision check(InetAddress target, int port, String name) {
    return check(target, port, name != null && servesHost(name));
  }

  /**
   * Whether the agent may resolve and dial the host name {@code host} at all: the node's own name,
   * a served host, or any name with a default route. The resolved address is then checked too.
   */
  public Decision checkName(String host) {
    if (isNodeName(host)) {
      return nodeNameAllowed;
    }
    if (servesHost(host)) {
      return servedHostAllowed;
    }
    if (defaultRoute) {
      return defaultRouteAllowed;
    }
    return Decision.refuse(
        host
            + " is a host name; this agent dials names only with --default-route or --serve-host"
            + " (node "
            + nodeName
            + ")");
  }

  /** Whether {@code host} is one of the served host names, ignoring case. */
  public boolean servesHost(String host) {
    for (String h : servedHosts) {
      if (h.equalsIgnoreCase(host)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Why a default route (or a served host name) never dials {@code a} unless an {@code --allow}
   * rule covers it, or null: loopback (the agent's own host), link-local (among them the cloud
   * metadata address 169.254.169.254), the unspecified address, and multicast.
   */
  public static String isDeniedByDefault(InetAddress a) {
    InetAddress n = IpBytes.normalize(a);
    if (n.isLoopbackAddress()) {
      return "a loopback address";
    }
    if (n.isLinkLocalAddress()) {
      return "a link-local address (cloud metadata lives there)";
    }
    if (n.isAnyLocalAddress()) {
      return "the unspecified address";
    }
    if (n.isMulticastAddress()) {
      return "a multicast address";
    }
    return null;
  }

  /** True if {@code host} is this node's name, ignoring case. */
  public boolean isNodeName(String host) {
    return host != null && host.equalsIgnoreCase(nodeName);
  }

  /**
   * The address to dial when the server asks for the node by name: the first IPv4 node address,
   * else the first address.
   *
   * @throws IllegalStateException if the node has no addresses
   */
  public InetAddress nodeNameTarget() {
    if (nodeAddresses.isEmpty()) {
      throw new IllegalStateException(
          "node " + nodeName + " has no addresses to dial it by name; pass its node addresses");
    }
    for (InetAddress address : nodeAddresses) {
      if (address instanceof Inet4Address) {
        return address;
      }
    }
    return nodeAddresses.get(0);
  }

  /** One line for the startup log. */
  public String describe() {
    StringJoiner addresses = new StringJoiner(", ");
    for (InetAddress address : nodeAddresses) {
      addresses.add(NetUtil.toAddressString(address));
    }
    StringJoiner cidrs = new StringJoiner(", ");
    podCidrs.forEach(cidr -> cidrs.add(cidr.toString()));
    StringJoiner rules = new StringJoiner(", ");
    extraRules.forEach(rule -> rules.add(rule.toString()));
    return "dial policy for node "
        + nodeName
        + " (mode "
        + mode.flagValue()
        + "): node addresses ["
        + addresses
        + "] on kubelet ports ("
        + kubeletPortList
        + "); pod CIDRs ["
        + cidrs
        + "] "
        + (podCidrsDialled ? "on any port" : "not dialled in this mode")
        + "; --allow ["
        + rules
        + "]"
        + (servedCidrs.isEmpty() && servedHosts.isEmpty()
            ? ""
            : "; serves " + servedCidrs + " and hosts " + servedHosts)
        + (defaultRoute ? "; offers a default route" : "");
  }

  public boolean defaultRoute() {
    return defaultRoute;
  }

  public List<Cidr> servedCidrs() {
    return servedCidrs;
  }

  public List<String> servedHosts() {
    return servedHosts;
  }

  public EgressMode mode() {
    return mode;
  }

  public String nodeName() {
    return nodeName;
  }

  /** The node's addresses, IPv4-mapped ones in IPv4 form. */
  public List<InetAddress> nodeAddresses() {
    return nodeAddresses;
  }

  public List<Cidr> podCidrs() {
    return podCidrs;
  }

  public int kubeletPort() {
    return kubeletPort;
  }

  public List<AllowRule> extraRules() {
    return extraRules;
  }

  @Override
  public String toString() {
    return describe();
  }

  private String refusal(InetAddress target, int port, boolean nodeAddress, boolean inPodCidr) {
    StringBuilder reason =
        new StringBuilder(NetUtil.toSocketAddressString(NetUtil.toAddressString(target), port));
    if (nodeAddress) {
      reason
          .append(" is an address of node ")
          .append(nodeName)
          .append(" but not on a kubelet port (");
    } else {
      reason.append(" is not an address of node ").append(nodeName).append(" on a kubelet port (");
    }
    reason.append(kubeletPortList).append("), ");
    if (podCidrsDialled) {
      reason.append("not in its pod CIDRs, ");
    } else if (inPodCidr) {
      reason
          .append("is in its pod CIDRs but egress mode ")
          .append(mode.flagValue())
          .append(" does not dial pod CIDRs, ");
    }
    return reason.append("and not in any --allow rule").toString();
  }
}
