package io.egresstunnel.routing;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.proto.Cidr;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

class DeclaredRouterTest {

  private static final int KUBELET = 10250;

  private static final NodeInfo NODE_A =
      node("node-a", KUBELET, List.of("192.168.1.10", "fd00:1::10"), "10.42.1.0/24", "fd42:1::/64");
  private static final NodeInfo NODE_B =
      node("Node-B", 10251, List.of("192.168.1.11"), "10.42.2.0/24");

  @Test
  void disabledRoutesEverythingDirect() {
    DeclaredRouter router = router(EgressMode.DISABLED, NODE_A);

    assertThat(router.route("192.168.1.10", KUBELET)).isEqualTo(Route.DIRECT);
    assertThat(router.route("node-a", KUBELET)).isEqualTo(Route.DIRECT);
    assertThat(router.route("10.42.1.5", 8080)).isEqualTo(Route.DIRECT);
  }

  @Test
  void agentRoutesKubeletConnectionsByIpv4AndIpv6Address() {
    DeclaredRouter router = router(EgressMode.AGENT, NODE_A);

    assertThat(router.route("192.168.1.10", KUBELET)).isEqualTo(via("node-a"));
    assertThat(router.route("fd00:1::10", KUBELET)).isEqualTo(via("node-a"));
    assertThat(router.route("fd00:1:0:0:0:0:0:10", DeclaredRouter.STREAMING_PORT))
        .isEqualTo(via("node-a"));
  }

  @Test
  void agentLeavesOtherPortsOfNodeAddressesToTheDefaultRoute() {
    DeclaredRouter router = router(EgressMode.AGENT, NODE_A);

    assertThat(router.route("192.168.1.10", 22)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("fd00:1::10", 443)).isEqualTo(Route.DEFAULT);
  }

  @Test
  void agentLeavesPodCidrsToTheDefaultRoute() {
    DeclaredRouter router = router(EgressMode.AGENT, NODE_A);

    assertThat(router.route("10.42.1.5", 8080)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("10.42.1.5", KUBELET)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("fd42:1::5", 8080)).isEqualTo(Route.DEFAULT);
  }

  @Test
  void unknownTargetsAreLeftToTheDefaultRoute() {
    DeclaredRouter router = router(EgressMode.POD, NODE_A);

    assertThat(router.route("192.168.1.99", KUBELET)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("10.43.0.1", 443)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("example.com", KUBELET)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("node-a.example.com", KUBELET)).isEqualTo(Route.DEFAULT);
  }

  @Test
  void routesNodeNamesCaseInsensitively() {
    DeclaredRouter router = router(EgressMode.AGENT, NODE_A, NODE_B);

    assertThat(router.route("NODE-A", KUBELET)).isEqualTo(via("node-a"));
    assertThat(router.route("node-b", 10251)).isEqualTo(via("Node-B"));
    assertThat(router.route("node-a", 22)).isEqualTo(Route.DEFAULT);
  }

  @Test
  void usesTheNodesOwnKubeletPortAndTheStreamingPort() {
    DeclaredRouter router = router(EgressMode.AGENT, NODE_B);

    assertThat(router.route("192.168.1.11", 10251)).isEqualTo(via("Node-B"));
    assertThat(router.route("192.168.1.11", DeclaredRouter.STREAMING_PORT))
        .isEqualTo(via("Node-B"));
    assertThat(router.route("192.168.1.11", KUBELET)).isEqualTo(Route.DEFAULT);
  }

  @Test
  void podRoutesPodCidrsOnAnyPort() {
    DeclaredRouter router = router(EgressMode.POD, NODE_A, NODE_B);

    assertThat(router.route("10.42.1.5", 8080)).isEqualTo(via("node-a"));
    assertThat(router.route("10.42.2.255", 53)).isEqualTo(via("Node-B"));
    assertThat(router.route("fd42:1::abcd", 443)).isEqualTo(via("node-a"));
    assertThat(router.route("fd42:2::1", 443)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("192.168.1.10", KUBELET)).isEqualTo(via("node-a"));
    assertThat(router.route("192.168.1.10", 22)).isEqualTo(Route.DEFAULT);
  }

