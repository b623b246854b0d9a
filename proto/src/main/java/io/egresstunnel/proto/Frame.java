package io.egresstunnel.proto;

/**
 * One frame of the tunnel protocol. Every implementation validates its fields when constructed, so
 * an instance is always encodable; the decoder turns the same validation failures into {@link
 * ProtocolException}s.
 */
public sealed interface Frame
    permits AgentHello, ServerHello, Dial, DialResult, DataFrame, WindowUpdate, Fin, Reset, GoAway {

  FrameType type();

  /** The stream this frame belongs to, or 0 for session frames. */
  int streamId();
}
