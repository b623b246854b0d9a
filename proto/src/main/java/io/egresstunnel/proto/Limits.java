package io.egresstunnel.proto;

/**
 * The protocol's fixed limits and the defaults of the negotiable ones. docs/protocol.md lists them
 * all; every field check in this package goes through {@link #check}.
 */
public final class Limits {
  /** The protocol versions this build speaks. */
  public static final int MIN_VERSION = 1;

  public static final int MAX_VERSION = 1;

  /** Bytes in every frame header: length (3), type (1), flags (1), stream id (4). */
  public static final int HEADER_SIZE = 9;

  /** The largest body the 24-bit length field can describe. */
  public static final int MAX_FRAME_PAYLOAD_CEILING = 0xFF_FFFF;

  /** The smallest max-frame-payload a peer may declare. */
  public static final int MIN_FRAME_PAYLOAD_FLOOR = 16 * 1024;

  /** Default max-frame-payload each side declares (reads are forwarded in chunks up to this). */
  public static final int DEFAULT_MAX_FRAME_PAYLOAD = 256 * 1024;

  /** Default per-stream credit window each side grants. */
  public static final int DEFAULT_INITIAL_WINDOW = 512 * 1024;

  /** Largest window and window increment: a window is a signed 31-bit count. */
  public static final int MAX_WINDOW = Integer.MAX_VALUE;

  /** Largest stream id (31 bits; the top bit of the field is reserved and must be 0). */
  public static final int MAX_STREAM_ID = Integer.MAX_VALUE;

  /** Longest host, node name or server id, in UTF-8 bytes (a DNS name's limit). */
  public static final int MAX_NAME_BYTES = 253;

  /** Longest human-readable message in DIAL_RESULT, RESET or GO_AWAY, in UTF-8 bytes. */
  public static final int MAX_MESSAGE_BYTES = 1024;

  /** Most node addresses, and most pod CIDRs, one AGENT_HELLO may carry. */
  public static final int MAX_HELLO_ENTRIES = 64;

  /** Largest dial timeout a DIAL may ask for; 0 asks for the agent's default. */
  public static final int MAX_DIAL_TIMEOUT_MILLIS = 10 * 60 * 1000;

  private Limits() {}

  /**
   * Returns {@code value} if it lies in {@code [min, max]}; otherwise throws an {@link
   * IllegalArgumentException} that names the field and the allowed range.
   */
  public static long check(String field, long value, long min, long max) {
    if (value < min || value > max) {
      throw new IllegalArgumentException(
          field + " " + value + " is outside the allowed range " + min + ".." + max);
    }
    return value;
  }

  /** {@link #check(String, long, long, long)} for int fields. */
  public static int check(String field, int value, int min, int max) {
    return (int) check(field, (long) value, min, max);
  }

  /**
   * Checks a declared max frame payload: {@link #MIN_FRAME_PAYLOAD_FLOOR}..{@link
   * #MAX_FRAME_PAYLOAD_CEILING}.
   */
  public static int checkMaxFramePayload(String field, int value) {
    return check(field, value, MIN_FRAME_PAYLOAD_FLOOR, MAX_FRAME_PAYLOAD_CEILING);
  }

  /** Checks a credit window or window increment: 1..2^31-1. */
  public static int checkWindow(String field, int value) {
    return check(field, value, 1, MAX_WINDOW);
  }

  /** Checks a stream id of a stream-scoped frame: 1..2^31-1. */
  public static int checkStreamId(int streamId) {
    return check("stream id", streamId, 1, MAX_STREAM_ID);
  }

  /**
   * Checks a name (host, node name, server id): non-empty, at most {@link #MAX_NAME_BYTES} UTF-8
   * bytes, and free of control characters and spaces, so it is safe to log and to resolve.
   */
  public static String checkName(String field, String name) {
    if (name == null || name.isEmpty()) {
      throw new IllegalArgumentException(field + " is empty");
    }
    checkUtf8Length(field, name, MAX_NAME_BYTES);
    for (int i = 0; i < name.length(); i++) {
      char c = name.charAt(i);
      if (c <= 0x20 || c == 0x7F) {
        throw new IllegalArgumentException(
            field + " contains a control character or space at index " + i);
      }
    }
    return name;
  }

  /** Checks a message: at most {@link #MAX_MESSAGE_BYTES} UTF-8 bytes; null becomes "". */
  public static String checkMessage(String message) {
    if (message == null) {
      return "";
    }
    checkUtf8Length("message", message, MAX_MESSAGE_BYTES);
    return message;
  }

  private static void checkUtf8Length(String field, String s, int max) {
    int bytes = io.netty.buffer.ByteBufUtil.utf8Bytes(s);
    if (bytes > max) {
      throw new IllegalArgumentException(
          field + " is " + bytes + " UTF-8 bytes long; at most " + max + " are allowed");
    }
  }
}
