package io.egresstunnel.agent;

import io.egresstunnel.proto.session.UpgradeRefusal;
import java.net.URI;
import java.time.Instant;

/**
 * A server's answer to the agent's websocket upgrade that was not the upgrade: its status, the kind
 * the server named in the {@value UpgradeRefusal#HEADER} header ({@link UpgradeRefusal#OTHER}
 * without one), and the first line of its body, the reason in the server's words.
 *
 * @param server the URL the agent connected to
 * @param code the HTTP status, e.g. 403
 * @param reason the kind of refusal
 * @param message the server's one-line reason (the status's phrase if the body was empty)
 * @param at when it was answered
 */
public record ServerRefusal(
    URI server, int code, UpgradeRefusal reason, String message, Instant at) {

  /** The longest message kept; a longer body is cut here. */
  static final int MAX_MESSAGE = 300;

  /** {@code 403 wrong_node: this token may not speak for node node-b}. */
  @Override
  public String toString() {
    return code + " " + reason.label + ": " + message;
  }

  /** The first line of {@code body}, without control characters, at most {@link #MAX_MESSAGE}. */
  static String firstLine(String body, String fallback) {
    String line = body == null ? "" : body.strip();
    int nl = line.indexOf('\n');
    if (nl >= 0) {
      line = line.substring(0, nl).strip();
    }
    StringBuilder b = new StringBuilder(Math.min(line.length(), MAX_MESSAGE));
    for (int i = 0; i < line.length() && b.length() < MAX_MESSAGE; i++) {
      char c = line.charAt(i);
      b.append(Character.isISOControl(c) ? ' ' : c);
    }
    return b.length() == 0 ? fallback : b.toString();
  }
}
