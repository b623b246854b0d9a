package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.routing.EgressMode;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * tunnel-server in cluster mode against a (mock) Kubernetes API: a CONNECT to a pod IP goes through
 * the agent of the pod's node, proven by each agent session's stream counter.
 */
@EnableKubernetesMockClient(crud = true, https = false)
class KubernetesRoutingEndToEndTest {
  KubernetesClient client;

  @Test
  void connectsToPodIpsTravelThroughTheirNodesAgent(@TempDir Path dir) throws Exception {
    for (String[] n : new String[][] {{"node-a", "127.0.5.1"}, {"node-b", "127.0.5.2"}}) {
      client
          .nodes()
          .resource(
              new NodeBuilder()
                  .withNewMetadata()
                  .withName(n[0])
                  .endMetadata()
                  .withNewStatus()
                  .addNewAddress(n[1], "InternalIP")
                  .endStatus()
                  .build())
          .create();
    }
    try (TestTarget podA = new TestTarget("127.5.1.10", 0, TestTarget::echo);
        TestTarget podB = new TestTarget("127.5.2.10", 0, TestTarget::echo)) {
      client.pods().resource(pod("web-a", "node-a", "127.5.1.10")).create();
      client.pods().resource(pod("web-b", "node-b", "127.5.2.10")).create();
      Path kubeconfig = MockKubeconfig.write(dir, client);
      ServerConfig config =
          ServerConfig.plain(
                  EgressMode.CLUSTER,
                  new InetSocketAddress("127.0.0.1", 0),
                  new InetSocketAddress("127.0.0.1", 0))
              .withKubernetes(new ServerConfig.Kubernetes(kubeconfig, null));
      try (TunnelFixture fx = new TunnelFixture(config)) {
        TunnelAgent a =
            fx.startAgent(
                fx.agentConfig("node-a", "127.0.5.1", "127.5.1.0/24", EgressMode.CLUSTER));
        fx.startAgent(fx.agentConfig("node-b", "127.0.5.2", "127.5.2.0/24", EgressMode.CLUSTER));
        await().atMost(Duration.ofSeconds(20)).until(fx.server::isReady);
        assertThat(a.sessions()).hasSize(1);

        assertCarriedBy(fx, podA, "node-a", "node-b");
        assertCarriedBy(fx, podB, "node-b", "node-a");

        // The pod goes away: its IP no longer routes through the tunnel.
        client.pods().inNamespace("default").withName("web-a").delete();
        await()
            .atMost(Duration.ofSeconds(20))
            .until(
                () ->
                    fx.server
                        .routes()
                        .route("127.5.1.10", podA.port())
                        .toString()
                        .equals("Default"));
      }
    }
  }

  private static void assertCarriedBy(TunnelFixture fx, TestTarget pod, String node, String other)
      throws Exception {
    long before = fx.session(node).streamsOpened();
    long otherBefore = fx.session(other).streamsOpened();
    ConnectClient.Answer answer =
        ConnectClient.connect(fx.proxy(), pod.address() + ":" + pod.port());
    assertThat(answer.status()).isEqualTo(200);
    try (Socket s = answer.socket()) {
      Transfers.Result r = Transfers.echo(s, 1 << 20, 4);
      assertThat(r.receivedSha()).isEqualTo(r.sentSha());
    }
    assertThat(fx.session(node).streamsOpened()).isEqualTo(before + 1);
    assertThat(fx.session(other).streamsOpened()).isEqualTo(otherBefore);
  }

  private static io.fabric8.kubernetes.api.model.Pod pod(String name, String node, String ip) {
    return new PodBuilder()
        .withNewMetadata()
        .withName(name)
        .withNamespace("default")
        .endMetadata()
        .withNewSpec()
        .withNodeName(node)
        .endSpec()
        .withNewStatus()
        .addNewPodIP(ip)
        .endStatus()
        .build();
  }
}
