package io.egresstunnel.proto;

/**
 * The outcome of a dial, carried in {@link DialResult}. The set is fixed by the protocol version.
 */
public enum DialStatus {
  /** Connected; the stream is open. */
  OK(0),
  /** The target actively refused the connection (RST). */
  REFUSED(1),
  /** No route to the target's network or host. */
  UNREACHABLE(2),
  /** The dial did not complete within its timeout. */
  TIMEOUT(3),
  /** The agent's policy does not allow this destination. */
  FORBIDDEN(4),
  /** The agent already holds its maximum number of streams or pending dials. */
  TOO_MANY_STREAMS(5),
  /** The host name could not be resolved. */
  RESOLVE_FAILED(6),
  /** The agent is draining and accepts no new streams. */
  DRAINING(7),
  /** Any other failure on the agent. */
  INTERNAL_ERROR(8);

  private static final DialStatus[] BY_CODE = values();

  private final int code;

  DialStatus(int code) {
    this.code = code;
  }

  public int code() {
    return code;
  }

  /** The status for a wire code; {@link IllegalArgumentException} if the code is not defined. */
  public static DialStatus fromCode(int code) {
    if (code < 0 || code >= BY_CODE.length) {
      throw new IllegalArgumentException("unknown dial status " + code);
    }
    return BY_CODE[code];
  }
}
