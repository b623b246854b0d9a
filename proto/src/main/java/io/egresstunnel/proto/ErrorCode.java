package io.egresstunnel.proto;

/** Why a stream was reset ({@link Reset}) or a session is going away ({@link GoAway}). */
public enum ErrorCode {
  /** Graceful: a go-away for drain, or a reset that carries no error. */
  NO_ERROR(0),
  /** The peer broke a protocol rule (an illegal frame or transition). */
  PROTOCOL_ERROR(1),
  /** The peer sent more data than the stream's credit window allowed. */
  FLOW_CONTROL_ERROR(2),
  /** The stream is no longer wanted (its client or target went away). */
  CANCEL(3),
  /** The connection at this end of the stream failed (an I/O error, RST from the peer socket). */
  CONNECTION_ERROR(4),
  /** A bug or resource failure at the sender. */
  INTERNAL_ERROR(5),
  /** Go-away only: no protocol version is common to both sides. */
  UNSUPPORTED_VERSION(6),
  /** The stream or session was idle for longer than allowed. */
  IDLE_TIMEOUT(7),
  /**
   * Go-away only, from an agent: this server's id is also the id of another server the agent holds
   * a session to at a different address, so the agent cannot hold both; the message names them.
   */
  DUPLICATE_SERVER_ID(8);

  private static final ErrorCode[] BY_CODE = values();

  private final int code;

  ErrorCode(int code) {
    this.code = code;
  }

  public int code() {
    return code;
  }

  /**
   * The error code for a wire code; {@link IllegalArgumentException} if the code is not defined.
   */
  public static ErrorCode fromCode(int code) {
    if (code < 0 || code >= BY_CODE.length) {
      throw new IllegalArgumentException("unknown error code " + code);
    }
    return BY_CODE[code];
  }
}
