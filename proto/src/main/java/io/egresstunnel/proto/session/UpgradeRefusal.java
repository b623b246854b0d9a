package io.egresstunnel.proto.session;

import java.util.Locale;

/**
 * Why a server refused an agent's websocket upgrade, from a small fixed set: the server names it in
 * the {@value #HEADER} response header (the body says the same in a sentence), counts it by it, and
 * the agent counts what it was told by it. A refusal without the header (a proxy's, an older
 * server's) is {@link #OTHER}.
 */
public enum UpgradeRefusal {
  /** 401: neither a bearer token nor a node client certificate. */
  NO_CREDENTIALS(401),
  /** 401: the bearer token is unknown, or the Kubernetes API did not accept it. */
  BAD_TOKEN(401),
  /** 403: the client certificate's subject is not {@code CN=system:node:NAME}. */
  BAD_CERTIFICATE(403),
  /** 403: the credential speaks for other nodes than the one the agent names. */
  WRONG_NODE(403),
  /** 403: the agent names no node, and its credential does not either. */
  NO_NODE(403),
  /** 403: the token is valid but not the agents' ServiceAccount's. */
  NOT_ALLOWED(403),
  /** 503: the TokenReview failed or timed out. */
  REVIEW_FAILED(503),
  /** 503: the server is shutting down. */
  DRAINING(503),
  /** 503: the server holds its maximum of agents ({@code --max-agents}). */
  MAX_AGENTS(503),
  /** A refusal that does not say which of these it is (only ever seen by agents). */
  OTHER(0);

  /** The response header naming the refusal by its {@link #label}. */
  public static final String HEADER = "X-Egress-Tunnel-Refusal";

  /** The metric label value and header value: the name in lower case. */
  public final String label = name().toLowerCase(Locale.ROOT);

  /** The HTTP status a server answers with (0 for {@link #OTHER}). */
  public final int code;

  UpgradeRefusal(int code) {
    this.code = code;
  }

  /** The refusal a header value names; {@link #OTHER} for null or anything unknown. */
  public static UpgradeRefusal ofHeader(String value) {
    if (value != null) {
      String v = value.strip();
      for (UpgradeRefusal r : values()) {
        if (r.label.equalsIgnoreCase(v)) {
          return r;
        }
      }
    }
    return OTHER;
  }
}
