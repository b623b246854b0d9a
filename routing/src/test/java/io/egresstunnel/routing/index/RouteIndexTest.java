package io.egresstunnel.routing.index;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.routing.NodeInfo;
import io.egresstunnel.routing.Route;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.util.List;
import org.junit.jupiter.api.Test;

class RouteIndexTest {
  private static final NodeInfo A =
      new NodeInfo(
          "node-a",
          List.of(ip("10.0.0.1"), ip("fd00::1")),
          List.of(Cidr.parse("10.42.1.0/24"), Cidr.parse("fd00:42:1::/64")),
          10250);
  private static final NodeInfo B =
      new NodeInfo("node-b", List.of(ip("10.0.0.2")), List.of(Cidr.parse("10.42.0.0/16")), 10251);

  @Test
  void clusterModeRoutesPodIpsToTheirNodeOnAnyPort() {
    RouteIndex index =
        RouteIndex.builder()
            .node(A)
            .node(B)
            .podIp(ip("10.88.0.5"), "node-a")
            .podIp(ip("fd00:88::5"), "node-b")
            .podIp(ip("10.88.0.6"), "node-c") // a node no agent has declared (yet)
            .build();
    assertThat(index.route("10.88.0.5", 8443, EgressMode.CLUSTER)).isEqualTo(via("node-a"));
    assertThat(index.route("fd00:88::5", 53, EgressMode.CLUSTER)).isEqualTo(via("node-b"));
    assertThat(index.route("10.88.0.6", 80, EgressMode.CLUSTER)).isEqualTo(via("node-c"));
    // Pod IPs are cluster-mode data only.
    assertThat(index.route("10.88.0.5", 8443, EgressMode.POD)).isEqualTo(Route.DEFAULT);
    assertThat(index.route("10.88.0.5", 8443, EgressMode.AGENT)).isEqualTo(Route.DEFAULT);
    assertThat(index.podEntries()).isEqualTo(3);
  }

  @Test
  void aReusedPodIpBelongsToItsLatestClaim() {
    RouteIndex index =
        RouteIndex.builder()
            .podIp(ip("10.88.0.9"), "node-a")
            .podIp(ip("10.88.0.9"), "node-b")
            .build();
    assertThat(index.route("10.88.0.9", 80, EgressMode.CLUSTER)).isEqualTo(via("node-b"));
  }

  @Test
  void kubeletRoutesUseEachNodesOwnPortAndTheStreamingPort() {
    RouteIndex index = RouteIndex.builder().node(A).node(B).build();
    for (EgressMode m : new EgressMode[] {EgressMode.AGENT, EgressMode.POD, EgressMode.CLUSTER}) {
      assertThat(index.route("10.0.0.1", 10250, m)).isEqualTo(via("node-a"));
      assertThat(index.route("FD00::1", 10010, m)).isEqualTo(via("node-a"));
      assertThat(index.route("NODE-B", 10251, m)).isEqualTo(via("node-b"));
      assertThat(index.route("10.0.0.2", 10250, m)).isEqualTo(Route.DEFAULT);
    }
    assertThat(index.route("10.0.0.1", 10250, EgressMode.DISABLED)).isEqualTo(Route.DIRECT);
  }

  @Test
  void longestPrefixWinsAcrossNodes() {
    RouteIndex index = RouteIndex.builder().node(A).node(B).build();
    assertThat(index.route("10.42.1.7", 80, EgressMode.POD)).isEqualTo(via("node-a"));
    assertThat(index.route("10.42.2.7", 80, EgressMode.POD)).isEqualTo(via("node-b"));
    assertThat(index.route("fd00:42:1::9", 80, EgressMode.POD)).isEqualTo(via("node-a"));
    assertThat(index.route("fd00:42:2::9", 80, EgressMode.POD)).isEqualTo(Route.DEFAULT);
    assertThat(index.route("10.42.1.7", 80, EgressMode.AGENT)).isEqualTo(Route.DEFAULT);
  }

  @Test
  void lookupsAllocateNothing() {
    RouteIndex.Builder b = RouteIndex.builder().node(A).node(B);
    for (int i = 0; i < 10_000; i++) {
      b.podIp(ip("10.90." + (i >> 8) + "." + (i & 0xFF)), "node-" + (i % 50));
    }
    RouteIndex index = b.build();
    String[] hosts = {
      "10.0.0.1", "10.90.3.7", "fd00:42:1::9", "node-b", "192.0.2.1", "fd00::1", "10.42.2.7"
    };
    int[] ports = {10250, 443, 80, 10251, 80, 10010, 80};
    long sink = 0;
    for (int i = 0; i < 50_000; i++) { // warm up the JIT
      sink +=
          index
              .route(hosts[i % hosts.length], ports[i % ports.length], EgressMode.CLUSTER)
              .hashCode();
    }
    var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    long id = Thread.currentThread().getId();
    long before = threads.getThreadAllocatedBytes(id);
    for (int i = 0; i < 100_000; i++) {
      sink +=
          index
              .route(hosts[i % hosts.length], ports[i % ports.length], EgressMode.CLUSTER)
              .hashCode();
    }
    long allocated = threads.getThreadAllocatedBytes(id) - before;
    assertThat(sink).isNotZero();
    // Zero per decision: 100,000 decisions may not even allocate one small object each.
    assertThat(allocated).as("bytes allocated by 100,000 lookups").isLessThan(4_096);
  }

  private static Route via(String node) {
    return new Route.ViaAgent(node);
  }

  private static InetAddress ip(String s) {
    return Cidr.parseAddress(s);
  }
}
