package io.egresstunnel.proto.session;

import io.egresstunnel.proto.DialStatus;

/**
 * A stream could not be opened. Either the agent answered with a failed {@link DialStatus}, or the
 * stream never got an answer: the session ended ({@link #sessionLost()}), or the server's own
 * limits or timer refused it first.
 */
public final class DialFailedException extends Exception {
  private static final long serialVersionUID = 1L;

  private final DialStatus status;
  private final boolean sessionLost;

  public DialFailedException(DialStatus status, String message) {
    this(status, message, false);
  }

  private DialFailedException(DialStatus status, String message, boolean sessionLost) {
    super(message, null, false, false);
    this.status = status;
    this.sessionLost = sessionLost;
  }

  /** The agent's session ended before the dial was answered. */
  public static DialFailedException sessionLost(String message) {
    return new DialFailedException(DialStatus.INTERNAL_ERROR, message, true);
  }

  public DialStatus status() {
    return status;
  }

  public boolean sessionLost() {
    return sessionLost;
  }
}
