package io.egresstunnel.agent;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.policy.DialPolicy;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The agent's allow-list follows its Node and its pods, on fabric8's mock API in CRUD mode. */
@EnableKubernetesMockClient(crud = true)
class NodePolicySourceTest {
  KubernetesClient client;

  @BeforeEach
  void cluster() {
    client
        .nodes()
        .resource(
            new NodeBuilder()
                .withNewMetadata()
                .withName("worker-1")
                .endMetadata()
                .withNewSpec()
                .withPodCIDRs("10.42.6.0/24")
                .endSpec()
                .withNewStatus()
                .addNewAddress("127.0.6.1", "InternalIP")
                .addNewAddress("fd00::6:1", "InternalIP")
                .withNewDaemonEndpoints()
                .withNewKubeletEndpoint(10255)
                .endDaemonEndpoints()
                .endStatus()
                .build())
        .create();
    client.pods().resource(pod("web", "worker-1", false, "10.99.6.5", 0)).create();
    client.pods().resource(pod("elsewhere", "worker-2", false, "10.99.7.5", 0)).create();
    client.pods().resource(pod("node-exporter", "worker-1", true, null, 9100)).create();
  }

  /** Starts watching and waits until {@code readyIp:readyPort} is allowed (handlers lag sync). */
  private DialPolicy watch(
      EgressMode mode,
      List<Cidr> clusterCidrs,
      AtomicReference<DialPolicy> ref,
      String readyIp,
      int readyPort) {
    AgentConfig config =
        AgentConfig.simple(
                URI.create("ws://127.0.0.1:1"),
                "worker-1",
                List.of(Cidr.parseAddress("127.0.6.9")),
                mode)
            .withKubernetes(new AgentConfig.Kubernetes(null, clusterCidrs));
    // The mock server lacks the spec.nodeName field selector: watch all pods, filter here.
    NodePolicySource source = new NodePolicySource(config, ref).start(client, false);
    await().atMost(Duration.ofSeconds(20)).until(source::isSynced);
    await()
        .atMost(Duration.ofSeconds(20))
        .until(() -> ref.get() != null && allowed(ref.get(), readyIp, readyPort));
    return ref.get();
  }

  @Test
  void podModeAllowsTheNodesApiIdentityItsPodsAndHostNetworkPorts() {
    AtomicReference<DialPolicy> ref = new AtomicReference<>();
    watch(EgressMode.POD, List.of(), ref, "127.0.6.1", 10255);
    await().atMost(Duration.ofSeconds(20)).until(() -> allowed(ref.get(), "10.99.6.5", 8443));
    await().atMost(Duration.ofSeconds(20)).until(() -> allowed(ref.get(), "127.0.6.1", 9100));
    DialPolicy p = ref.get();
    // The Node object wins over the flags: its addresses and its kubelet port.
    assertThat(allowed(p, "127.0.6.1", 10255)).isTrue();
    assertThat(allowed(p, "fd00::6:1", 10010)).isTrue();
    assertThat(allowed(p, "127.0.6.1", 10250)).isFalse();
    assertThat(allowed(p, "127.0.6.9", 10255)).isFalse();
    // Its pods on any port; another node's pods not.
    assertThat(allowed(p, "10.99.6.5", 8443)).isTrue();
    assertThat(allowed(p, "10.99.7.5", 8443)).isFalse();
    // A hostNetwork pod's declared TCP port on the node's addresses, and nothing beside it.
    assertThat(allowed(p, "127.0.6.1", 9100)).isTrue();
    assertThat(allowed(p, "127.0.6.1", 9101)).isFalse();
    // The pod CIDR from the Node object.
    assertThat(allowed(p, "10.42.6.77", 80)).isTrue();

    client.pods().inNamespace("default").withName("web").delete();
    await().atMost(Duration.ofSeconds(20)).until(() -> !allowed(ref.get(), "10.99.6.5", 8443));
  }

  @Test
  void clusterModeAddsClusterCidrsAndHostNetworkEndpoints() {
    AtomicReference<DialPolicy> ref = new AtomicReference<>();
    watch(EgressMode.CLUSTER, List.of(Cidr.parse("10.200.0.0/16")), ref, "10.99.6.5", 8443);
    DialPolicy p = ref.get();
    assertThat(allowed(p, "10.200.0.10", 53)).isTrue();
    assertThat(allowed(p, "10.99.7.5", 8443)).isFalse(); // another node's pod
    assertThat(allowed(p, "10.99.6.5", 8443)).isTrue();
    // A hostNetwork pod's endpoint is a node IP on its declared port: the server routes it here.
    await().atMost(Duration.ofSeconds(20)).until(() -> allowed(ref.get(), "127.0.6.1", 9100));
    assertThat(allowed(ref.get(), "127.0.6.1", 9101)).isFalse();
  }

  @Test
  void agentModeAllowsOnlyTheKubelet() {
    AtomicReference<DialPolicy> ref = new AtomicReference<>();
    DialPolicy p = watch(EgressMode.AGENT, List.of(), ref, "127.0.6.1", 10255);
    assertThat(allowed(p, "127.0.6.1", 10255)).isTrue();
    assertThat(allowed(p, "10.99.6.5", 8443)).isFalse();
    assertThat(allowed(p, "10.42.6.77", 80)).isFalse();
  }

  private static boolean allowed(DialPolicy p, String ip, int port) {
    return p.check(Cidr.parseAddress(ip), port).allowed();
  }

  private static Pod pod(String name, String node, boolean hostNetwork, String ip, int port) {
    PodBuilder b =
        new PodBuilder()
            .withNewMetadata()
            .withName(name)
            .withNamespace("default")
            .endMetadata()
            .withNewSpec()
            .withNodeName(node)
            .withHostNetwork(hostNetwork)
            .addNewContainer()
            .withName("c")
            .endContainer()
            .endSpec()
            .withNewStatus()
            .endStatus();
    if (ip != null) {
      b.editStatus().addNewPodIP(ip).endStatus();
    }
    if (port > 0) {
      b.editSpec()
          .editFirstContainer()
          .addNewPort()
          .withContainerPort(port)
          .withProtocol("TCP")
          .endPort()
          .endContainer()
          .endSpec();
    }
    return b.build();
  }
}
