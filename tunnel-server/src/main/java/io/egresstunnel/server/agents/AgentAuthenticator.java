package io.egresstunnel.server.agents;

import io.egresstunnel.proto.config.CommandErrors;
import io.egresstunnel.proto.session.SessionPipeline;
import io.egresstunnel.proto.session.UpgradeRefusal;
import io.egresstunnel.server.PeerCertificates;
import io.egresstunnel.server.ServerConfig;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.netty.handler.codec.http.HttpResponseStatus;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;

/**
 * Decides at the websocket upgrade, before any frame is read, whether an agent may connect and for
 * which node. Three credentials are accepted, whichever are configured:
 *
 * <ul>
 *   <li>a client certificate signed by {@code --agent-client-ca} whose subject is {@code
 *       CN=system:node:NAME} (as kubelets and K3s agents have): it speaks for NAME only;
 *   <li>a bearer token from {@code --agent-token-file}: one token per line, optionally followed by
 *       the nodes it may speak for ({@code TOKEN node-a,node-b}); without nodes it may speak for
 *       any. Blank lines and lines starting with # are ignored. A presented token is compared with
 *       every known one in constant time, so neither a token nor its position leaks through timing;
 *   <li>a Kubernetes ServiceAccount token, checked with a TokenReview ({@link
 *       TokenReviewAuthenticator}).
 * </ul>
 *
 * With none configured every agent is admitted for the node it names.
 */
public final class AgentAuthenticator implements AutoCloseable {
  private static final String NODE_CN_PREFIX = "system:node:";

  private record Entry(byte[] token, Set<String> nodes) {}

  /** The identity of an agent admitted without credentials (the server requires none). */
  public static final String ANONYMOUS = "anonymous";

  /**
   * A verdict: {@code refusal} null means admitted, for {@code node}, as {@code identity}.
   *
   * @param refusal why the upgrade is refused (which fixes its HTTP status), or null
   * @param reason one line saying why, for the agent and the log (refusals)
   * @param node the node the agent may speak for (admissions)
   * @param identity who the credential names, for logs (admissions)
   */
  record Verdict(UpgradeRefusal refusal, String reason, String node, String identity) {
    boolean admitted() {
      return refusal == null;
    }

    /** The HTTP status of a refusal. */
    HttpResponseStatus status() {
      return HttpResponseStatus.valueOf(refusal.code);
    }

    static Verdict admitted(String node, String identity) {
      return new Verdict(null, null, node, identity);
    }

    static Verdict refused(UpgradeRefusal refusal, String reason) {
      return new Verdict(refusal, reason, null, null);
    }

    static Verdict noNode() {
      return refused(
          UpgradeRefusal.NO_NODE, "the agent must name its node in " + SessionPipeline.NODE_HEADER);
    }
  }

  private final List<Entry> entries;
  private final boolean certificates;
  private final TokenReviewAuthenticator tokenReview;

  private AgentAuthenticator(
      List<Entry> entries, boolean certificates, TokenReviewAuthenticator tokenReview) {
    this.entries = entries;
    this.certificates = certificates;
    this.tokenReview = tokenReview;
  }

  /**
   * The authenticator {@code auth} describes.
   *
   * @param client the Kubernetes client for TokenReviews (needed only with {@code tokenReview})
   * @throws IllegalArgumentException if the token file cannot be read or is malformed
   */
  public static AgentAuthenticator create(ServerConfig.AgentAuth auth, KubernetesClient client) {
    List<Entry> entries = List.of();
    if (auth.tokenFile() != null) {
      try {
        entries = readTokens(auth.tokenFile());
      } catch (IOException e) {
        throw new IllegalArgumentException(
            "--agent-token-file " + auth.tokenFile() + ": " + CommandErrors.describe(e), e);
      }
    }
    TokenReviewAuthenticator review = null;
    if (auth.tokenReview() != null) {
      if (client == null) {
        throw new IllegalArgumentException(
            "TokenReview authentication needs --kubeconfig or --in-cluster");
      }
      review = new TokenReviewAuthenticator(client, auth.tokenReview());
    }
    return new AgentAuthenticator(entries, auth.clientCa() != null, review);
  }

