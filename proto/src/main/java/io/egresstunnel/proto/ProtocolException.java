package io.egresstunnel.proto;

import io.netty.handler.codec.DecoderException;

/**
 * A received frame broke the protocol. With {@link #streamId()} 0 the session's framing can no
 * longer be trusted and the session must close; otherwise the frame's header was sound and only
 * that stream is reset (docs/protocol.md, "Errors").
 */
public final class ProtocolException extends DecoderException {
  private static final long serialVersionUID = 1L;

  private final ProtocolError error;
  private final int streamId;

  public ProtocolException(ProtocolError error, int streamId, String message) {
    super(error + ": " + message);
    this.error = error;
    this.streamId = streamId;
  }

  /** A session-scoped error: the session closes. */
  public static ProtocolException session(ProtocolError error, String message) {
    return new ProtocolException(error, 0, message);
  }

  public ProtocolError error() {
    return error;
  }

  /** The stream the error is confined to, or 0 if it is a session error. */
  public int streamId() {
    return streamId;
  }

  /** True if only {@link #streamId()} is affected and the session goes on. */
  public boolean isStreamError() {
    return streamId != 0;
  }
}
