package io.egresstunnel.proto;

/** What was wrong with a received frame. docs/protocol.md says what the receiver does for each. */
public enum ProtocolError {
  /** Fewer bytes than the 9-byte header. */
  TRUNCATED_HEADER,
  /** The header's length field disagrees with the bytes the message holds. */
  LENGTH_MISMATCH,
  /** The body is longer than the max frame payload the receiver declared. */
  FRAME_TOO_LARGE,
  /** A type byte that the negotiated version does not define. */
  UNKNOWN_FRAME_TYPE,
  /** A flag bit set that the frame type does not define. */
  INVALID_FLAGS,
  /** Stream id 0 on a stream frame, non-zero on a session frame, or the reserved bit set. */
  INVALID_STREAM_ID,
  /** A websocket message that cannot carry a frame: text, or fragmented. */
  INVALID_MESSAGE,
  /** The body ends inside a field, or has bytes after its last field. */
  MALFORMED_BODY,
  /** A string field that is not valid UTF-8. */
  INVALID_UTF8,
  /** A field outside its range (a port of 0, a window of 0, an unknown code...). */
  INVALID_FIELD
}