  private static List<Entry> readTokens(Path file) throws IOException {
    List<Entry> entries = new ArrayList<>();
    int lineNo = 0;
    for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
      lineNo++;
      String l = line.strip();
      if (l.isEmpty() || l.startsWith("#")) {
        continue;
      }
      String[] parts = l.split("\\s+");
      if (parts.length > 2 || parts[0].length() < 16) {
        throw new IllegalArgumentException(
            "--agent-token-file "
                + file
                + " line "
                + lineNo
                + ": expected 'TOKEN [NODE,...]' with a token of at least 16 characters");
      }
      Set<String> nodes = parts.length == 2 ? Set.of(parts[1].split(",")) : null;
      entries.add(new Entry(parts[0].getBytes(StandardCharsets.UTF_8), nodes));
    }
    if (entries.isEmpty()) {
      throw new IllegalArgumentException("--agent-token-file " + file + ": holds no token");
    }
    return entries;
  }

  /** Whether agents must authenticate at all. */
  public boolean required() {
    return !entries.isEmpty() || certificates || tokenReview != null;
  }

  /**
   * Judges an upgrade: the client certificate the TLS handshake verified (or null), the
   * Authorization header and the node header. Completes at once unless a TokenReview is needed.
   */
  CompletableFuture<Verdict> authenticate(X509Certificate peer, String authorization, String node) {
    if (!required()) {
      return CompletableFuture.completedFuture(
          node == null || node.isBlank() ? Verdict.noNode() : Verdict.admitted(node, ANONYMOUS));
    }
    if (certificates && peer != null) {
      return CompletableFuture.completedFuture(byCertificate(peer, node));
    }
    if (authorization == null || !authorization.regionMatches(true, 0, "Bearer ", 0, 7)) {
      return CompletableFuture.completedFuture(
          Verdict.refused(
              UpgradeRefusal.NO_CREDENTIALS,
              certificates
                  ? "a node client certificate or a bearer token is required"
                  : "a bearer token is required"));
    }
    String token = authorization.substring(7).strip();
    Verdict fromFile = byTokenFile(token, node);
    if (fromFile != null || tokenReview == null) {
      return CompletableFuture.completedFuture(
          fromFile != null
              ? fromFile
              : Verdict.refused(UpgradeRefusal.BAD_TOKEN, "the bearer token is not valid"));
    }
    return tokenReview.review(token).thenApply(r -> tokenReview.judge(r, node));
  }

  /** The verdict for a token from the file, or null if the file does not hold it. */
  private Verdict byTokenFile(String token, String node) {
    byte[] presented = token.getBytes(StandardCharsets.UTF_8);
    Entry match = null;
    for (Entry e : entries) {
      if (MessageDigest.isEqual(e.token(), presented) && match == null) {
        match = e; // keep comparing: the time taken must not tell which entry matched
      }
    }
    if (match == null) {
      return null;
    }
    if (node == null || node.isBlank()) {
      return Verdict.noNode();
    }
    if (match.nodes() != null && !match.nodes().contains(node)) {
      return Verdict.refused(
          UpgradeRefusal.WRONG_NODE, "this token may not speak for node " + node);
    }
    return Verdict.admitted(node, "token (--agent-token-file)");
  }

  private static Verdict byCertificate(X509Certificate peer, String node) {
    String cn = PeerCertificates.commonName(peer);
    if (cn == null || !cn.startsWith(NODE_CN_PREFIX) || cn.length() == NODE_CN_PREFIX.length()) {
      return Verdict.refused(
          UpgradeRefusal.BAD_CERTIFICATE,
          "the client certificate "
              + peer.getSubjectX500Principal().getName()
              + " does not name a node (CN="
              + NODE_CN_PREFIX
              + "NAME)");
    }
    String certNode = cn.substring(NODE_CN_PREFIX.length());
    if (node != null && !node.isBlank() && !node.equals(certNode)) {
      return Verdict.refused(
          UpgradeRefusal.WRONG_NODE,
          "the client certificate is for node " + certNode + ", not " + node);
    }
    return Verdict.admitted(certNode, "certificate CN=" + cn);
  }

  @Override
  public void close() {
    if (tokenReview != null) {
      tokenReview.close();
    }
  }
}
