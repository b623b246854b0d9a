package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.proto.session.UpgradeRefusal;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.agents.TokenReviewAuthenticator;
import io.fabric8.kubernetes.api.model.authentication.TokenReview;
import io.fabric8.kubernetes.api.model.authentication.TokenReviewBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.fabric8.kubernetes.client.utils.Serialization;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Agents with Kubernetes ServiceAccount tokens (--authentication-audience): each token is checked
 * with a TokenReview against the (mock) API, verdicts are cached, and a token bound to a pod speaks
 * only for that pod's node.
 */
@EnableKubernetesMockClient(crud = true, https = false)
class AgentTokenReviewTest {
  private static final String AUDIENCE = "egress-tunnel";
  private static final String AGENT_SA = "system:serviceaccount:kube-system:egress-agent";

  KubernetesClient client;
  KubernetesMockServer server;

  private TunnelServer start(Path dir, String namespace, String serviceAccount) throws Exception {
    ServerConfig base =
        ServerConfig.plain(
                EgressMode.AGENT,
                new InetSocketAddress("127.0.0.1", 0),
                new InetSocketAddress("127.0.0.1", 0))
            .withKubernetes(new ServerConfig.Kubernetes(MockKubeconfig.write(dir, client), null));
    ServerConfig.TokenReview review =
        new ServerConfig.TokenReview(
            List.of(AUDIENCE), namespace, serviceAccount, Duration.ofMinutes(5));
    return new TunnelServer(
            base.withSecurity(
                base.security().withAgentAuth(new ServerConfig.AgentAuth(null, null, review))))
        .start();
  }

  /**
   * The mock API authenticates tokens of the form {@code user|node}; it counts the reviews, and
   * answers only for the expected audience.
   */
  private AtomicInteger answerReviews() {
    AtomicInteger reviews = new AtomicInteger();
    server
        .expect()
        .post()
        .withPath("/apis/authentication.k8s.io/v1/tokenreviews")
        .andReply(
            201,
            request -> {
              reviews.incrementAndGet();
              TokenReview asked =
                  Serialization.unmarshal(request.getBody().readUtf8(), TokenReview.class);
              String[] parts = asked.getSpec().getToken().split("\\|", -1);
              boolean forUs = asked.getSpec().getAudiences().contains(AUDIENCE);
              return new TokenReviewBuilder(asked)
                  .withNewStatus()
                  .withAuthenticated(forUs && parts.length == 2)
                  .withAudiences(asked.getSpec().getAudiences())
                  .withNewUser()
                  .withUsername(parts[0])
                  .withExtra(
                      parts.length == 2 && !parts[1].isEmpty()
                          ? Map.of(TokenReviewAuthenticator.NODE_NAME_EXTRA, List.of(parts[1]))
                          : Map.of())
                  .endUser()
                  .endStatus()
                  .build();
            })
        .always();
    return reviews;
  }

  @Test
  void aTokenTheApiRejectsGets401AndNoSession(@TempDir Path dir) throws Exception {
    // CRUD mode stores the review and answers it without a status: not authenticated.
    try (TunnelServer tunnel = start(dir, null, null)) {
      assertThat(AgentAuthenticationTest.upgrade(tunnel, "some-forged-token", "node-a"))
          .startsWith("HTTP/1.1 401")
          .containsIgnoringCase("X-Egress-Tunnel-Refusal: bad_token\r\n")
          .contains("the Kubernetes API did not accept the token");
      assertThat(AgentAuthenticationTest.upgrade(tunnel, null, "node-a"))
          .startsWith("HTTP/1.1 401")
          .contains("a bearer token is required");
      assertThat(tunnel.registry().agentCount()).isZero();
      assertThat(client.resources(TokenReview.class).list().getItems())
          .extracting(r -> r.getSpec().getToken())
          .containsExactly("some-forged-token");
    }
  }

  @Test
  void aBoundTokenSpeaksOnlyForItsNodeAndVerdictsAreCached(@TempDir Path dir) throws Exception {
    AtomicInteger reviews = answerReviews();
    try (TunnelServer tunnel = start(dir, null, null)) {
      String tokenA = AGENT_SA + "|node-a";
      assertThat(AgentAuthenticationTest.upgrade(tunnel, tokenA, "node-a"))
          .startsWith("HTTP/1.1 101");
      assertThat(AgentAuthenticationTest.upgrade(tunnel, tokenA, "node-a"))
          .startsWith("HTTP/1.1 101");
      assertThat(AgentAuthenticationTest.upgrade(tunnel, tokenA, "node-b"))
          .startsWith("HTTP/1.1 403")
          .containsIgnoringCase("X-Egress-Tunnel-Refusal: wrong_node\r\n")
          .contains("bound to node node-a, not node-b");
      assertThat(reviews.get()).as("one review for three upgrades with one token").isEqualTo(1);

      // A token without a node claim may speak for the node the agent names.
      assertThat(AgentAuthenticationTest.upgrade(tunnel, AGENT_SA + "|", "node-c"))
          .startsWith("HTTP/1.1 101");
      // A token the API does not authenticate.
      assertThat(AgentAuthenticationTest.upgrade(tunnel, "garbage", "node-c"))
          .startsWith("HTTP/1.1 401");
      assertThat(reviews.get()).isEqualTo(3);
    }
  }

