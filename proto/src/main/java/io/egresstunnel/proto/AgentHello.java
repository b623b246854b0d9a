package io.egresstunnel.proto;

import java.net.InetAddress;
import java.util.List;

/**
 * The agent's first frame: the versions it speaks and the node it speaks for. {@code initialWindow}
 * and {@code maxFramePayload} are what the agent grants and accepts for data the server sends it.
 *
 * @param minVersion lowest protocol version the agent speaks
 * @param maxVersion highest protocol version the agent speaks
 * @param capabilities optional features the agent offers (bit set: {@link #CAP_DEFAULT_ROUTE},
 *     {@link #CAP_SERVED_NETWORKS}, which is set whenever served networks are declared, {@link
 *     #CAP_UNMASKED_FRAMES})
 * @param initialWindow per-stream credit the agent grants the server, in bytes
 * @param maxFramePayload largest frame body the agent accepts
 * @param kubeletPort the node's kubelet port
 * @param nodeName the Kubernetes node name
 * @param addresses the node's addresses, IPv4 and IPv6
 * @param podCidrs the node's pod CIDRs
 * @param servedCidrs networks the agent serves besides its node ({@code --serve-cidr}): any address
 *     in them routes through this agent, in every mode but {@code disabled}
 * @param servedHosts host names the agent serves ({@code --serve-host}), routed the same way
 */
public record AgentHello(
    int minVersion,
    int maxVersion,
    int capabilities,
    int initialWindow,
    int maxFramePayload,
    int kubeletPort,
    String nodeName,
    List<InetAddress> addresses,
    List<Cidr> podCidrs,
    List<Cidr> servedCidrs,
    List<String> servedHosts)
    implements Frame {

  /**
   * The agent carries targets that no node owns (Services' ClusterIPs, names, external addresses)
   * when the server's default route sends them to agents ({@code --default-route}).
   */
  public static final int CAP_DEFAULT_ROUTE = 1;

  /** The hello carries the served networks extension after its version-1 fields. */
  public static final int CAP_SERVED_NETWORKS = 2;

  /**
   * The agent would send its websocket frames unmasked. RFC 6455 has clients mask every frame, so
   * that an intermediary that does not understand websockets cannot be made to read the payload as
   * HTTP. Masking costs a copy of every byte the agent sends, and the server decodes unmasked
   * frames as well, so the agent asks; once the server's hello accepts, the agent stops masking.
   */
  public static final int CAP_UNMASKED_FRAMES = 4;

  /** The capabilities a server of this version accepts when an agent offers them. */
  public static final int SERVER_ACCEPTS =
      CAP_DEFAULT_ROUTE | CAP_SERVED_NETWORKS | CAP_UNMASKED_FRAMES;

  /** A hello that declares no served networks. */
  public AgentHello(
      int minVersion,
      int maxVersion,
      int capabilities,
      int initialWindow,
      int maxFramePayload,
      int kubeletPort,
      String nodeName,
      List<InetAddress> addresses,
      List<Cidr> podCidrs) {
    this(
        minVersion,
        maxVersion,
        capabilities,
        initialWindow,
        maxFramePayload,
        kubeletPort,
        nodeName,
        addresses,
        podCidrs,
        List.of(),
        List.of());
  }

  public AgentHello {
    Limits.check("min version", minVersion, 1, 0xFFFF);
    Limits.check("max version", maxVersion, minVersion, 0xFFFF);
    Limits.checkWindow("initial window", initialWindow);
    Limits.checkMaxFramePayload("max frame payload", maxFramePayload);
    Limits.check("kubelet port", kubeletPort, 1, 0xFFFF);
    Limits.checkName("node name", nodeName);
    addresses = List.copyOf(addresses);
    podCidrs = List.copyOf(podCidrs);
    Limits.check("address count", addresses.size(), 0, Limits.MAX_HELLO_ENTRIES);
    Limits.check("pod CIDR count", podCidrs.size(), 0, Limits.MAX_HELLO_ENTRIES);
    servedCidrs = List.copyOf(servedCidrs);
    servedHosts = List.copyOf(servedHosts);
    Limits.check("served CIDR count", servedCidrs.size(), 0, Limits.MAX_HELLO_ENTRIES);
    Limits.check("served host count", servedHosts.size(), 0, Limits.MAX_HELLO_ENTRIES);
    servedHosts.forEach(h -> Limits.checkName("served host", h));
    if (!servedCidrs.isEmpty() || !servedHosts.isEmpty()) {
      capabilities |= CAP_SERVED_NETWORKS;
    }
  }

  /** Whether the agent offers to carry targets that no node owns. */
  public boolean offersDefaultRoute() {
    return (capabilities & CAP_DEFAULT_ROUTE) != 0;
  }

  @Override
  public FrameType type() {
    return FrameType.AGENT_HELLO;
  }

  @Override
  public int streamId() {
    return 0;
  }
}