  @Test
  void clusterRoutesLikePodFromHellosAlone() {
    DeclaredRouter router = router(EgressMode.CLUSTER, NODE_A, NODE_B);

    assertThat(router.route("10.42.1.5", 8080)).isEqualTo(via("node-a"));
    assertThat(router.route("fd42:1::abcd", 443)).isEqualTo(via("node-a"));
    assertThat(router.route("node-b", DeclaredRouter.STREAMING_PORT)).isEqualTo(via("Node-B"));
    assertThat(router.route("10.43.0.1", 443)).isEqualTo(Route.DEFAULT);
  }

  @Test
  void longestPrefixWinsBetweenOverlappingCidrs() {
    NodeInfo wide = node("wide", KUBELET, List.of(), "10.0.0.0/8", "fd00::/16");
    NodeInfo narrow = node("narrow", KUBELET, List.of(), "10.1.2.0/23", "fd00:1::/48");
    DeclaredRouter router = router(EgressMode.POD, narrow, wide);

    assertThat(router.route("10.1.3.7", 80)).isEqualTo(via("narrow"));
    assertThat(router.route("10.1.4.7", 80)).isEqualTo(via("wide"));
    assertThat(router.route("fd00:1::7", 80)).isEqualTo(via("narrow"));
    assertThat(router.route("fd00:2::7", 80)).isEqualTo(via("wide"));
  }

  @Test
  void upsertReplacesTheNodesPreviousAddressesAndCidrs() {
    DeclaredRouter router = router(EgressMode.POD, NODE_A);

    router.upsert(node("node-a", 10251, List.of("192.168.1.20"), "10.42.9.0/24"));

    assertThat(router.route("192.168.1.10", KUBELET)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("fd00:1::10", KUBELET)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("10.42.1.5", 80)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("192.168.1.20", 10251)).isEqualTo(via("node-a"));
    assertThat(router.route("10.42.9.5", 80)).isEqualTo(via("node-a"));
    assertThat(router.nodes()).hasSize(1);
    assertThat(router.node("node-a")).get().extracting(NodeInfo::kubeletPort).isEqualTo(10251);
  }

  @Test
  void removeDropsTheNode() {
    DeclaredRouter router = router(EgressMode.POD, NODE_A, NODE_B);

    router.remove("node-a");
    router.remove("no-such-node");

    assertThat(router.node("node-a")).isEmpty();
    assertThat(router.nodes()).containsExactly(NODE_B);
    assertThat(router.route("192.168.1.10", KUBELET)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("node-a", KUBELET)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("10.42.1.5", 80)).isEqualTo(Route.DEFAULT);
    assertThat(router.route("10.42.2.5", 80)).isEqualTo(via("Node-B"));
  }

  @Test
  void mostRecentUpsertOwnsAConflictingAddressAndOthersKeepTheirClaims() {
    NodeInfo first = node("first", KUBELET, List.of("192.168.1.50"), "10.42.5.0/24");
    NodeInfo second = node("second", KUBELET, List.of("192.168.1.50"), "10.42.5.0/24");
    DeclaredRouter router = router(EgressMode.POD, first, second);

    assertThat(router.route("192.168.1.50", KUBELET)).isEqualTo(via("second"));
    assertThat(router.route("10.42.5.1", 80)).isEqualTo(via("second"));

    router.upsert(first);
    assertThat(router.route("192.168.1.50", KUBELET)).isEqualTo(via("first"));

    router.upsert(node("first", KUBELET, List.of("192.168.1.51")));
    assertThat(router.route("192.168.1.50", KUBELET)).isEqualTo(via("second"));
    assertThat(router.route("10.42.5.1", 80)).isEqualTo(via("second"));

    router.remove("first");
    assertThat(router.route("192.168.1.50", KUBELET)).isEqualTo(via("second"));

    router.upsert(first);
    router.remove("first");
    assertThat(router.route("192.168.1.50", KUBELET)).isEqualTo(via("second"));
  }