  @Test
  void onlyTheAgentsServiceAccountIsAdmitted(@TempDir Path dir) throws Exception {
    answerReviews();
    try (TunnelServer tunnel = start(dir, "kube-system", "egress-agent")) {
      assertThat(
              AgentAuthenticationTest.upgrade(
                  tunnel, "system:serviceaccount:default:intruder|node-a", "node-a"))
          .startsWith("HTTP/1.1 403")
          .containsIgnoringCase("X-Egress-Tunnel-Refusal: not_allowed\r\n")
          .contains("is not the agents' ServiceAccount " + AGENT_SA);
      assertThat(AgentAuthenticationTest.upgrade(tunnel, AGENT_SA + "|node-a", "node-a"))
          .startsWith("HTTP/1.1 101");
      assertThat(
              MetricsTest.Scrape.of(tunnel.metrics().registry())
                  .get(
                      "egress_tunnel_server_agent_upgrades_refused_total",
                      "code",
                      "403",
                      "reason",
                      "not_allowed"))
          .isEqualTo(1);
    }
  }

  /** An agent for {@code node} at {@code address} that presents the token in {@code token}. */
  private static TunnelAgent startAgent(
      TunnelServer tunnel, Path token, String node, String address) throws Exception {
    AgentConfig config =
        AgentConfig.simple(
            URI.create("ws://127.0.0.1:" + tunnel.agentAddress().getPort()),
            node,
            List.of(Cidr.parseAddress(address)),
            EgressMode.AGENT);
    return new TunnelAgent(
            config.withCredentials(null, new AgentConfig.Credentials(token, null, null)))
        .start();
  }

  /** An agent with another ServiceAccount's token is told why it is refused. */
  @Test
  void anAgentWithTheWrongServiceAccountLearnsWhy(@TempDir Path dir) throws Exception {
    answerReviews();
    try (TunnelServer tunnel = start(dir, "kube-system", "egress-agent")) {
      Path token =
          Files.writeString(
              dir.resolve("token"), "system:serviceaccount:default:intruder|node-i\n");
      try (TunnelAgent agent = startAgent(tunnel, token, "node-i", "127.0.8.2")) {
        await().atMost(Duration.ofSeconds(20)).until(() -> agent.lastRefusal() != null);
        assertThat(agent.lastRefusal().code()).isEqualTo(403);
        assertThat(agent.lastRefusal().reason()).isEqualTo(UpgradeRefusal.NOT_ALLOWED);
        assertThat(agent.lastRefusal().message())
            .isEqualTo(
                "system:serviceaccount:default:intruder is not the agents' ServiceAccount "
                    + AGENT_SA);
        assertThat(
                MetricsTest.Scrape.of(agent.metrics().registry())
                    .get("egress_tunnel_agent_upgrades_refused_total", "reason", "not_allowed"))
            .isGreaterThanOrEqualTo(1);
        assertThat(
                MetricsTest.Scrape.of(tunnel.metrics().registry())
                    .get(
                        "egress_tunnel_server_agent_upgrades_refused_total",
                        "code",
                        "403",
                        "reason",
                        "not_allowed"))
            .isGreaterThanOrEqualTo(1);
        assertThat(agent.sessions()).isEmpty();
      }
    }
  }

  @Test
  void anAgentWithAProjectedTokenFileConnects(@TempDir Path dir) throws Exception {
    answerReviews();
    try (TunnelServer tunnel = start(dir, "kube-system", "egress-agent")) {
      Path token = Files.writeString(dir.resolve("token"), AGENT_SA + "|node-r\n");
      try (TunnelAgent agent = startAgent(tunnel, token, "node-r", "127.0.8.1")) {
        await()
            .atMost(Duration.ofSeconds(20))
            .until(() -> tunnel.registry().session("node-r") != null);
        assertThat(agent.sessions()).hasSize(1);
      }
    }
  }
}
