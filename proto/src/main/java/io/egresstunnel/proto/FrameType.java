package io.egresstunnel.proto;

/** The frame types of protocol version 1 and their one-byte wire codes (docs/protocol.md). */
public enum FrameType {
  AGENT_HELLO(0x01, false),
  SERVER_HELLO(0x02, false),
  DIAL(0x03, true),
  DIAL_RESULT(0x04, true),
  DATA(0x05, true),
  WINDOW_UPDATE(0x06, true),
  FIN(0x07, true),
  RESET(0x08, true),
  GO_AWAY(0x09, false);

  private static final FrameType[] BY_CODE = new FrameType[256];

  static {
    for (FrameType t : values()) {
      BY_CODE[t.code] = t;
    }
  }

  private final int code;
  private final boolean streamScoped;

  FrameType(int code, boolean streamScoped) {
    this.code = code;
    this.streamScoped = streamScoped;
  }

  /** The byte that identifies this type on the wire. */
  public int code() {
    return code;
  }

  /**
   * True if frames of this type belong to a stream (non-zero id); false if to the session (id 0).
   */
  public boolean streamScoped() {
    return streamScoped;
  }

  /** The type for a wire code, or {@code null} if version 1 defines none. */
  public static FrameType fromCode(int code) {
    return code >= 0 && code < BY_CODE.length ? BY_CODE[code] : null;
  }
}
