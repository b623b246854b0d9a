package io.egresstunnel.routing;

import io.egresstunnel.proto.Cidr;
import io.egresstunnel.proto.Limits;
import java.net.InetAddress;
import java.util.List;

/**
 * What is known about a node for routing: what its agent declares in its hello (later also what the
 * Kubernetes API says about it).
 *
 * @param name the Kubernetes node name
 * @param addresses the node's addresses, IPv4 and IPv6
 * @param podCidrs the node's pod CIDRs
 * @param kubeletPort the port its kubelet listens on
 */
public record NodeInfo(
    String name, List<InetAddress> addresses, List<Cidr> podCidrs, int kubeletPort) {

  public NodeInfo {
    Limits.checkName("node name", name);
    Limits.check("kubelet port", kubeletPort, 1, 0xFFFF);
    addresses = List.copyOf(addresses);
    podCidrs = List.copyOf(podCidrs);
  }
}
