package io.egresstunnel.routing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSlice;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSliceBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Route decisions from the Kubernetes API, against fabric8's mock server in CRUD mode. */
@EnableKubernetesMockClient(crud = true)
class KubernetesRouteSourceTest {
  KubernetesClient client;
  private KubernetesRouteSource source;

  @AfterEach
  void stop() {
    if (source != null) {
      source.close();
    }
  }

  private KubernetesRouteSource start(EgressMode mode, String ownNode) {
    source = new KubernetesRouteSource(client, mode, ownNode, Duration.ofMillis(10)).start();
    await().atMost(Duration.ofSeconds(20)).until(source::isSynced);
    return source;
  }

  private void eventually(String host, int port, Route expected) {
    await()
        .atMost(Duration.ofSeconds(20))
        .untilAsserted(() -> assertThat(source.route(host, port)).isEqualTo(expected));
  }

  private static Route via(String node) {
    return new Route.ViaAgent(node);
  }

  static Node node(String name, int kubeletPort, List<String> ips, List<String> podCidrs) {
    NodeBuilder b =
        new NodeBuilder()
            .withNewMetadata()
            .withName(name)
            .endMetadata()
            .withNewSpec()
            .withPodCIDRs(podCidrs)
            .endSpec()
            .withNewStatus()
            .withNewDaemonEndpoints()
            .withNewKubeletEndpoint(kubeletPort)
            .endDaemonEndpoints()
            .endStatus();
    for (String ip : ips) {
      b.editStatus().addNewAddress(ip, ip.contains(":") ? "InternalIP" : "InternalIP").endStatus();
    }
    b.editStatus().addNewAddress(name, "Hostname").endStatus();
    return b.build();
  }

  static Pod pod(String name, String node, boolean hostNetwork, String... ips) {
    PodBuilder b =
        new PodBuilder()
            .withNewMetadata()
            .withName(name)
            .withNamespace("default")
            .endMetadata()
            .withNewSpec()
            .withNodeName(node)
            .withHostNetwork(hostNetwork)
            .endSpec()
            .withNewStatus()
            .endStatus();
    for (String ip : ips) {
      b.editStatus().addNewPodIP(ip).endStatus();
    }
    return b.build();
  }

  @Test
  void agentModeRoutesKubeletConnectionsByAddressNameAndNodesOwnPort() {
    client
        .nodes()
        .resource(node("worker-1", 10250, List.of("10.0.0.11"), List.of("10.42.1.0/24")))
        .create();
    client
        .nodes()
        .resource(node("worker-2", 10251, List.of("10.0.0.12", "fd00::12"), List.of()))
        .create();
    start(EgressMode.AGENT, null);
    eventually("10.0.0.11", 10250, via("worker-1"));
    eventually("worker-1", 10010, via("worker-1"));
    eventually("fd00::12", 10251, via("worker-2"));
    assertThat(source.route("10.0.0.12", 10250)).isEqualTo(Route.DEFAULT); // not its kubelet port
    assertThat(source.route("10.42.1.5", 80)).isEqualTo(Route.DEFAULT); // CIDRs: pod mode only
    assertThat(source.node("worker-2").orElseThrow().kubeletPort()).isEqualTo(10251);
    assertThat(source.describe()).contains("synced").contains("2 node(s)");
  }

  @Test
  void hostnameAndDnsAddressesAreNamesOfTheNode() {
    Node n = node("ip-10-0-0-21", 10250, List.of("10.0.0.21"), List.of());
    n.getStatus()
        .getAddresses()
        .add(new io.fabric8.kubernetes.api.model.NodeAddress("worker-21.internal", "InternalDNS"));
    n.getStatus()
        .getAddresses()
        .add(
            new io.fabric8.kubernetes.api.model.NodeAddress(
                "worker-21.example.com", "ExternalDNS"));
    client.nodes().resource(n).create();
    start(EgressMode.AGENT, null);
    eventually("worker-21.internal", 10250, via("ip-10-0-0-21"));
    eventually("WORKER-21.example.com", 10010, via("ip-10-0-0-21"));
    assertThat(source.route("worker-21.internal", 443)).isEqualTo(Route.DEFAULT);
    client.nodes().withName("ip-10-0-0-21").delete();
    eventually("worker-21.internal", 10250, Route.DEFAULT);
  }

