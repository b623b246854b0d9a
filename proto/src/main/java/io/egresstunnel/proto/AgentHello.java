package io.egresstunnel.proto;

import java.net.InetAddress;
import java.util.List;

/**
 * The agent's first frame: the versions it speaks and the node it speaks for. {@code initialWindow}
 * and {@code maxFramePayload} are what the agent grants and accepts for data the server sends it.
 *
 * @param minVersion lowest protocol version the agent speaks
 * @param maxVersion highest protocol version the agent speaks
 * @param capabilities optional features the agent offers (bit set; none are defined in version 1)
 * @param initialWindow per-stream credit the agent grants the server, in bytes
 * @param maxFramePayload largest frame body the agent accepts
 * @param kubeletPort the node's kubelet port
 * @param nodeName the Kubernetes node name
 * @param addresses the node's addresses, IPv4 and IPv6
 * @param podCidrs the node's pod CIDRs
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
    List<Cidr> podCidrs)
    implements Frame {

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