  @Test
  void ipv4MappedIpv6LiteralMatchesTheIpv4Address() {
    DeclaredRouter router = router(EgressMode.POD, NODE_A);

    assertThat(router.route("::ffff:192.168.1.10", KUBELET)).isEqualTo(via("node-a"));
    assertThat(router.route("::FFFF:C0A8:010A", KUBELET)).isEqualTo(via("node-a"));
    assertThat(router.route("::ffff:10.42.1.5", 80)).isEqualTo(via("node-a"));
  }

  @Test
  void ipv4MappedNodeAddressMatchesTheIpv4Literal() throws Exception {
    byte[] mapped = new byte[16];
    mapped[10] = (byte) 0xFF;
    mapped[11] = (byte) 0xFF;
    System.arraycopy(new byte[] {(byte) 192, (byte) 168, 1, 77}, 0, mapped, 12, 4);
    InetAddress address = Inet6Address.getByAddress(null, mapped, -1);
    DeclaredRouter router =
        router(EgressMode.AGENT, new NodeInfo("mapped", List.of(address), List.of(), KUBELET));

    assertThat(router.route("192.168.1.77", KUBELET)).isEqualTo(via("mapped"));
  }

  @Test
  void concurrentReadersSeeConsistentRoutesWhileAWriterUpserts() throws Exception {
    int nodeCount = 50;
    DeclaredRouter router = new DeclaredRouter(EgressMode.POD);
    AtomicBoolean writing = new AtomicBoolean(true);
    ExecutorService pool = Executors.newFixedThreadPool(5);
    try {
      List<Future<?>> readers = new ArrayList<>();
      for (int r = 0; r < 4; r++) {
        readers.add(
            pool.submit(
                () -> {
                  int i = 0;
                  while (writing.get()) {
                    int n = i++ % nodeCount;
                    assertThat(router.route("192.168.0." + n, KUBELET))
                        .isIn(Route.DEFAULT, via("node-" + n));
                    assertThat(router.route("10.42." + n + ".9", 80))
                        .isIn(Route.DEFAULT, via("node-" + n));
                    assertThat(router.route("NODE-" + n, DeclaredRouter.STREAMING_PORT))
                        .isIn(Route.DEFAULT, via("node-" + n));
                  }
                }));
      }
      Future<?> writer =
          pool.submit(
              () -> {
                try {
                  for (int round = 0; round < 20; round++) {
                    for (int n = 0; n < nodeCount; n++) {
                      router.upsert(
                          node(
                              "node-" + n,
                              KUBELET,
                              List.of("192.168.0." + n),
                              "10.42." + n + ".0/24"));
                      if (round % 2 == 1) {
                        router.remove("node-" + n);
                      }
                    }
                  }
                  for (int n = 0; n < nodeCount; n++) {
                    router.upsert(
                        node(
                            "node-" + n,
                            KUBELET,
                            List.of("192.168.0." + n),
                            "10.42." + n + ".0/24"));
                  }
                } finally {
                  writing.set(false);
                }
              });
      writer.get(30, TimeUnit.SECONDS);
      for (Future<?> reader : readers) {
        reader.get(30, TimeUnit.SECONDS);
      }
    } finally {
      pool.shutdownNow();
    }

    assertThat(router.nodes()).hasSize(nodeCount);
    for (int n = 0; n < nodeCount; n++) {
      assertThat(router.route("192.168.0." + n, KUBELET)).isEqualTo(via("node-" + n));
      assertThat(router.route("10.42." + n + ".9", 80)).isEqualTo(via("node-" + n));
    }
  }

  private static DeclaredRouter router(EgressMode mode, NodeInfo... nodes) {
    DeclaredRouter router = new DeclaredRouter(mode);
    for (NodeInfo node : nodes) {
      router.upsert(node);
    }
    assertThat(router.mode()).isEqualTo(mode);
    return router;
  }

  private static NodeInfo node(
      String name, int kubeletPort, List<String> addresses, String... podCidrs) {
    return new NodeInfo(
        name,
        addresses.stream().map(Cidr::parseAddress).toList(),
        List.of(podCidrs).stream().map(Cidr::parse).toList(),
        kubeletPort);
  }

  private static Route via(String node) {
    return new Route.ViaAgent(node);
  }
}