  @Test
  void podModeRoutesPodCidrsAndFollowsNodeUpdatesAndDeletes() {
    client
        .nodes()
        .resource(
            node(
                "worker-1", 10250, List.of("10.0.0.11"), List.of("10.42.1.0/24", "fd00:42:1::/64")))
        .create();
    start(EgressMode.POD, null);
    eventually("10.42.1.9", 443, via("worker-1"));
    eventually("fd00:42:1::9", 443, via("worker-1"));
    // The node's CIDR moves (an update), then the node goes away (a delete).
    client
        .nodes()
        .resource(node("worker-1", 10250, List.of("10.0.0.11"), List.of("10.42.7.0/24")))
        .update();
    eventually("10.42.1.9", 443, Route.DEFAULT);
    eventually("10.42.7.9", 443, via("worker-1"));
    client.nodes().withName("worker-1").delete();
    eventually("10.42.7.9", 443, Route.DEFAULT);
    eventually("10.0.0.11", 10250, Route.DEFAULT);
  }

  @Test
  void clusterModeRoutesPodIpsAndEndpointsButNotHostNetworkPods() {
    client
        .nodes()
        .resource(node("worker-1", 10250, List.of("10.0.0.11"), List.of("10.42.1.0/24")))
        .create();
    client.nodes().resource(node("worker-2", 10250, List.of("10.0.0.12"), List.of())).create();
    client.pods().resource(pod("web", "worker-1", false, "10.99.0.5", "fd00:99::5")).create();
    client.pods().resource(pod("ds", "worker-2", true, "10.0.0.12")).create();
    EndpointSlice slice =
        new EndpointSliceBuilder()
            .withNewMetadata()
            .withName("svc-abc")
            .withNamespace("default")
            .endMetadata()
            .withAddressType("IPv4")
            .addNewEndpoint()
            .withAddresses("10.77.0.8")
            .withNodeName("worker-2")
            .endEndpoint()
            .build();
    client.discovery().v1().endpointSlices().resource(slice).create();
    start(EgressMode.CLUSTER, null);
    eventually("10.99.0.5", 8443, via("worker-1"));
    eventually("fd00:99::5", 8443, via("worker-1"));
    eventually("10.77.0.8", 9090, via("worker-2"));
    // A hostNetwork pod's IP is the node's: only the kubelet ports go through the agent.
    assertThat(source.route("10.0.0.12", 8080)).isEqualTo(Route.DEFAULT);
    assertThat(source.route("10.0.0.12", 10250)).isEqualTo(via("worker-2"));
    // Cluster mode does not trust node pod CIDRs (CNIs with their own IPAM ignore them).
    assertThat(source.route("10.42.1.9", 80)).isEqualTo(Route.DEFAULT);
  }

  @Test
  void aPodIpReusedOnAnotherNodeIsNotLostWhenTheOldPodIsDeleted() {
    client.nodes().resource(node("worker-1", 10250, List.of("10.0.0.11"), List.of())).create();
    client.nodes().resource(node("worker-2", 10250, List.of("10.0.0.12"), List.of())).create();
    client.pods().resource(pod("old", "worker-1", false, "10.99.0.7")).create();
    start(EgressMode.CLUSTER, null);
    eventually("10.99.0.7", 80, via("worker-1"));
    // The CNI hands the IP to a new pod on another node before the old pod's delete arrives.
    client.pods().resource(pod("new", "worker-2", false, "10.99.0.7")).create();
    eventually("10.99.0.7", 80, via("worker-2"));
    client.pods().inNamespace("default").withName("old").delete();
    await()
        .during(Duration.ofMillis(300))
        .atMost(Duration.ofSeconds(5))
        .untilAsserted(() -> assertThat(source.route("10.99.0.7", 80)).isEqualTo(via("worker-2")));
    client.pods().inNamespace("default").withName("new").delete();
    eventually("10.99.0.7", 80, Route.DEFAULT);
  }

  @Test
  void ipv6OnlyClusterAndTheServersOwnNode() {
    client
        .nodes()
        .resource(node("cp-1", 10250, List.of("fd00::1"), List.of("fd00:42:1::/64")))
        .create();
    client
        .nodes()
        .resource(node("worker-1", 10250, List.of("fd00::11"), List.of("fd00:42:2::/64")))
        .create();
    start(EgressMode.POD, "cp-1");
    eventually("fd00::11", 10250, via("worker-1"));
    eventually("fd00:42:2::7", 80, via("worker-1"));
    // Targets on the server's own node are dialled directly, as K3s does.
    assertThat(source.route("fd00::1", 10250)).isEqualTo(Route.DIRECT);
    assertThat(source.route("fd00:42:1::7", 80)).isEqualTo(Route.DIRECT);
  }

  @Test
  void disabledModeWatchesNothingAndIsSyncedAtOnce() {
    source =
        new KubernetesRouteSource(client, EgressMode.DISABLED, null, Duration.ofMillis(10)).start();
    assertThat(source.isSynced()).isTrue();
    assertThat(source.route("10.0.0.11", 10250)).isEqualTo(Route.DIRECT);
  }
}
