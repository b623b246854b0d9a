package io.egresstunnel.server.agents;

import com.github.benmanes.caffeine.cache.AsyncCache;
import com.github.benmanes.caffeine.cache.Caffeine;
import io.egresstunnel.proto.session.UpgradeRefusal;
import io.egresstunnel.server.ServerConfig;
import io.fabric8.kubernetes.api.model.authentication.TokenReview;
import io.fabric8.kubernetes.api.model.authentication.TokenReviewBuilder;
import io.fabric8.kubernetes.api.model.authentication.TokenReviewStatus;
import io.fabric8.kubernetes.api.model.authentication.UserInfo;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Checks agents' Kubernetes ServiceAccount tokens with a TokenReview. Reviews run on their own
 * threads (never an event loop); verdicts are cached by the token's SHA-256 for a bounded time, and
 * concurrent upgrades with one token share one review. A failed API call is not cached.
 *
 * <p>A token bound to a pod carries the pod's node in its claims; the API server reports it as the
 * {@value #NODE_NAME_EXTRA} extra, and the agent may then speak only for that node.
 */
public final class TokenReviewAuthenticator implements AutoCloseable {
  private static final org.slf4j.Logger log =
      org.slf4j.LoggerFactory.getLogger(TokenReviewAuthenticator.class);

  /** The user extra that names the node of the pod a token is bound to (Kubernetes 1.30+). */
  public static final String NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name";

  /** What the API said of a token. */
  record Review(boolean authenticated, String username, String node, String error) {}

  private final KubernetesClient client;
  private final ServerConfig.TokenReview config;
  private final ExecutorService reviewers =
      Executors.newFixedThreadPool(2, new DefaultThreadFactory("token-review", true));
  private final AsyncCache<String, Review> cache;

  TokenReviewAuthenticator(KubernetesClient client, ServerConfig.TokenReview config) {
    this.client = client;
    this.config = config;
    this.cache =
        Caffeine.newBuilder()
            .expireAfterWrite(config.cacheTtl())
            .maximumSize(100_000)
            .executor(reviewers)
            .buildAsync();
  }

  /** Reviews {@code token} (or reuses a cached verdict); completes off the caller's thread. */
  CompletableFuture<Review> review(String token) {
    return cache.get(
        sha256(token),
        (key, executor) -> CompletableFuture.supplyAsync(() -> ask(token), executor));
  }

  /** Judges a review against the node the agent names. */
  AgentAuthenticator.Verdict judge(Review review, String node) {
    if (!review.authenticated()) {
      return AgentAuthenticator.Verdict.refused(
          UpgradeRefusal.BAD_TOKEN,
          "the Kubernetes API did not accept the token"
              + (review.error() == null || review.error().isBlank() ? "" : ": " + review.error()));
    }
    if (config.serviceAccount() != null) {
      String expected =
          "system:serviceaccount:" + config.namespace() + ":" + config.serviceAccount();
      if (!expected.equals(review.username())) {
        return AgentAuthenticator.Verdict.refused(
            UpgradeRefusal.NOT_ALLOWED,
            review.username() + " is not the agents' ServiceAccount " + expected);
      }
    }
    if (node == null || node.isBlank()) {
      if (review.node() == null) {
        return AgentAuthenticator.Verdict.noNode();
      }
      node = review.node();
    }
    if (review.node() != null && !review.node().equals(node)) {
      return AgentAuthenticator.Verdict.refused(
          UpgradeRefusal.WRONG_NODE,
          "the token of "
              + review.username()
              + " is bound to node "
              + review.node()
              + ", not "
              + node);
    }
    return AgentAuthenticator.Verdict.admitted(
        node, "ServiceAccount token of " + review.username());
  }

  private Review ask(String token) {
    TokenReview request =
        new TokenReviewBuilder()
            .withNewMetadata()
            .withGenerateName("egress-tunnel-") // ignored by the API; required by some proxies
            .endMetadata()
            .withNewSpec()
            .withToken(token)
            .withAudiences(config.audiences().isEmpty() ? null : config.audiences())
            .endSpec()
            .build();
    TokenReview answer = client.resource(request).create();
    if (log.isDebugEnabled()) {
      log.debug("TokenReview answered {}", answer == null ? null : answer.getStatus());
    }
    TokenReviewStatus status = answer == null ? null : answer.getStatus();
    if (status == null || !Boolean.TRUE.equals(status.getAuthenticated())) {
      return new Review(false, null, null, status == null ? null : status.getError());
    }
    if (!config.audiences().isEmpty()
        && (status.getAudiences() == null
            || status.getAudiences().stream().noneMatch(config.audiences()::contains))) {
      return new Review(
          false, null, null, "the token is not issued for audience " + config.audiences());
    }
    UserInfo user = status.getUser();
    String node = null;
    if (user != null && user.getExtra() != null) {
      List<String> nodes = user.getExtra().get(NODE_NAME_EXTRA);
      if (nodes != null && nodes.size() == 1) {
        node = nodes.get(0);
      }
    }
    return new Review(true, user == null ? null : user.getUsername(), node, null);
  }

  private static String sha256(String token) {
    try {
      return HexFormat.of()
          .formatHex(
              MessageDigest.getInstance("SHA-256").digest(token.getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  @Override
  public void close() {
    reviewers.shutdownNow();
  }
}
